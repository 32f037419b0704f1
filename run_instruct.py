#!/usr/bin/env python
"""Instruction-tune a pretrained model, or fine-tune it on your own narrow data set.

    python run_instruct.py                                            # the quickstart chain, after run_pretrain.py
    python run_instruct.py --model_name_or_path DIR --dataset chats.jsonl   # messages / prompt+response / ...
    python run_instruct.py --help                                     # every option
"""

from tinylm_hf.errors import run_cli
from tinylm_hf.training.instruct import main

if __name__ == "__main__":
    run_cli(main)
