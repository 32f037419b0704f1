#!/usr/bin/env python
"""Train a byte-level BPE tokenizer on a corpus (or adopt an existing one) and save it in Hub format.

    python train_tokenizer.py --dataset embedded --vocab_size 4096 --output_dir outputs/tokenizer
    python train_tokenizer.py --dataset stories.txt --output_dir outputs/tokenizer
    python train_tokenizer.py --tokenizer_name path/to/gpt2 --output_dir outputs/gpt2-tokenizer
"""

from tinylm_hf.errors import run_cli
from tinylm_hf.training.tokenizer import main

if __name__ == "__main__":
    run_cli(main)
