"""`train_tokenizer.py`: train a tokenizer (byte-level BPE, bytes or words) on any source (or adopt an existing
tokenizer), save it in Hub format with our special tokens and chat template, and report its compression on held-out
text."""

import itertools
import os

from ..data import sources
from ..errors import UserError
from ..files import written_whole
from ..tokenizer import bytes_per_token, load_tokenizer, train_tokenizer
from .arguments import DataArguments, TokenizerArguments, parse_args


def main(argv: list[str]) -> str:
    tok_args, data_args = parse_args((TokenizerArguments, DataArguments), argv)
    corpus = sources.load_corpus(data_args.dataset, **{**data_args.corpus_kwargs(seed=42),
                                                       "max_eval_samples": data_args.max_eval_samples or 500})
    if tok_args.tokenizer_name:
        tokenizer = load_tokenizer(tok_args.tokenizer_name)
    else:
        tokenizer = train_tokenizer(sources.texts(corpus["train"]), tok_args.tokenizer_type, tok_args.vocab_size,
                                    tok_args.min_frequency)
    if os.path.isfile(tok_args.output_dir):
        raise UserError(f"--output_dir {tok_args.output_dir} is a file: name a folder")
    with written_whole(tok_args.output_dir, folder=True) as tmp:
        tokenizer.save_pretrained(tmp)
    held_out = list(itertools.islice(sources.texts(corpus["validation"]), 500))
    print(f"vocabulary {len(tokenizer)} tokens; {bytes_per_token(tokenizer, held_out):.2f} bytes per token on "
          f"{len(held_out)} held-out documents; saved to {tok_args.output_dir}")
    return tok_args.output_dir
