"""The package as a stranger gets it: a wheel built from this clone, installed into a new virtual environment, its
`tinylm` command run from a folder outside the repository; and `tinylm hub pull` against the test Hub server."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT, TINY_RUN, free_port, run_script, wait_for_page


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `python -m build` makes of this clone (no download: the build backend installed by .[dev])."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, cwd=ROOT)
    return next(dist.glob("tinylm_hf-*.whl"))


@pytest.fixture(scope="module")
def venv_bin(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed. It sees this interpreter's packages (torch, transformers,
    ...) so nothing is downloaded; tinylm-hf itself is the wheel's copy, not this clone."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)
    return venv / "bin"


def tinylm(venv_bin: Path, *args, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(venv_bin / "tinylm"), *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def test_the_wheel_holds_the_command_the_page_the_metrics_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for file in ("tinylm_hf/export/page/index.html", "tinylm_hf/export/page/app.js", "tinylm_hf/cli.py",
                 *(f"tinylm_hf/metrics/{m}/{m}.py" for m in ("word_inclusion", "feature_adherence", "repetition",
                                                             "chrf", "rouge_l"))):
        assert file in names, file
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "tinylm = tinylm_hf.cli:main" in entry_points
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata


@pytest.mark.slow
def test_a_wheel_install_trains_looks_inside_exports_and_serves_from_another_folder(venv_bin, tmp_path):
    work = tmp_path / "elsewhere"  # not the repository: nothing of the clone is on the path
    work.mkdir()
    where = subprocess.run([str(venv_bin / "python"), "-c", "import tinylm_hf; print(tinylm_hf.__file__)"],
                           capture_output=True, text=True, cwd=work, check=True).stdout.strip()
    assert where.startswith(str(venv_bin.parent)) and not where.startswith(str(ROOT)), where

    help_ = tinylm(venv_bin, "--help", cwd=work)
    assert help_.returncode == 0 and all(c in help_.stdout for c in ("pretrain", "instruct", "demo", "hub", "export"))
    assert "usage: tinylm pretrain" in tinylm(venv_bin, "pretrain", "--help", cwd=work).stdout

    trained = tinylm(venv_bin, "pretrain", *TINY_RUN, "--max_steps", "1000", "--time_budget", "1",
                     "--output_dir", "model", cwd=work)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "of a 1-minute budget" in trained.stdout
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(os.listdir(work / "model"))

    xray = tinylm(venv_bin, "xray", "model", "Once upon a time", "--colour", "never", cwd=work)
    assert xray.returncode == 0 and "bits" in xray.stdout, xray.stderr[-2000:]

    web = tinylm(venv_bin, "export", "web", "model", "web", cwd=work)
    assert web.returncode == 0, web.stderr[-2000:]
    assert {"index.html", "app.js", "onnx"} <= set(os.listdir(work / "web"))

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    demo = subprocess.Popen([str(venv_bin / "tinylm"), "demo", "--model", "model", "--port", str(port)], cwd=work,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "gradio" in wait_for_page(f"http://127.0.0.1:{port}/", demo).lower()
    finally:
        demo.terminate()
        demo.wait(timeout=30)


def test_unknown_command_is_one_line(venv_bin, tmp_path):
    proc = tinylm(venv_bin, "train", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: unknown command 'train': use one of pretrain, instruct, tokenizer, demo, xray, export, convert, hub, "
        "presets (tinylm --help)")


def test_the_command_runs_each_step_in_this_process(tmp_path, random_model_dirs, capsys, monkeypatch):
    """The fast tier's way through `tinylm` (the slow tier runs it installed, in processes): its help, a tokenizer
    trained, a GGUF file exported (read back by the gguf package), and a bad argument as one line with exit code 2."""
    from gguf import GGUFReader

    from tinylm_hf import cli

    from .conftest import TRAIN_SAMPLE

    monkeypatch.setattr(sys, "argv", ["tinylm"])  # (each command names itself in sys.argv[0])
    cli.main(["--help"])
    assert "tokenizer" in capsys.readouterr().out
    cli.main(["tokenizer", "--dataset", str(TRAIN_SAMPLE), "--vocab_size", "300", "--output_dir", str(tmp_path / "tok")])
    assert (tmp_path / "tok" / "tokenizer.json").exists()
    cli.main(["export", "gguf", str(random_model_dirs["llama"]), str(tmp_path / "model.gguf")])
    assert GGUFReader(str(tmp_path / "model.gguf")).fields["general.architecture"].contents() == "llama"
    with pytest.raises(SystemExit) as stop:
        cli.main(["tokenizer", "--dataset", str(tmp_path / "missing.txt"), "--output_dir", str(tmp_path / "t2")])
    assert stop.value.code == 2 and "missing.txt" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.slow
def test_hub_pull_downloads_a_model_folder_at_a_revision(tiny_model_dir, hub, tmp_path):
    run_script("-m", "tinylm_hf", "hub", "push", tiny_model_dir, "alice/tiny", env=hub.env, check=True)
    run_script("-m", "tinylm_hf", "hub", "push", tiny_model_dir, "alice/tiny", "--revision", "v2", env=hub.env,
               check=True)
    hub.state.repos["alice/tiny"].branches["v2"]["README.md"] = b"the v2 card"
    pulled = run_script("-m", "tinylm_hf", "hub", "pull", "alice/tiny", "--revision", "v2", env=hub.env, check=True,
                        cwd=tmp_path)
    folder = tmp_path / "tiny"
    assert f"into {folder.name}" in pulled.stdout
    assert (folder / "README.md").read_text() == "the v2 card"
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (folder / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
    # the pulled folder is a model the other commands take
    xray = run_script("-m", "tinylm_hf", "xray", folder, "Once upon a time", "--colour", "never", check=True)
    assert "bits" in xray.stdout
    # a Hub id where a folder is needed is pulled into the Hub cache
    converted = run_script("-m", "tinylm_hf", "convert", "--to", "gpt2", "alice/tiny", tmp_path / "gpt2",
                           "--revision", "v2", env=hub.env, check=True)
    assert (tmp_path / "gpt2" / "model.safetensors").exists(), converted.stdout


@pytest.mark.slow
@pytest.mark.parametrize("args,needle", [
    (["alice/nothing-here"], "no repository alice/nothing-here on the Hub"),
    (["alice/tiny", "--revision", "v9"], "alice/tiny has no revision 'v9'"),
    (["not-an-id"], "'not-an-id' is not a repository id: use USER/NAME"),
])
def test_hub_pull_failures_are_one_line(tiny_model_dir, hub, tmp_path, args, needle):
    run_script("-m", "tinylm_hf", "hub", "push", tiny_model_dir, "alice/tiny", env=hub.env, check=True)
    proc = run_script("-m", "tinylm_hf", "hub", "pull", *args, env=hub.env, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert needle in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("command", [["xray", "MODEL", "Once"], ["export", "onnx", "MODEL", "OUT"],
                                     ["instruct", "--model_name_or_path", "MODEL", "--output_dir", "OUT"]])
def test_a_model_folder_without_its_tokenizer_files_is_one_line(tiny_model_dir, tmp_path, command):
    model = tmp_path / "weights-only"
    model.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        (model / name).write_bytes((tiny_model_dir / name).read_bytes())
    args = [str(model) if a == "MODEL" else str(tmp_path / "out") if a == "OUT" else a for a in command]
    proc = run_script("-m", "tinylm_hf", *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"{model} has no tokenizer files (tokenizer.json" in proc.stderr.strip().splitlines()[-1]


def test_an_installation_without_the_page_or_a_metric_module_is_one_line(monkeypatch, tmp_path):
    """What a wheel built without its package data would meet: one line naming the missing file, before any work."""
    from tinylm_hf import UserError, metrics
    from tinylm_hf.export import web

    monkeypatch.setattr(web, "PAGE", str(tmp_path / "page"))
    with pytest.raises(UserError, match=r"page/index.html is missing from this installation of tinylm-hf: reinstall"):
        web.web_folder(str(tmp_path / "never-read"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(metrics, "__file__", str(tmp_path / "metrics" / "__init__.py"))
    with pytest.raises(UserError, match=r"metrics/chrf/chrf.py is missing from this installation"):
        metrics.metric_path("chrf")
