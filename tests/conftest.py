"""Shared fixtures: offline Hub, the shared sample data, a tiny tokenizer and a tiny trained model."""

import os
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


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tinylm_hf.data.embedded import generate_stories
    from tinylm_hf.tokenizer import train_bpe

    return train_bpe((s.story for s in generate_stories(300)), vocab_size=400)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny model pretrained by run_pretrain.py's own main() (a real Trainer run, 40 steps)."""
    from tinylm_hf.training.pretrain import main

    out = tmp_path_factory.mktemp("tiny") / "model"
    main([*TINY_RUN, "--output_dir", str(out)])
    return out
