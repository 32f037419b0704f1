"""Writing files so that nobody ever reads half of one: write under a temporary name, then rename into place."""

import contextlib
import json
import os
import shutil
from collections.abc import Iterator

from .errors import UserError

TMP = ".tmp-"  # the mark of a temporary name: what a killed process leaves behind carries it


@contextlib.contextmanager
def written_whole(path: str, folder: bool = False) -> Iterator[str]:
    """Yield a temporary path to write the file `path` at (or, with folder=True, the files of the folder `path`);
    when the block ends, it takes `path`'s place (missing parent folders are made): a file by one rename; a folder's files (and subfolders, each
    replaced whole) each renamed over the one of the same name, so a folder that holds other things (checkpoints,
    say) keeps them. If the block fails, the
    temporary is removed and `path` is untouched. The temporary lies beside the file, or inside the folder, so
    the renames never cross a file system.

        with written_whole("out/meta.json") as tmp:
            with open(tmp, "w") as f: ...
    """
    path = path.rstrip("/")
    if folder:
        os.makedirs(path, exist_ok=True)
        tmp = os.path.join(path, f"{TMP}{os.getpid()}")
        os.makedirs(tmp, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        root, ext = os.path.splitext(path)
        tmp = f"{root}{TMP}{os.getpid()}{ext}"  # the extension kept: savefig and friends choose the format by it
    try:
        yield tmp
        if folder:
            for name in sorted(os.listdir(tmp)):
                target = os.path.join(path, name)
                if os.path.isdir(target) and not os.path.islink(target):  # a subfolder is replaced whole
                    aside = os.path.join(tmp, f"{TMP}old")
                    os.replace(target, aside)
                    os.replace(os.path.join(tmp, name), target)
                    shutil.rmtree(aside)
                else:
                    os.replace(os.path.join(tmp, name), target)
            os.rmdir(tmp)
        else:
            with open(tmp, "rb+") as f:  # on disk before the rename, so a crash leaves the old or the new file
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, obj, indent: int = 2) -> None:
    """`obj` as JSON at `path`, written whole."""
    with written_whole(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=indent)


def shipped(path: str) -> str:
    """`path`, a file that comes inside the package (the page's files, the metric modules); a one-line error if this
    installation lacks it (a wheel built without its package data)."""
    if not os.path.isfile(path):
        raise UserError(f"{path} is missing from this installation of tinylm-hf: reinstall it "
                        f"(pip install --force-reinstall tinylm-hf), or build the wheel from a clone with its package "
                        f"data (pip wheel .)")
    return path
