"""Push a model folder to the Hugging Face Hub (exactly what a stranger needs, nothing else), or pull one.

    tinylm hub push DIR USER/NAME [--revision BRANCH] [--private] [--commit-message MSG]
    tinylm hub push ONNX_DIR USER/NAME-ONNX         an export's folder (onnx or web)
    tinylm hub push MODEL.gguf USER/NAME-GGUF       a GGUF file, with a model card saying how to run it
    tinylm hub pull USER/NAME [DIR] [--revision REV]  a model folder from the Hub (DIR: default ./NAME)

What is uploaded (HUB_FILES): the weights (model.safetensors), config.json (with auto_map), the code files (two; four
for MEGABYTE), the tokenizer files with the chat template, generation_config.json, the model card (README.md), its plot and
eval_results.json; for an exported folder, its ONNX graphs and web page (the Hub's convention: ONNX weights in their
own USER/NAME-ONNX repository, which transformers.js's pipeline("text-generation", "USER/NAME-ONNX") loads); for an
ensemble's folder, its own files and those of its members inside it (`member-*/`). Never: checkpoints with optimizer
states (unless --include-checkpoints), token files, samples, or anything else in the folder.

A pull downloads the same files (HUB_FILES) with the `huggingface_hub` client: into DIR, or into the Hub cache for
the commands that take a Hub id where they need a folder (`tinylm export`, `tinylm convert`).

The token comes only from the standard places (the HF_TOKEN variable, or `hf auth login`); it is never printed
or written into any file.
"""

import argparse
import fnmatch
import json
import os
import tempfile

from huggingface_hub import HfApi, get_token, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from .errors import UserError, hub_hint, run_cli

HUB_FILES = ["config.json", "model.safetensors", "model-*.safetensors", "model.safetensors.index.json",
             "generation_config.json", "configuration_tinylm.py", "modeling_tinylm.py", "configuration_megabyte.py",
             "modeling_megabyte.py", "tokenizer.json",
             "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "README.md",
             "loss_curve.png", "eval_results.json", "onnx/*.onnx", "index.html", "app.js", "runtime/*", "*.gguf"]
CHECKPOINT_FILES = ["checkpoint-*/*"]
MEMBER_FILES = [f"member-*/{p}" for p in HUB_FILES]  # an ensemble's members inside its folder (tinylm_hf/ensemble.py)


def files_to_push(folder: str, include_checkpoints: bool = False) -> list[str]:
    """The folder's files that a push uploads (paths relative to the folder)."""
    patterns = HUB_FILES + MEMBER_FILES + (CHECKPOINT_FILES if include_checkpoints else [])
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = os.path.relpath(os.path.join(root, name), folder)
            if any(fnmatch.fnmatch(path, p) for p in patterns):
                found.append(path)
    return sorted(found)


GGUF_CARD = """---
library_name: gguf
tags: [tinylm-hf, gguf, llama.cpp]
---
# {name}

`{file}`: a small language model trained with tinylm-hf, exported for llama.cpp (one file: weights,
tokenizer and chat template).

```bash
llama-cli -m {file} -p "Once upon a time" -n 200
llama-server -m {file}          # then http://127.0.0.1:8080
```
"""


def gguf_folder(path: str, folder: str) -> str:
    """A folder to push for the GGUF file `path`: the file (linked) and a model card saying how to run it."""
    if not os.path.isfile(path):
        raise UserError(f"{path} is not a file: write it first (tinylm export gguf MODEL_DIR {path})")
    name = os.path.basename(path)
    os.symlink(os.path.abspath(path), os.path.join(folder, name))
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write(GGUF_CARD.format(name=os.path.splitext(name)[0], file=name))
    return folder


def check_model_folder(folder: str) -> None:
    if not os.path.isdir(folder):
        raise UserError(f"{folder} is not a folder: push the output folder of tinylm pretrain / tinylm instruct")
    try:
        with open(os.path.join(folder, "config.json")) as f:
            model_type = json.load(f).get("model_type")
    except (OSError, ValueError):
        model_type = None
    weights = [n for n in files_to_push(folder) if n.endswith((".safetensors", ".onnx", ".gguf"))]
    if not (model_type or any(n.endswith(".gguf") for n in weights)) or not weights:
        raise UserError(f"{folder} is not a model folder (it needs config.json and model.safetensors, or onnx/): push "
                        f"the output folder of tinylm pretrain / tinylm instruct, or of tinylm export")


def is_repo_id(name: str) -> bool:
    """USER/NAME (or ORG/NAME), not a path."""
    return name.count("/") == 1 and not name.startswith((".", "/"))


