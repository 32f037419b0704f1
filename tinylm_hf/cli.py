"""The `tinylm` command (installed by `pip install tinylm-hf`): one entry point for every step of the data's way.

    tinylm pretrain [CONFIG.yaml] [--flags]       text -> tokenizer -> token files -> Trainer -> model folder
    tinylm instruct --model_name_or_path DIR      instruction tuning, or fine-tuning on your own chats
    tinylm tokenizer --dataset TEXT               train (or adopt) a tokenizer
    tinylm demo [--model DIR_OR_HUB_ID]           the Gradio demo: chat, stories, the X-ray
    tinylm xray MODEL "some text"                 tokens, surprisal, the next-token distribution
    tinylm export {onnx,web,gguf} MODEL OUT       ONNX Runtime, transformers.js, llama.cpp
    tinylm convert --to llama DIR OUT             exact conversion to (and --from) stock GPT-2 / Llama / Qwen3
    tinylm hub {push,pull} ...                    the Hugging Face Hub
    tinylm presets                                the model shapes

Each command is exactly the script or module it names (`run_pretrain.py`, `python -m tinylm_hf.xray`, ...), which
stay for people working in a clone; `tinylm COMMAND --help` lists its options.
"""

import importlib
import sys

from .errors import run_cli

COMMANDS = {  # name: (module whose main(argv) it runs, one line of help)
    "pretrain": ("tinylm_hf.training.pretrain", "pretrain a model (no arguments: the quickstart)"),
    "instruct": ("tinylm_hf.training.instruct", "instruction-tune a model, or fine-tune it on your own data"),
    "tokenizer": ("tinylm_hf.training.tokenizer", "train a tokenizer on a corpus, or adopt one"),
    "demo": ("tinylm_hf.demo", "the Gradio demo: chat, stories, the X-ray"),
    "xray": ("tinylm_hf.xray", "see inside a model: tokens, surprisal, next-token distribution"),
    "export": ("tinylm_hf.export.__main__", "ONNX, a web page (transformers.js) or GGUF (llama.cpp)"),
    "convert": ("tinylm_hf.convert", "exact conversion to and from stock GPT-2 / Llama / Qwen3"),
    "hub": ("tinylm_hf.hub", "push a model folder to the Hub, or pull one"),
    "presets": ("tinylm_hf.presets", "the model shapes, with their parameter counts"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return ("usage: tinylm COMMAND [ARGS] (tinylm COMMAND --help for its options)\n\n"
            "Build a small language model from scratch, see inside it, ship it anywhere.\n\ncommands:\n"
            + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"tinylm-hf {__version__}")
        return
    name = argv[0]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}: use one of {', '.join(COMMANDS)} (tinylm --help)", file=sys.stderr)
        sys.exit(2)
    sys.argv[0] = f"tinylm {name}"  # the command's usage line says `tinylm NAME`
    run_cli(importlib.import_module(COMMANDS[name][0]).main, argv[1:])


if __name__ == "__main__":
    main()
