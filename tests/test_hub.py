"""The Hub round trip against a Hub-compatible server on 127.0.0.1, driven by the real huggingface_hub client."""

import json

import pytest

from tinylm_hf.hub import files_to_push

from .conftest import TINY_RUN, run_script
from .hub_server import TOKENS

TOKEN = next(iter(TOKENS))
EXPECTED = {"config.json", "model.safetensors", "generation_config.json", "configuration_tinylm.py",
            "modeling_tinylm.py", "tokenizer.json", "tokenizer_config.json", "README.md",
            "loss_curve.png", "eval_results.json"}

PULL = """
import sys, json
wants_package = sys.argv[3] == "package"
if wants_package:
    import tinylm_hf
from transformers import AutoModelForCausalLM, AutoTokenizer
kw = {} if wants_package else {"trust_remote_code": True}
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], revision=sys.argv[2], **kw)
tok = AutoTokenizer.from_pretrained(sys.argv[1], revision=sys.argv[2], **kw)
ids = tok(tok.bos_token + "Once upon a time", return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=20, do_sample=False)
print(json.dumps({"tokens": out[0].tolist(), "class": type(model).__module__,
                  "package": "tinylm_hf" in sys.modules, "template": bool(tok.chat_template)}))
"""


def pull(hub, repo, revision, mode, tmp_path, cwd):
    env = {**hub.env, "HF_HOME": str(tmp_path / f"cache-{mode}-{revision}"), "HF_TOKEN": ""}  # empty cache
    proc = run_script("-c", PULL, repo, revision, mode, env=env, check=True, cwd=cwd,
                      **({} if mode == "package" else {}))
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_push_then_pull_anywhere(tiny_model_dir, hub, tmp_path):
    proc = run_script("-m", "tinylm_hf.hub", "push", tiny_model_dir, "alice/tiny-stories", env=hub.env, check=True)
    assert "pushed 10 files to alice/tiny-stories" in proc.stdout
    pushed = set(hub.state.repos["alice/tiny-stories"].branches["main"])
    assert pushed == EXPECTED == set(files_to_push(str(tiny_model_dir)))  # exactly the documented list
    assert TOKEN not in proc.stdout + proc.stderr

    local = pull(hub, str(tiny_model_dir), "main", "remote", tmp_path, tmp_path)
    # 1. a process without tinylm_hf, trusting the repository's code
    remote = pull(hub, "alice/tiny-stories", "main", "remote", tmp_path, tmp_path)
    assert not remote["package"] and "tinylm_hf" not in remote["class"]
    assert remote["tokens"] == local["tokens"]
    # 2. with tinylm_hf installed: our classes, the repository's code never runs (it would fail now)
    repo = hub.state.repos["alice/tiny-stories"]
    repo.branches["main"]["modeling_tinylm.py"] = b"raise RuntimeError('the remote code was executed')\n"
    installed = pull(hub, "alice/tiny-stories", "main", "package", tmp_path, None)
    assert installed["package"] and installed["class"] == "tinylm_hf.modeling_tinylm"
    assert installed["tokens"] == local["tokens"]


@pytest.mark.slow
def test_model_card_metadata_and_revision_pinning(tiny_model_dir, hub, tmp_path):
    run_script("-m", "tinylm_hf.hub", "push", tiny_model_dir, "alice/pinned", "--revision", "v1",
               "--commit-message", "first", env=hub.env, check=True)
    card = run_script("-c", "from huggingface_hub import ModelCard, hf_hub_download; c = ModelCard.load("
                            "hf_hub_download('alice/pinned', 'README.md', revision='v1')); "
                            "print(c.data.library_name, c.data.license, ' '.join(c.data.tags))",
                      env=hub.env, check=True).stdout
    assert card.split()[:2] == ["transformers", "apache-2.0"] and "tinylm" in card
    assert set(hub.state.repos["alice/pinned"].branches["main"]) == set()  # only the branch got the files
    pinned = pull(hub, "alice/pinned", "v1", "package", tmp_path, None)
    assert pinned["class"] == "tinylm_hf.modeling_tinylm"


