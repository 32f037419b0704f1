"""`train_tokenizer.py`: train a byte-level BPE on any source (or adopt an existing tokenizer), save it in Hub
format with our special tokens and chat template, and report its compression on held-out text."""

import os

from ..data import sources
from ..errors import UserError
from ..tokenizer import bytes_per_token, load_tokenizer, train_bpe
from .arguments import DataArguments, TokenizerArguments, parse_args


def main(argv: list[str]) -> str:
    tok_args, data_args = parse_args((TokenizerArguments, DataArguments), argv)
    corpus = sources.load_corpus(
        data_args.dataset, data_args.data_files, data_args.validation_files, data_args.text_column,
        data_args.streaming, None, data_args.max_train_samples, data_args.max_eval_samples or 500,
        data_args.validation_split_percentage, 42, data_args.embedded_stories)
    if tok_args.tokenizer_name:
        tokenizer = load_tokenizer(tok_args.tokenizer_name)
    else:
        texts = (text for batch in corpus["train"].iter(batch_size=1000) for text in batch["text"])
        tokenizer = train_bpe(texts, tok_args.vocab_size, tok_args.min_frequency)
    if os.path.isfile(tok_args.output_dir):
        raise UserError(f"--output_dir {tok_args.output_dir} is a file: name a folder")
    tmp = f"{tok_args.output_dir.rstrip('/')}.tmp-{os.getpid()}"
    tokenizer.save_pretrained(tmp)
    os.makedirs(tok_args.output_dir, exist_ok=True)
    for name in os.listdir(tmp):
        os.replace(os.path.join(tmp, name), os.path.join(tok_args.output_dir, name))
    os.rmdir(tmp)
    held_out = [text for batch in corpus["validation"].iter(batch_size=500) for text in batch["text"]][:500]
    print(f"vocabulary {len(tokenizer)} tokens; {bytes_per_token(tokenizer, held_out):.2f} bytes per token on "
          f"{len(held_out)} held-out documents; saved to {tok_args.output_dir}")
    return tok_args.output_dir
