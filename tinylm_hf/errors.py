"""One error type for user mistakes, and the script edge that turns it into one line and exit code 2."""

import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """A mistake the user can fix: the message names the problem and the fix, in one line."""


def hub_hint(err: Exception) -> str:
    """One line for a failed Hub/local load: offline mode and unknown ids get their fix named."""
    text = " ".join(str(err).split())
    if os.environ.get("HF_HUB_OFFLINE") == "1" or "offline" in text.lower() or "connect" in text.lower():
        return "the Hub cannot be reached (offline): download the repository first, or pass a local folder"
    return text[:300]


def run_cli(main: Callable[[list[str]], object], argv: list[str] | None = None) -> None:
    """Run a script's main(argv). A UserError (or a bad argument) ends with one line on stderr and exit code 2;
    `--debug` anywhere in argv shows the full traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    try:
        main(argv)
    except (UserError, FileNotFoundError, ValueError) as err:
        if debug:
            raise
        _close_progress_bars()
        name = "error" if isinstance(err, UserError) else type(err).__name__
        message = " ".join(str(err).split()) or repr(err)
        print(f"{name}: {message} (run with --debug for the traceback)", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        _close_progress_bars()
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def _close_progress_bars() -> None:
    """Close open tqdm bars first, so the error is the last line on the terminal."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        bar.close()