@pytest.mark.slow
@pytest.mark.parametrize("case,needle", [
    ("no token", "no Hugging Face token: run `hf auth login` or set"),
    ("not yours", "refused to let this token write to bob/model (HTTP 403)"),
    ("not a model", "is not a model folder"),
])
def test_push_failures_are_one_line(tiny_model_dir, hub, tmp_path, case, needle):
    env, folder, repo = dict(hub.env), tiny_model_dir, "alice/model"
    if case == "no token":
        env["HF_TOKEN"] = ""
    elif case == "not yours":
        repo = "bob/model"
    else:
        folder = tmp_path / "notes"
        folder.mkdir()
        (folder / "notes.txt").write_text("hello")
    proc = run_script("-m", "tinylm_hf.hub", "push", folder, repo, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert needle in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_run_pretrain_push_to_hub_and_the_token_is_never_written(hub, tmp_path):
    out = tmp_path / "run"
    proc = run_script("run_pretrain.py", *TINY_RUN, "--max_steps", "10", "--eval_steps", "10", "--save_steps", "10",
                      "--output_dir", out, "--push_to_hub", "--hub_model_id", "alice/from-training",
                      "--hub_private_repo", "true", env=hub.env, check=True)
    repo = hub.state.repos["alice/from-training"]
    assert repo.private and set(repo.branches["main"]) == EXPECTED
    assert TOKEN not in proc.stdout + proc.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert all(TOKEN.encode() not in content for content in repo.branches["main"].values())


@pytest.mark.slow
def test_push_to_hub_without_token_fails_before_training(tmp_path, hub):
    proc = run_script("run_pretrain.py", *TINY_RUN, "--output_dir", tmp_path / "run", "--push_to_hub",
                      "--hub_model_id", "alice/x", env={**hub.env, "HF_TOKEN": ""})
    assert proc.returncode == 2 and "no Hugging Face token" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_exports_push_as_the_hub_keeps_them(random_model_dirs, hub, tmp_path):
    from tinylm_hf.export.gguf import write_gguf
    from tinylm_hf.export.onnx import onnx_folder

    onnx_folder(str(random_model_dirs["llama"]), str(tmp_path / "onnx"), quantize="q8")
    proc = run_script("-m", "tinylm_hf.hub", "push", tmp_path / "onnx", "alice/tiny-ONNX", env=hub.env, check=True)
    assert set(hub.state.repos["alice/tiny-ONNX"].branches["main"]) == {
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx",
        "onnx/model_quantized.onnx"}, proc.stdout
    write_gguf(str(random_model_dirs["llama"]), str(tmp_path / "tiny.gguf"), "q8_0")
    run_script("-m", "tinylm_hf.hub", "push", tmp_path / "tiny.gguf", "alice/tiny-GGUF", env=hub.env, check=True)
    files = hub.state.repos["alice/tiny-GGUF"].branches["main"]
    assert set(files) == {"tiny.gguf", "README.md"}
    assert files["tiny.gguf"] == (tmp_path / "tiny.gguf").read_bytes() and b"llama-cli -m tiny.gguf" in files["README.md"]
    proc = run_script("-m", "tinylm_hf.hub", "push", tmp_path / "missing.gguf", "alice/x-GGUF", env=hub.env)
    assert proc.returncode == 2 and "is not a file" in proc.stderr.strip().splitlines()[-1]


ENSEMBLE_LOGITS = """
import sys, json
from tinylm_hf.ensemble import Ensemble
ensemble = Ensemble.from_pretrained(sys.argv[1])
tok = ensemble.tokenizer
ids = tok(tok.bos_token + "Once upon a time", add_special_tokens=False, return_tensors="pt").input_ids
print(json.dumps({"members": [m["path"].endswith(("member-1", "member-2")) for m in ensemble.config.members],
                  "logits": ensemble(ids).logits[0, -1].tolist()}))
"""


@pytest.mark.slow
def test_an_ensemble_pushes_with_its_members_inside_and_loads_from_the_hub(random_model_dirs, hub, tmp_path):
    import shutil

    from tinylm_hf.ensemble import Ensemble

    folder = tmp_path / "pair"
    for i, name in enumerate(("llama", "gpt"), 1):
        shutil.copytree(random_model_dirs[name], folder / f"member-{i}")
    Ensemble.from_pretrained([str(folder / "member-1"), str(folder / "member-2")]).save_pretrained(str(folder))
    run_script("-m", "tinylm_hf.hub", "push", folder, "alice/pair", env=hub.env, check=True)
    pushed = set(hub.state.repos["alice/pair"].branches["main"])
    assert {"config.json", "README.md", "tokenizer.json", "member-1/model.safetensors", "member-2/config.json",
            "member-2/model.safetensors"} <= pushed
    local = json.loads(run_script("-c", ENSEMBLE_LOGITS, folder, check=True).stdout.strip().splitlines()[-1])
    env = {**hub.env, "HF_HOME": str(tmp_path / "empty-cache"), "HF_TOKEN": ""}
    remote = json.loads(run_script("-c", ENSEMBLE_LOGITS, "alice/pair", env=env, check=True).stdout.strip()
                        .splitlines()[-1])
    assert remote == local and remote["members"] == [True, True]
