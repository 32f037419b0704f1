"""Shared fixtures: offline Hub, the real TinyStories excerpt in tests/data, a tiny tokenizer, a GPT-2-format
tokenizer folder built from the excerpt, and a tiny trained model. Nothing outside this repository is read."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"  # real TinyStories excerpts (CDLA-Sharing-1.0, see tests/data/README.md)
TRAIN_SAMPLE = DATA / "TinyStories-train-excerpt.txt"
VALID_SAMPLE = DATA / "TinyStories-valid-excerpt.txt"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
JS = ROOT / "js"  # transformers.js and node-llama-cpp, installed by .ci/run (benchmarks.common.llama_cpp runs it)
needs_js = pytest.mark.skipif(shutil.which("node") is None or not (JS / "node_modules" / "node-llama-cpp").exists(),
                              reason="the JavaScript runtimes are not installed: cd js && npm install --ignore-scripts "
                                     "--omit=optional (.ci/run does)")

GPT2_VOCAB = 1000  # the gpt2_dir fixture's vocabulary, <|endoftext|> included (GPT-2's: 50257)

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


def pytest_configure(config):
    for path in (TRAIN_SAMPLE, VALID_SAMPLE):
        if not path.is_file():
            raise pytest.UsageError(f"{path} is missing: the tests read the TinyStories excerpts in tests/data, "
                                    f"which come with the repository (git checkout -- tests/data)")


def free_port() -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_page(url: str, proc: subprocess.Popen, seconds: float = 120) -> str:
    """The page at `url` once the server process `proc` serves it (fails if the process ends or time runs out)."""
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else proc.returncode
            assert time.time() < deadline, f"nothing served {url} within {seconds:g} s"
            time.sleep(0.5)


def launch_chromium(playwright):
    """Headless Debian Chromium, quiet: no background requests of its own."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])


@pytest.fixture
def hub(tmp_path):
    """A Hub-compatible server on 127.0.0.1 (tests/hub_server.py); `hub.env` points the real client at it, with a
    token that may write to alice/."""
    from .hub_server import TOKENS, HubServer

    with HubServer() as server:
        server.env = {"HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": next(iter(TOKENS)),
                      "HF_HOME": str(tmp_path / "home"), "HF_HUB_DISABLE_XET": "1"}
        yield server


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tinylm_hf.data.embedded import generate_stories
    from tinylm_hf.tokenizer import train_tokenizer

    return train_tokenizer((s.story for s in generate_stories(300)), vocab_size=400)


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> Path:
    """A folder with GPT-2's two tokenizer files (`vocab.json` + `merges.txt`, the `#version` line left out as in
    some copies) for a byte-level BPE of GPT2_VOCAB tokens trained on the excerpt the way GPT-2's was made
    (byte-level pre-tokenizer without a prefix space, `<|endoftext|>` its last token, as GPT-2's 50256)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=GPT2_VOCAB - 1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train([str(TRAIN_SAMPLE)], trainer)
    tokenizer.add_special_tokens(["<|endoftext|>"])
    folder = tmp_path_factory.mktemp("gpt2")
    tokenizer.model.save(str(folder))
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    merges = (folder / "merges.txt").read_text().splitlines()
    (folder / "merges.txt").write_text("\n".join(m for m in merges if not m.startswith("#version")) + "\n")
    return folder


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
