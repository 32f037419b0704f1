#!/usr/bin/env python
"""The Gradio demo (`tinylm demo`; app.py is the name Hugging Face Spaces runs): chat with a model (streaming), or
have it write stories, or look inside it.

    python app.py                          # the quickstart's model (outputs/quickstart-instruct or outputs/quickstart)
    python app.py --model DIR_OR_HUB_ID    # any tinylm model folder or Hub id (--revision to pin one)
    python app.py --help                   # every option
"""

from tinylm_hf.demo import main
from tinylm_hf.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
