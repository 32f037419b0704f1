"""Reliability: bad input through the real scripts (one line, exit code 2), faults (SIGKILL, Ctrl-C, a full
disk) with nothing lost, and safety (pickle weights refused)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from tinylm_hf.data.tokens import read_meta

from .conftest import GPT2_VOCAB, ROOT, TINY_RUN, TRAIN_SAMPLE, run_script


def one_line_error(proc, needle):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert needle in last, last
    return last


@pytest.fixture(scope="module")
def gpt2_tokens(tmp_path_factory, gpt2_dir):
    """Token files of the TinyStories sample built with GPT-2's tokenizer (another tokenizer than TINY_RUN's)."""
    folder = tmp_path_factory.mktemp("gpt2tokens")
    proc = run_script("run_pretrain.py", *TINY_RUN, "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2",
                      "--tokenizer_name", gpt2_dir, "--token_dir", folder / "tokens", "--max_train_samples", "50",
                      "--output_dir", folder / "run", check=True)
    assert read_meta(str(folder / "tokens"))["vocab_size"] == GPT2_VOCAB + 4, proc.stdout[-500:]
    return folder / "tokens"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing file", "empty corpus", "missing column", "not UTF-8",
                                  "vocabulary mismatch", "block_size too large", "other tokenizer's token files",
                                  "truncated safetensors", "corrupted safetensors", "impossible shapes",
                                  "unknown preset", "foreign output folder", "Hub id offline", "pickle weights"])
def test_bad_input_table(case, tmp_path, tiny_model_dir, gpt2_tokens, gpt2_dir):
    out = ["--output_dir", str(tmp_path / "out")]
    model = tmp_path / "model"
    if case in ("truncated safetensors", "corrupted safetensors", "pickle weights", "impossible shapes"):
        shutil.copytree(tiny_model_dir, model, ignore=shutil.ignore_patterns("checkpoint-*", "tokens"))
    weights = model / "model.safetensors"
    cases = {
        "missing file": (["run_pretrain.py", "--dataset", "nope.txt"], "file not found: nope.txt"),
        "empty corpus": (["run_pretrain.py", "--dataset", "EMPTY"], "is empty"),
        "missing column": (["run_pretrain.py", "--dataset", "JSONL", "--text_column", "story"],
                           "has no column 'story' (columns: text)"),
        "not UTF-8": (["run_pretrain.py", "--dataset", "LATIN1"], "is not UTF-8 text"),
        "vocabulary mismatch": (["run_pretrain.py", "--model_name_or_path", str(tiny_model_dir), "--tokenizer_name",
                                 str(gpt2_dir)],
                                f"the tokenizer has {GPT2_VOCAB + 4} tokens but the model's vocabulary is 400"),
        "block_size too large": (["run_instruct.py", "--model_name_or_path", str(tiny_model_dir), "--block_size",
                                  "999"], "--block_size 999 is larger than the model's context (128)"),
        "other tokenizer's token files": (["run_pretrain.py", *TINY_RUN, "--token_dir", str(gpt2_tokens)],
                                          "were built with another tokenizer"),
        "truncated safetensors": (["run_instruct.py", "--model_name_or_path", str(model)], "corrupted or truncated"),
        "corrupted safetensors": (["run_instruct.py", "--model_name_or_path", str(model)], "corrupted or truncated"),
        "impossible shapes": (["run_instruct.py", "--model_name_or_path", str(model)],
                              "hidden_size=32 is not divisible by num_attention_heads=5"),
        "unknown preset": (["run_pretrain.py", "--preset", "gpt-5"], "unknown preset 'gpt-5': choose one of debug"),
        "foreign output folder": (["run_pretrain.py", *TINY_RUN, "--output_dir", str(tmp_path)],
                                  "already holds other files"),
        "Hub id offline": (["run_instruct.py", "--model_name_or_path", "someone/some-model"],
                           "the Hub cannot be reached (offline)"),
        "pickle weights": (["run_instruct.py", "--model_name_or_path", str(model)],
                           "pickle checkpoints (.bin) are refused"),
    }
    (tmp_path / "empty.txt").write_text("\n<|endoftext|>\n")
    (tmp_path / "d.jsonl").write_text('{"text": "a story"}\n{"text": "another story"}\n')
    (tmp_path / "latin1.txt").write_bytes("Il était une fois un garçon.\n<|endoftext|>\n".encode("latin-1"))
    (tmp_path / "precious.txt").write_text("keep me")
    if case == "truncated safetensors":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif case == "corrupted safetensors":
        data = bytearray(weights.read_bytes())
        data[10:40] = b"\xff" * 30
        weights.write_bytes(bytes(data))
    elif case == "pickle weights":
        torch.save({"x": torch.zeros(1)}, model / "pytorch_model.bin")
        weights.unlink()
    elif case == "impossible shapes":
        config = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**config, "num_attention_heads": 5, "num_key_value_heads": 5}))
    args, needle = cases[case]
    args = [{"EMPTY": str(tmp_path / "empty.txt"), "JSONL": str(tmp_path / "d.jsonl"),
             "LATIN1": str(tmp_path / "latin1.txt")}.get(a, a) for a in args]
    if "--output_dir" not in args:
        args += out
    one_line_error(run_script(*args), needle)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    if case == "other tokenizer's token files":
        assert read_meta(str(gpt2_tokens))["vocab_size"] == GPT2_VOCAB + 4  # refused, not overwritten


@pytest.mark.slow
def test_debug_flag_shows_the_traceback(tmp_path):
    proc = run_script("run_pretrain.py", "--dataset", "nope.txt", "--output_dir", tmp_path, "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.slow
def test_sigkill_while_writing_token_files_is_noticed_and_rebuilt(tmp_path, gpt2_dir):
    out = tmp_path / "run"
    corpus = tmp_path / "stories.txt"  # the excerpt 8 times (2 MB): long enough to be caught mid-write
    stories = TRAIN_SAMPLE.read_text()
    corpus.write_text("\n<|endoftext|>\n".join([stories] * 8))
    args = ["run_pretrain.py", "--preset", "debug", "--dataset", str(corpus), "--tokenizer_name", str(gpt2_dir),
            "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--block_size", "64",
            "--output_dir", str(out)]
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    tokens = out / "tokens"
    deadline = time.time() + 120
    while not (tokens.exists() and any(".tmp-" in p.name for p in tokens.iterdir())):
        assert proc.poll() is None and time.time() < deadline, "token files were never being written"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_meta(str(tokens)) is None  # incomplete: no meta.json yet
    rerun = run_script(*args, check=True)
    assert "the token files in" in rerun.stdout and "are incomplete" in rerun.stdout
    assert not [p.name for p in tokens.iterdir() if ".tmp-" in p.name]  # the killed run's leftovers are gone
    meta = read_meta(str(tokens))
    assert meta["splits"]["train"]["documents"] == 8 * 317 - meta["splits"]["validation"]["documents"]


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_when_asked(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "run_pretrain.py", *TINY_RUN, "--max_steps", "100000",
                             "--save_steps", "50000", "--eval_steps", "50000", "--save_on_interrupt", "true",
                             "--logging_steps", "5", "--output_dir", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 180
    for line in proc.stdout:  # wait until training is under way
        if "'loss'" in line or time.time() > deadline:
            break
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, rest[-2000:]
    checkpoints = [p for p in out.iterdir() if p.name.startswith("checkpoint-")]
    assert len(checkpoints) == 1 and (checkpoints[0] / "trainer_state.json").exists()
    assert "continue with --resume_from_checkpoint true" in rest
    step = int(checkpoints[0].name.split("-")[1])
    assert 5 <= step < 50000


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_while_saving_is_a_clear_error_and_the_previous_checkpoint_survives(small_disk, tmp_path):
    proc = run_script("run_pretrain.py", *TINY_RUN, "--max_steps", "200", "--save_steps", "5", "--eval_steps", "5",
                      "--save_total_limit", "100", "--token_dir", tmp_path / "tokens", "--output_dir", small_disk)
    one_line_error(proc, "the disk is full while writing to")
    checkpoints = sorted((p for p in small_disk.iterdir() if p.name.startswith("checkpoint-")),
                         key=lambda p: int(p.name.split("-")[1]))
    complete = [p for p in checkpoints if (p / "trainer_state.json").exists()]
    assert complete, "no checkpoint was saved before the disk filled up"
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(complete[-1])  # the last complete checkpoint loads
    assert not (small_disk / "model.safetensors").exists()  # no half-written final model


def test_a_folder_written_whole_replaces_its_files_and_subfolders_and_keeps_the_rest(tmp_path):
    from tinylm_hf.files import written_whole

    out = tmp_path / "out"
    (out / "onnx").mkdir(parents=True)
    (out / "onnx" / "old.onnx").write_text("old")
    (out / "checkpoint-1").mkdir()
    (out / "config.json").write_text("{}")
    with written_whole(str(out), folder=True) as tmp:
        os.makedirs(os.path.join(tmp, "onnx"))
        open(os.path.join(tmp, "onnx", "model.onnx"), "w").write("new")
        open(os.path.join(tmp, "config.json"), "w").write('{"new": 1}')
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1", "config.json", "onnx"]
    assert [p.name for p in (out / "onnx").iterdir()] == ["model.onnx"]  # the subfolder replaced whole
    assert (out / "config.json").read_text() == '{"new": 1}'
    with pytest.raises(RuntimeError), written_whole(str(out), folder=True) as tmp:
        open(os.path.join(tmp, "config.json"), "w").write("half")
        raise RuntimeError("the writer fails")
    assert (out / "config.json").read_text() == '{"new": 1}' and len(list(out.iterdir())) == 3  # untouched
