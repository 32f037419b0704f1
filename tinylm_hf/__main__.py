"""python -m tinylm_hf COMMAND: the `tinylm` command (tinylm_hf/cli.py) without installing its script."""

from .cli import main

main()
