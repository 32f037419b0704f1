#!/usr/bin/env python
"""Pretrain a small GPT with the Hugging Face Trainer. With no arguments: the quickstart (embedded corpus, a
tokenizer trained on it, the `quickstart` preset; minutes on a laptop CPU).

    python run_pretrain.py                                   # the quickstart
    python run_pretrain.py configs/tinystories-8m.yaml       # a recipe; command-line flags override it
    python run_pretrain.py --help                            # every option
"""

from tinylm_hf.errors import run_cli
from tinylm_hf.training.pretrain import main

if __name__ == "__main__":
    run_cli(main)
