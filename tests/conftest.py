"""Shared fixtures: offline Hub, the shared sample data, a tiny tokenizer and a tiny trained model."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
TRAIN_SAMPLE = SHARED / "tinystories" / "TinyStories-train-sample.txt"
VALID_SAMPLE = SHARED / "tinystories" / "TinyStories-valid-sample.txt"
GPT2_DIR = SHARED / "gpt2"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
JS = ROOT / "js"  # transformers.js and node-llama-cpp, installed by .ci/run (benchmarks.common.llama_cpp runs it)
needs_js = pytest.mark.skipif(shutil.which("node") is None or not (JS / "node_modules" / "node-llama-cpp").exists(),
                              reason="the JavaScript runtimes are not installed: cd js && npm install --ignore-scripts "
                                     "--omit=optional (.ci/run does)")

# a tiny pretraining run: the debug preset on a small embedded corpus
TINY_RUN = ["--preset", "debug", "--embedded_stories", "600", "--vocab_size", "400", "--block_size", "128",
            "--max_steps", "40", "--eval_steps", "20", "--save_steps", "20", "--logging_steps", "10",
            "--per_device_train_batch_size", "8", "--learning_rate", "3e-3"]


def run_script(*args, env=None, timeout=600, check=False, cwd=ROOT) -> subprocess.CompletedProcess:
    """Run a command in a fresh Python process, offline, capturing its output."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def launch_chromium(playwright):
    """Headless Debian Chromium, quiet: no background requests of its own."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tinylm_hf.data.embedded import generate_stories
    from tinylm_hf.tokenizer import train_tokenizer

    return train_tokenizer((s.story for s in generate_stories(300)), vocab_size=400)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny model pretrained by run_pretrain.py's own main() (a real Trainer run, 40 steps)."""
    from tinylm_hf.training.pretrain import main

    out = tmp_path_factory.mktemp("tiny") / "model"
    main([*TINY_RUN, "--output_dir", str(out)])
    return out


@pytest.fixture(scope="session")
def random_model_dirs(tiny_tokenizer, tmp_path_factory) -> dict[str, Path]:
    """{"llama": folder, "gpt": folder, "qwen3": folder}: the debug presets (the llama one with grouped-query
    attention; "qwen3": it with QK-norm, whose norm weights are drawn too), random weights drawn wide (std 0.3) so
    that greedy continuations vary and depend on attention: exactness needs no training, but a quiet model repeats
    one token whatever a runtime gets wrong."""
    import torch

    from tinylm_hf.configuration_tinylm import TinyLMConfig
    from tinylm_hf.modeling_tinylm import TinyLMForCausalLM
    from tinylm_hf.presets import PRESETS

    folders = {}
    shapes = (("llama", "debug-llama", {}), ("gpt", "debug", {}), ("qwen3", "debug-llama", {"qk_norm": True}))
    for name, preset, extra in shapes:
        shape = {k: v for k, v in PRESETS[preset].items() if k != "note"}
        config = TinyLMConfig(**{**shape, **extra, "vocab_size": len(tiny_tokenizer)}, initializer_range=0.3,
                              bos_token_id=tiny_tokenizer.bos_token_id, eos_token_id=tiny_tokenizer.eos_token_id,
                              pad_token_id=tiny_tokenizer.pad_token_id)
        torch.manual_seed(0)
        model = TinyLMForCausalLM(config)
        with torch.no_grad():  # the q/k norm weights start at 1: drawn, a runtime that swaps or skips them shows
            for param_name, param in model.named_parameters():
                if param_name.endswith(("q_norm.weight", "k_norm.weight")):
                    param.uniform_(0.5, 1.5)
        folders[name] = tmp_path_factory.mktemp(name) / "model"
        model.save_pretrained(folders[name])
        tiny_tokenizer.save_pretrained(folders[name])
    return folders
