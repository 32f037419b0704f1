"""tinylm export {onnx,web,gguf} MODEL OUT (or python -m tinylm_hf.export): see tinylm_hf/export/__init__.py."""

import argparse
import os

from ..errors import UserError, run_cli
from ..hub import local_folder
from . import __doc__ as DOC


def needs(*modules: str, extra: str = "export") -> None:
    """A one-line error naming the extra to install when a module an export uses is missing."""
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            raise UserError(f"export needs {module}: pip install 'tinylm-hf[{extra}]'") from None


def checked(model: str, folder: str) -> None:
    """An export's check (check.py), printed and written into the folder's README (its model card)."""
    from .check import check, table, write_card

    rows, on = check(model, folder)
    print(table(rows))
    write_card(folder, rows, on)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="tinylm export", description=DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    formats = parser.add_subparsers(dest="format", required=True)
    onnx = formats.add_parser("onnx", help="ONNX with the KV cache, for ONNX Runtime and transformers.js")
    onnx.add_argument("--quantize", choices=["q8", "q4"], action="append", help="also write 8-bit weights "
                      "(onnx/model_quantized.onnx) or 4-bit ones (onnx/model_q4.onnx), transformers.js's dtype q8 / "
                      "q4; give it twice for both")
    web = formats.add_parser("web", help="the ONNX folder plus a page that runs it in the browser (transformers.js); "
                             "an ensemble folder: each member's, and a page that averages them")
    web.add_argument("--offline", action="store_true",
                     help="copy transformers.js and ONNX Runtime Web into the folder: the page fetches nothing else")
    web.add_argument("--npm", metavar="DIR", help="with --offline: a folder whose node_modules/ holds "
                     "@huggingface/transformers (default: npm installs it into ~/.cache/tinylm-hf)")
    gguf = formats.add_parser("gguf", help="one GGUF file for llama.cpp")
    gguf.add_argument("--type", default="f16", choices=["f32", "f16", "q8_0", "q4_0"], dest="kind",
                      help="how the matrices are stored (default: %(default)s; norms and biases stay f32)")
    pte = formats.add_parser("executorch", help="one .pte file for ExecuTorch (Android, iOS), with the tokenizer")
    pte.add_argument("--quantize", choices=["8da4w"], help="8-bit dynamic activations, 4-bit weights (groups of 32)")
    check = formats.add_parser("check", help="how much an export loses: bits per byte, KL divergence and top-1 "
                               "agreement against the fp32 model on validation text, size, speed")
    check.add_argument("--text", help="a text file to check on (default: the TinyStories validation stories in the "
                       "package)")
    check.add_argument("--max_bytes", type=int, default=20_000, help="how much of it (default: %(default)s bytes)")
    for sub, out in ((onnx, "folder to write"), (web, "folder to write"), (gguf, "the .gguf file to write"),
                     (pte, "folder to write (model.pte, the tokenizer, a README)"),
                     (check, "the export to check: an ONNX or ExecuTorch folder, an .onnx or .pte file")):
        sub.add_argument("model", help="model folder or Hub id (tinylm, or stock llama / qwen3 / gpt2)")
        sub.add_argument("out", help=out)
        sub.add_argument("--revision", help="Hub revision (branch, tag or commit) of a Hub id to pin")
    args = parser.parse_args(argv)
    args.model = local_folder(args.model, args.revision)
    if args.format == "onnx":
        needs("onnxruntime", "onnxscript")
        from .onnx import onnx_folder

        onnx_folder(args.model, args.out, args.quantize)
        checked(args.model, args.out)
    elif args.format == "web":
        needs("onnxruntime", "onnxscript")
        from .web import web_folder

        report = web_folder(args.model, args.out, args.offline, args.npm)
        for i, member in enumerate(report.get("members", []), 1):  # an ensemble: each member checked in its folder
            checked(member["model"], os.path.join(args.out, f"member-{i}"))
        if "members" not in report:
            checked(args.model, args.out)
    elif args.format == "gguf":
        needs("gguf")
        from .gguf import write_gguf

        write_gguf(args.model, args.out, args.kind)
    elif args.format == "executorch":
        needs("executorch", "torchao", extra="executorch")
        from .executorch import executorch_folder

        executorch_folder(args.model, args.out, args.quantize)
        checked(args.model, args.out)
    elif args.format == "check":
        needs("onnxruntime")
        from .check import check, table

        print(table(check(args.model, args.out, args.text, args.max_bytes)[0]))


if __name__ == "__main__":
    run_cli(main)