def check_repo_id(repo_id: str) -> None:
    if not is_repo_id(repo_id):
        raise UserError(f"{repo_id!r} is not a repository id: use USER/NAME (or ORG/NAME)")


def push_folder(folder: str, repo_id: str, revision: str | None = None, private: bool = False,
                commit_message: str | None = None, include_checkpoints: bool = False) -> str:
    """Create the repository if needed and upload the folder's Hub files in one commit; returns the commit URL."""
    check_model_folder(folder)
    check_repo_id(repo_id)
    token = get_token()
    if not token:
        raise UserError("no Hugging Face token: run `hf auth login` or set the HF_TOKEN environment variable")
    api = HfApi(token=token)
    allow = files_to_push(folder, include_checkpoints)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(folder_path=folder, repo_id=repo_id, revision=revision, allow_patterns=allow,
                                   commit_message=commit_message or f"Upload {os.path.basename(folder)} with tinylm-hf")
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            raise UserError(f"the Hub refused to let this token write to {repo_id} (HTTP {status}): check that the "
                            f"token has write access to that namespace (`hf auth whoami`), or push to your own "
                            f"USER/NAME") from err
        raise UserError(f"the push to {repo_id} failed (HTTP {status}): {str(err).splitlines()[0][:200]}") from err
    except OSError as err:  # connection errors
        raise UserError(f"cannot reach the Hub to push {repo_id}: check the network (HF_ENDPOINT="
                        f"{os.environ.get('HF_ENDPOINT', 'https://huggingface.co')})") from err
    return commit.commit_url


def pull(repo_id: str, folder: str | None = None, revision: str | None = None) -> str:
    """Download a model repository's Hub files into `folder` (None: the Hub cache); returns the local folder."""
    check_repo_id(repo_id)
    if folder and os.path.isfile(folder):
        raise UserError(f"{folder} is a file: name a folder to download {repo_id} into")
    where = repo_id + (f" at revision {revision!r}" if revision else "")
    try:
        return snapshot_download(repo_id, revision=revision, local_dir=folder, allow_patterns=HUB_FILES + MEMBER_FILES)
    except RevisionNotFoundError as err:
        raise UserError(f"{repo_id} has no revision {revision!r}: name a branch, tag or commit it has "
                        f"(https://huggingface.co/{repo_id}/tree/main lists them)") from err
    except RepositoryNotFoundError as err:
        raise UserError(f"no repository {repo_id} on the Hub (or it is private: `hf auth login` with a token that "
                        f"can read it)") from err
    except (HfHubHTTPError, OSError) as err:  # offline, connection errors
        raise UserError(f"cannot download {where}: {hub_hint(err)}") from err


def local_folder(name_or_path: str, revision: str | None = None) -> str:
    """A model folder for the commands that read files (export, convert): a folder as it is, a Hub id pulled into
    the Hub cache (the files are downloaded once)."""
    if os.path.isdir(name_or_path):
        if revision:
            raise UserError(f"--revision {revision} names a Hub revision, but {name_or_path} is a local folder")
        return name_or_path
    if not is_repo_id(name_or_path):
        raise UserError(f"{name_or_path} is neither a model folder nor a Hub id (USER/NAME)")
    return pull(name_or_path, revision=revision)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="tinylm hub", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("push", help="upload a model folder to the Hub")
    push.add_argument("folder", help="the model folder (output of tinylm pretrain / tinylm instruct), an export's "
                      "folder, or a .gguf file")
    push.add_argument("repo_id", help="USER/NAME on the Hub")
    push.add_argument("--revision", help="a branch to push to (created if missing); default: main")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--commit_message", "--commit-message", help="the commit message")
    push.add_argument("--include_checkpoints", "--include-checkpoints", action="store_true",
                      help="also upload checkpoint-* folders (with optimizer states)")
    get = commands.add_parser("pull", help="download a model folder from the Hub")
    get.add_argument("repo_id", help="USER/NAME on the Hub")
    get.add_argument("folder", nargs="?", help="the folder to write (default: ./NAME)")
    get.add_argument("--revision", help="a branch, tag or commit to download (default: main)")
    args = parser.parse_args(argv)
    if args.command == "pull":
        folder = args.folder or args.repo_id.split("/")[-1]
        pull(args.repo_id, folder, args.revision)
        print(f"pulled {len(files_to_push(folder))} files of {args.repo_id} into {folder}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = gguf_folder(args.folder, tmp) if args.folder.endswith(".gguf") else args.folder
        url = push_folder(folder, args.repo_id, args.revision, args.private, args.commit_message,
                          args.include_checkpoints)
        print(f"pushed {len(files_to_push(folder, args.include_checkpoints))} files to {args.repo_id}: {url}")


if __name__ == "__main__":
    run_cli(main)
