#!/usr/bin/env python
"""The Gradio demo: chat with a model (streaming), or have it write stories.

    python app.py                          # the quickstart's model (outputs/quickstart-instruct or outputs/quickstart)
    python app.py --model DIR_OR_HUB_ID    # any tinylm model folder or Hub id (--revision to pin one)
    python app.py --share                  # a public gradio.live link (default: only this machine, 127.0.0.1)
"""

import argparse

from tinylm_hf.demo import launch
from tinylm_hf.errors import run_cli


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or Hub id (default: the quickstart's output)")
    parser.add_argument("--revision", help="Hub revision to pin")
    parser.add_argument("--server-name", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    args = parser.parse_args(argv)
    launch(args.model, args.revision, args.server_name, args.port, args.share)


if __name__ == "__main__":
    run_cli(main)
