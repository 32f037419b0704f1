#!/usr/bin/env python
"""The Gradio demo: chat with a model (streaming), or have it write stories.

    python app.py                          # the quickstart's model (outputs/quickstart-instruct or outputs/quickstart)
    python app.py --model DIR_OR_HUB_ID    # any tinylm model folder or Hub id (--revision to pin one)
    python app.py --share                  # a public gradio.live link (default: only this machine, 127.0.0.1)
"""

import argparse
import os

from tinylm_hf.demo import launch
from tinylm_hf.errors import run_cli
from tinylm_hf.hardware import PRECISIONS


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or Hub id (default: the quickstart's output)")
    parser.add_argument("--revision", help="Hub revision to pin")
    parser.add_argument("--server_name", "--server-name", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to bind (0.0.0.0: every interface; default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--server_port", "--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="weights in memory (auto: bf16 for models of 5M+ parameters on CPUs with bf16 "
                             "units, AMX or AVX512-BF16, where it generates faster; else fp32)")
    args = parser.parse_args(argv)
    launch(args.model, args.revision, server_name=args.server_name, port=args.server_port, share=args.share,
           precision=args.precision)


if __name__ == "__main__":
    run_cli(main)
