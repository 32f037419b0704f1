"""Pretraining: the output folder, each callback through a real Trainer run, resume after SIGKILL, torchrun."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import TrainerCallback, default_data_collator

from tinylm_hf import UserError
from tinylm_hf.data.tokens import TokenWindows
from tinylm_hf.tokenizer import load_tokenizer
from tinylm_hf.training import run
from tinylm_hf.training.arguments import TinyLMTrainingArguments
from tinylm_hf.training.optimizer import weight_decay_for_passes
from tinylm_hf.training.pretrain import SAMPLE_PROMPTS

from .conftest import ROOT, TINY_RUN, free_port, run_script

FOLDER_FILES = {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                "tokenizer_config.json", "configuration_tinylm.py", "modeling_tinylm.py",
                "README.md", "loss_curve.png", "eval_results.json"}

LOAD_IN_FRESH_PROCESS = """
import sys, json
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True)
tok = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
ids = tok(tok.bos_token + "Once upon a time", return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=20, do_sample=False)
print(json.dumps({"text": tok.decode(out[0], skip_special_tokens=True), "tinylm": "tinylm_hf" in sys.modules}))
"""


def state(folder) -> dict:
    return json.loads((folder / "trainer_state.json").read_text())


@pytest.mark.slow
def test_output_folder_is_in_hub_format_and_loads_in_a_fresh_process(tiny_model_dir):
    files = set(os.listdir(tiny_model_dir))
    assert FOLDER_FILES <= files
    assert not {"training_args.bin", "pytorch_model.bin", "optimizer.pt"} & files  # no pickles in the model
    assert "chat_template.jinja" not in files  # pretrained only: run_instruct.py adds the chat template
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "tinylm" and "AutoModelForCausalLM" in config["auto_map"]
    generation = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert generation["do_sample"] and generation["top_k"] == 40 and generation["eos_token_id"] == 0
    card = ModelCard.load(tiny_model_dir / "README.md")
    assert card.data.library_name == "transformers" and "tinylm" in card.data.tags
    assert card.data.license == "apache-2.0" and "loss_curve.png" in card.text and "eval_bpb" in card.text
    assert "| optimizer | Muon (hidden matrices) + AdamW, betas (0.9, 0.95) |" in card.text  # the default
    proc = run_script("-c", LOAD_IN_FRESH_PROCESS, tiny_model_dir, check=True, cwd=tiny_model_dir,
                      env={"PYTHONPATH": ""})
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["text"].startswith("Once upon a time") and len(out["text"]) > 20 and not out["tinylm"]


def test_callbacks_through_a_real_trainer_run(tiny_model_dir):
    history = state(tiny_model_dir / "checkpoint-40")["log_history"]
    train_logs = [e for e in history if "loss" in e]
    eval_logs = [e for e in history if "eval_loss" in e]
    assert len(train_logs) == 4 and len(eval_logs) == 2
    # throughput and MFU
    assert all(e["tokens_per_sec"] > 0 and 0 < e["mfu"] < 1 for e in train_logs)
    # bits per byte: the validation loss in bits, per byte of validation text
    meta = json.loads((tiny_model_dir / "tokens" / "meta.json").read_text())["splits"]["validation"]
    for e in eval_logs:
        assert e["eval_bpb"] == pytest.approx(e["eval_loss"] / math.log(2) / (meta["bytes"] / meta["tokens"]),
                                              rel=1e-3)
        assert e["eval_perplexity"] == pytest.approx(math.exp(e["eval_loss"]), rel=1e-3)
    # samples at each evaluation, from the fixed prompts
    samples = [json.loads(line) for line in (tiny_model_dir / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [20] * 3 + [40] * 3  # two evaluations; the final model's are not re-run
    assert [s["prompt"] for s in samples[:3]] == SAMPLE_PROMPTS and all(s["completion"] for s in samples)
    # the loss plot
    assert (tiny_model_dir / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tiny_model_dir / "eval_results.json").read_text())
    assert results["eval_loss"] == pytest.approx(min(e["eval_loss"] for e in eval_logs), abs=1e-3)  # best kept


@pytest.mark.slow
def test_evaluations_during_training_score_a_spread_part_and_the_final_model_all_windows(tmp_path):
    from transformers import AutoModelForCausalLM

    from tinylm_hf.training.pretrain import main

    out = tmp_path / "part"
    main([*TINY_RUN, "--eval_windows", "5", "--precision", "fp32", "--output_dir", str(out), "--disable_tqdm", "true"])
    windows = TokenWindows(str(out / "tokens"), "validation", 128)
    assert len(windows) > 5
    model = AutoModelForCausalLM.from_pretrained(out).eval()

    def loss(items) -> float:  # the mean of the windows' losses (each window has the same number of tokens)
        with torch.no_grad():
            return sum(model(input_ids=w["input_ids"][None], labels=w["labels"][None]).loss.item()
                       for w in items) / len(items)

    part = [windows[i] for i in windows.spread(5).indices]
    assert [int(w["input_ids"][0]) for w in part[::4]] == [int(windows[0]["input_ids"][0]),
                                                           int(windows[len(windows) - 1]["input_ids"][0])]
    history = state(out / "checkpoint-40")["log_history"]
    logged = {e["step"]: e["eval_loss"] for e in history if "eval_loss" in e}
    assert sorted(logged) == [20, 40]
    best = min(logged, key=logged.get)  # the final model is the best evaluation's
    assert logged[best] == pytest.approx(loss(part), abs=2e-4)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_loss"] == pytest.approx(loss([windows[i] for i in range(len(windows))]), abs=2e-4)
    assert abs(results["eval_loss"] - logged[best]) > 1e-3  # the two sets differ: the check above can fail
    meta = json.loads((out / "tokens" / "meta.json").read_text())["splits"]["validation"]
    assert results["eval_bpb"] == pytest.approx(results["eval_loss"] / math.log(2) / (meta["bytes"] / meta["tokens"]),
                                                rel=1e-3)
    samples = [json.loads(line)["step"] for line in (out / "samples.jsonl").read_text().splitlines()]
    assert samples == [20] * 3 + [40] * 3  # the final evaluation adds no samples (nor snapshots)
    assert sorted(os.listdir(out / "snapshots")) == ["step-20", "step-40"]


class BreakTheWeights(TrainerCallback):
    """A fault: the weights become NaN after step `at`."""

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.at:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))


def tiny_trainer(tiny_model_dir, out, windows: int | None = None, config: dict | None = None, **kw):
    """A Trainer from run.make_trainer over the tiny model's token files (their first `windows` windows of 64 if
    given), the model's config changed by `config`, 40 steps of 4 windows unless `kw` says otherwise."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, **(config or {}))
    args = TinyLMTrainingArguments(**{"output_dir": str(out), "max_steps": 40, "logging_steps": 5, "eval_steps": 10,
                                      "save_steps": 10, "per_device_train_batch_size": 4, "disable_tqdm": True, **kw})
    tokens = str(tiny_model_dir / "tokens")
    train = TokenWindows(tokens, "train", 64)
    if windows:
        train.n_tokens = 64 * windows + 1
    trainer = run.make_trainer(model, args, train, TokenWindows(tokens, "validation", 64),
                               tokenizer, default_data_collator, bytes_per_token=4.0, sample_prompts=["Once"],
                               chat=False, seq_len=64)
    return trainer, args


@pytest.mark.slow
def test_nan_guard_stops_training_and_keeps_the_last_good_checkpoint(tiny_model_dir, tmp_path):
    trainer, args = tiny_trainer(tiny_model_dir, tmp_path)
    trainer.add_callback(BreakTheWeights(at=13))
    with pytest.raises(UserError, match="loss became nan at step 15.*checkpoint-10"):
        run.train(trainer, args)
    assert {p for p in os.listdir(tmp_path) if p.startswith("checkpoint")} == {"checkpoint-10"}
    assert trainer.state.global_step == 15


@pytest.mark.slow
def test_dropout_in_training_draws_its_masks_from_random_bytes(tiny_model_dir, tmp_path):
    """make_trainer swaps the model's nn.Dropout modules for ByteDropout: at p=0.1 an element is kept with probability
    1 - 26/256 and scaled by 256/230; under torch.compile two dropouts draw two masks (a compiler that merged the two
    random draws would give one), and the backward pass masks with the forward's mask; in eval mode nothing changes."""
    from torch import nn

    from tinylm_hf.training.dropout import ByteDropout

    trainer, args = tiny_trainer(tiny_model_dir, tmp_path, config={"dropout": 0.1}, max_steps=2,
                                 eval_strategy="no", save_strategy="no", load_best_model_at_end=False)
    drops = [m for m in trainer.model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(type(m) is ByteDropout and m.p == 0.1 for m in drops)
    run.train(trainer, args)
    assert trainer.state.global_step == 2 and not trainer.nan_guard.tripped

    drop = ByteDropout(0.1).train()
    out = drop(torch.ones(1 << 20))
    assert out.unique().tolist() == [0.0, pytest.approx(256 / 230)]
    assert (out != 0).float().mean().item() == pytest.approx(230 / 256, abs=2e-3)  # all 8 bytes of a draw count
    assert torch.equal(drop.eval()(out), out)

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = ByteDropout(0.5)

        def forward(self, a, b):
            return self.drop(a * 3), self.drop(b * 3)

    a, b = (torch.ones(64, 64, requires_grad=True) for _ in range(2))
    da, db = torch.compile(Two().train())(a, b)
    assert 0.4 < (da == 0).float().mean().item() < 0.6 and not torch.equal(da == 0, db == 0)
    (da.sum() + 2 * db.sum()).backward()
    assert torch.equal(a.grad, da) and torch.equal(b.grad, 2 * db)  # each gradient masked as its output was


@pytest.mark.slow
@pytest.mark.parametrize("steps, budget, decay", [(1, None, 0.1), (16, None, 1.2), (40, 0.3, None)])
def test_the_default_weight_decay_follows_the_passes_over_the_training_data(tiny_model_dir, tmp_path, steps, budget,
                                                                            decay):
    """No --weight_decay: 0.1 for a run that sees its 8 windows half a time, 1.2 for one that sees them 8 times; under
    a time budget, the value for the steps it planned. Norms and biases are never decayed; the card names the value."""
    trainer, args = tiny_trainer(tiny_model_dir, tmp_path, windows=8, max_steps=steps, time_budget=budget,
                                 eval_strategy="no", save_strategy="no", load_best_model_at_end=False)
    run.train(trainer, args)
    steps = trainer.state.global_step
    if decay is None:  # the budget's plan: 40 steps at most, at 4 windows a step over 8 windows
        assert 0 < trainer.budget.total_steps <= 40 and steps == trainer.budget.total_steps
        decay = weight_decay_for_passes(steps * 4 / 8)
    groups = trainer.optimizer.param_groups
    assert sorted(g["weight_decay"] for g in groups) == [0.0, decay, decay] and args.weight_decay == decay
    assert all(p.ndim == 1 for g in groups if g["weight_decay"] == 0 for p in g["params"])
    assert weight_decay_for_passes(0.5) == 0.1 and weight_decay_for_passes(8) == 1.2
    assert weight_decay_for_passes(4) == 0.1 < weight_decay_for_passes(5) < weight_decay_for_passes(7) < 1.2


@pytest.mark.slow
def test_a_weight_decay_given_is_kept(tiny_model_dir, tmp_path):
    trainer, args = tiny_trainer(tiny_model_dir, tmp_path, windows=8, max_steps=16, weight_decay=0.3,
                                 eval_strategy="no", save_strategy="no", load_best_model_at_end=False)
    run.train(trainer, args)
    assert sorted(g["weight_decay"] for g in trainer.optimizer.param_groups) == [0.0, 0.3, 0.3]


@pytest.mark.slow
def test_muon_steps_hidden_matrices_along_the_orthogonalised_gradient_and_resumes(tiny_model_dir, tmp_path):
    """--optimizer muon through the Trainer: each hidden weight matrix moves by lr * 0.2 * sqrt(max(rows, cols))
    times its gradient with the singular values pushed towards 1, embeddings and norms by AdamW; a run resumed from
    a checkpoint (the momentum buffers saved with it) ends where an uninterrupted one does."""
    lr, decay = 1e-2, 0.1
    trainer, args = tiny_trainer(tiny_model_dir, tmp_path / "one", optimizer="muon", learning_rate=lr,
                                 weight_decay=decay)
    model, optimizer = trainer.model, trainer.create_optimizer()
    by_muon = {name for name, p in model.named_parameters()
               if any(p is q for g in optimizer.param_groups if g["role"] == "muon" for q in g["params"])}
    assert by_muon == {f"model.layers.{i}.{m}.weight" for i in range(2)
                       for m in ("attn.qkv_proj", "attn.o_proj", "mlp.up_proj", "mlp.down_proj")}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model(**default_data_collator([trainer.train_dataset[i] for i in range(4)])).loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    optimizer.step()
    for name, p in model.named_parameters():
        step = before[name] * (1 - lr * decay) - p.detach()
        if name in by_muon:  # the oracle: the iteration's polynomial applied to the gradient's singular values
            u, sigma, vh = torch.linalg.svd(grads[name].double(), full_matrices=False)
            sigma = sigma / sigma.norm()
            for _ in range(5):
                sigma = 3.4445 * sigma - 4.7750 * sigma**3 + 2.0315 * sigma**5
            expected = (u * sigma) @ vh
            assert torch.allclose(step / (lr * 0.2 * max(p.shape) ** 0.5), expected.float(), atol=2e-4), name
        elif "embed" in name:  # AdamW's first step: lr * sign(grad) wherever the token was seen
            seen = grads[name].abs() > 1e-6
            assert torch.allclose(step[seen], lr * grads[name][seen].sign(), rtol=1e-2)

    common = dict(optimizer="muon", max_steps=20, load_best_model_at_end=False)
    straight, args = tiny_trainer(tiny_model_dir, tmp_path / "straight", **common)
    run.train(straight, args)
    saved = torch.load(tmp_path / "straight" / "checkpoint-10" / "optimizer.pt")
    assert sum("momentum_buffer" in s for s in saved["state"].values()) == len(by_muon)
    resumed, args = tiny_trainer(tiny_model_dir, tmp_path / "straight", **common,
                                 resume_from_checkpoint=str(tmp_path / "straight" / "checkpoint-10"))
    run.train(resumed, args)
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-5), name


@pytest.mark.slow
def test_a_spent_time_budget_stops_at_its_first_plan_and_saves(tiny_model_dir, tmp_path):
    trainer, args = tiny_trainer(tiny_model_dir, tmp_path, time_budget=1e-9)
    run.train(trainer, args)
    assert trainer.state.global_step == 3  # two compiling steps, then the plan: no time left
    assert os.path.isdir(tmp_path / "checkpoint-3")  # evaluated and saved on the way out


class SlowDown(TrainerCallback):
    """A machine that gets slower: each step after `after` takes `seconds` more."""

    def __init__(self, after: int, seconds: float):
        self.after, self.seconds, self.totals = after, seconds, []

    def on_step_end(self, args, state, control, **kwargs):
        self.totals.append(state.max_steps)
        if state.global_step > self.after:
            time.sleep(self.seconds)


@pytest.mark.slow
def test_time_budget_sets_the_steps_so_the_schedule_ends_with_the_budget(tmp_path):
    from tinylm_hf.training.pretrain import main

    budget = 0.5  # minutes, for the whole run: data, tokenizer, training, evaluations, saving
    slow = SlowDown(after=40, seconds=0.05)
    original = run.make_trainer

    def make_trainer(*a, **kw):
        trainer = original(*a, **kw)
        trainer.add_callback(slow)
        return trainer

    out = tmp_path / "budget"
    args = [a for a in TINY_RUN if a not in ("--max_steps", "40", "--eval_steps", "20", "--save_steps", "20")]
    run.make_trainer = make_trainer
    try:
        main([*args, "--time_budget", str(budget), "--output_dir", str(out), "--disable_tqdm", "true",
              "--logging_steps", "1",  # every step's rate logged: the last one is the final step's
              "--eval_windows", "5"])  # the final model's evaluation on all windows, after training, fits in too
    finally:
        run.make_trainer = original
    # (that it ends on time is tests/test_budget.py's, on a fake clock: no wall-clock assertion here)
    steps = max(int(p.split("-")[1]) for p in os.listdir(out) if p.startswith("checkpoint-"))
    history = state(out / f"checkpoint-{steps}")["log_history"]
    # the plan moved when the steps got slower, and the run stopped where the last plan said
    planned = [t for t in slow.totals if t < 10**9]
    assert planned[-1] == steps and max(planned[:40]) > steps
    # warm-up, then the cosine decay down to its floor (10% of 3e-3) at the last step
    rates = [e["learning_rate"] for e in history if "learning_rate" in e]
    assert max(rates) > 2e-3 and rates[-1] < 0.4e-3
    evals = [e["step"] for e in history if "eval_loss" in e]
    assert 4 <= len(evals) <= 7 and evals[-1] == steps  # every fifth of the run, and the final model
    card = (out / "README.md").read_text()
    assert f"| steps | {steps} |" in card and f"| tokens seen | {steps * 8 * 128} |" in card
    assert "| time budget | 0.5 minutes |" in card
    corpus = int(re.search(r"\| training tokens in corpus \| (\d+) \|", card).group(1))
    passes = steps * 8 * 128 / corpus  # the weight decay chosen for them, and named with them
    assert f"| weight decay | {weight_decay_for_passes(passes):g} (for {passes:.1f} passes over the" in card


@pytest.mark.slow
@pytest.mark.parametrize("budget, layers", [(7, 4), (10, 6)])
def test_the_default_shape_follows_the_time_budget(tmp_path, budget, layers):
    """No --preset: the quickstart shape, with 6 layers instead of 4, QK-norm and dropout 0.1 for a budget of 10
    minutes or more (a 2-step run here: --max_steps caps what the budget would plan)."""
    out = tmp_path / "shape"
    args = [a for a in TINY_RUN if a not in ("--preset", "debug", "--max_steps", "40")]
    proc = run_script(ROOT / "run_pretrain.py", *args, "--max_steps", "2", "--time_budget", budget, "--output_dir",
                      out, check=True)
    preset = "quickstart" if layers == 4 else "quickstart-deep"
    assert f"model: the {preset} preset, llama family" in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == layers and config["hidden_size"] == 128
    assert (config["qk_norm"], config["dropout"]) == ((True, 0.1) if layers == 6 else (False, 0.0))


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    args = [*TINY_RUN, "--max_steps", "120", "--save_steps", "20", "--eval_steps", "20", "--logging_steps", "5",
            "--load_best_model_at_end", "false", "--save_total_limit", "10"]
    straight = tmp_path / "straight"
    run_script("run_pretrain.py", *args, "--output_dir", straight, check=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "run_pretrain.py", *args, "--output_dir", str(killed)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoint-40" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoint-120").exists()
    run_script("run_pretrain.py", *args, "--output_dir", killed, "--resume_from_checkpoint", "true", check=True)

    def losses(folder):
        return {e["step"]: e["loss"] for e in state(folder / "checkpoint-120")["log_history"] if "loss" in e}

    a, b = losses(straight), losses(killed)
    assert a.keys() == b.keys() and len(a) == 24
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4, abs=1e-4), step


@pytest.mark.slow
def test_two_processes_with_torchrun(tmp_path):
    out = tmp_path / "ddp"
    proc = run_script("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port(),
                      "run_pretrain.py", *TINY_RUN, "--max_steps", "10", "--eval_steps", "10", "--save_steps", "10",
                      "--time_budget", "5", "--output_dir", out, check=True, env={"OMP_NUM_THREADS": "1"})
    assert (out / "model.safetensors").exists()
    assert "2 processes" in proc.stdout
    # two ranks of 8 windows per step: 10 steps saw 160 windows, twice what one process would
    assert "| batch size | 16 |" in (out / "README.md").read_text()
    assert state(out / "checkpoint-10")["global_step"] == 10  # the budget's plans, made by rank 0, capped at 10


@pytest.mark.slow
def test_another_seed_rebuilds_the_token_files_and_the_tokenizer(tmp_path, capsys):
    """The embedded corpus and a carved-off validation split depend on the seed: files built under one seed are
    never reused under another."""
    from tinylm_hf.training.pretrain import main

    out = tmp_path / "run"
    args = [a for a in TINY_RUN if a not in ("--max_steps", "40")] + ["--max_steps", "1", "--output_dir", str(out)]
    tokens = {}
    for seed in ("1", "2", "1"):
        main([*args, "--seed", seed])
        tokens.setdefault(seed, []).append((out / "tokens" / "train.bin").read_bytes())
    printed = capsys.readouterr().out
    assert tokens["1"][0] != tokens["2"][0] and tokens["1"][0] == tokens["1"][1]
    assert printed.count("training a 400-token byte-level BPE") == 3 and "reusing token files" not in printed


@pytest.mark.slow
@pytest.mark.parametrize("kind, trainings", [("bytes", 1), ("bpe", 2)])
def test_the_tokenizer_is_retrained_only_when_what_decides_it_changes(kind, trainings, tmp_path, capsys):
    """--vocab_size means nothing to --tokenizer_type bytes: changing it keeps the trained tokenizer; a BPE of
    another size is trained anew."""
    from tinylm_hf.training.pretrain import main

    args = [a for a in TINY_RUN if a not in ("--max_steps", "40")]
    args += ["--max_steps", "1", "--output_dir", str(tmp_path / "run"), "--tokenizer_type", kind]
    main([*args, "--vocab_size", "400"])
    main([*args, "--vocab_size", "500"])
    printed = capsys.readouterr().out
    assert printed.count(" on the training corpus") == trainings, printed


@pytest.mark.slow
def test_a_run_with_a_words_tokenizer(tmp_path):
    """--tokenizer_type words: the run trains one, sizes the model's vocabulary to it; GGUF export refuses it."""
    from tinylm_hf.export.gguf import write_gguf
    from tinylm_hf.training.pretrain import main

    out = tmp_path / "words"
    args = [a for a in TINY_RUN if a not in ("--max_steps", "40", "--vocab_size", "400")]
    main([*args, "--tokenizer_type", "words", "--vocab_size", "300", "--max_steps", "2", "--output_dir", str(out)])
    tokenizer = load_tokenizer(str(out))
    assert json.loads(tokenizer.backend_tokenizer.to_str())["model"]["type"] == "WordLevel"
    assert len(tokenizer) == 300 == json.loads((out / "config.json").read_text())["vocab_size"]
    with pytest.raises(UserError, match="a words tokenizer has no GGUF form"):
        write_gguf(str(out), str(tmp_path / "model.gguf"), "f32", log=lambda *_: None)


@pytest.mark.slow
@pytest.mark.parametrize("args,needle", [
    (["--preset", "huge"], "unknown preset 'huge': choose one of debug"),
    (["--config_overrides", "hidden_size=50"], "hidden_size=50 is not divisible by num_attention_heads"),
    (["--model_name_or_path", "MODEL", "--block_size", "4096"], "--block_size 4096 is larger than the model's context"),
    (["--output_dir", "FOREIGN"], "already holds other files"),
    (["--resume_from_checkpoint", "true"], "no checkpoint-* folder"),
    (["--tokenizer_type", "chars"], "--tokenizer_type 'chars': use one of bpe, bytes, words"),
])
def test_bad_pretrain_arguments_are_one_line(tmp_path, tiny_model_dir, args, needle):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    args = [{"FOREIGN": str(foreign), "MODEL": str(tiny_model_dir)}.get(a, a) for a in args]
    if "--output_dir" not in args:
        args += ["--output_dir", str(tmp_path / "out")]
    base = [a for a in TINY_RUN if a not in ("--preset", "debug", "--block_size", "128")]
    proc = run_script("run_pretrain.py", *base, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr.strip().splitlines()[-1] and "Traceback" not in proc.stderr
    assert (foreign / "thesis.tex").read_text() == "precious"
    if args[0] == "--tokenizer_type":  # refused as the flags are read, before any folder is made
        assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_yaml_config_file_with_command_line_override(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("preset: debug\nembedded_stories: 300\nvocab_size: 300\nblock_size: 32\nmax_steps: 4\n"
                      "eval_steps: 2\nsave_steps: 2\nlogging_steps: 2\nlr_scheduler_kwargs: {min_lr_rate: 0.2}\n")
    out = tmp_path / "out"
    run_script("run_pretrain.py", config, "--max_steps", "2", "--output_dir", out, check=True)
    s = state(out / "checkpoint-2")
    assert s["max_steps"] == 2  # the command line wins over the file
    assert json.loads((out / "config.json").read_text())["max_position_embeddings"] == 32


@pytest.mark.parametrize("name", sorted(os.listdir(ROOT / "configs")))
def test_shipped_configs_parse(name):
    from tinylm_hf.training.arguments import DataArguments, ModelArguments, parse_args
    from tinylm_hf.presets import PRESETS

    model_args, data_args, args = parse_args((ModelArguments, DataArguments, TinyLMTrainingArguments),
                                             [str(ROOT / "configs" / name), "--output_dir", "/tmp/unused"])
    assert model_args.preset in PRESETS and args.max_steps > 0


TRACKIO_READ = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
project = sys.argv[1]
print(json.dumps({run: SQLiteStorage.get_logs(project, run) for run in SQLiteStorage.get_runs(project)}))
"""


@pytest.mark.slow
def test_report_to_trackio_keeps_two_runs_side_by_side_offline(tmp_path):
    """--report_to trackio: Hugging Face's local tracker, no network: both runs' loss, bits per byte, tokens/s,
    learning rate and samples land in its local database, as its dashboard (`trackio show`) reads them."""
    env = {"TRACKIO_DIR": str(tmp_path / "trackio"), "GRADIO_ANALYTICS_ENABLED": "False"}
    for name, lr in (("lr-3e-3", "3e-3"), ("lr-1e-2", "1e-2")):
        run_script("run_pretrain.py", *TINY_RUN, "--max_steps", "20", "--eval_steps", "10", "--save_steps", "20",
                   "--learning_rate", lr, "--report_to", "trackio", "--run_name", name, "--output_dir", tmp_path / name,
                   env=env, check=True)
    runs = json.loads(run_script("-c", TRACKIO_READ, "tinylm", env=env, check=True).stdout.splitlines()[-1])
    assert sorted(runs) == ["lr-1e-2", "lr-3e-3"]
    for name, logs in runs.items():
        keys = {k for entry in logs for k in entry}
        assert {"train/loss", "train/learning_rate", "train/tokens_per_sec", "eval/loss", "eval/bpb",
                "samples"} <= keys, (name, keys)
        evals = [e["eval/bpb"] for e in logs if "eval/bpb" in e]
        assert len(evals) >= 2 and all(0 < b < 8 for b in evals)
    rates = {name: [e["train/learning_rate"] for e in logs if "train/learning_rate" in e]
             for name, logs in runs.items()}
    assert rates["lr-1e-2"] == pytest.approx([r * 10 / 3 for r in rates["lr-3e-3"]])  # each run its own curve


@pytest.mark.slow
def test_report_to_trackio_without_trackio_is_one_line(tmp_path):
    proc = run_script("-c", "import sys; sys.modules['trackio'] = None; "  # as if it were not installed
                      "from tinylm_hf.errors import run_cli; from tinylm_hf.training.pretrain import main; "
                      "run_cli(main)", *TINY_RUN, "--report_to", "trackio", "--output_dir", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "--report_to trackio needs the trackio package: pip install trackio" in proc.stderr.strip().splitlines()[-1]


COMPILED_RUN = """
import json, sys
from torch._dynamo.utils import counters
from tinylm_hf.training.pretrain import main
main(sys.argv[1:])
print(json.dumps({"graphs": counters["stats"]["unique_graphs"]}))
"""


@pytest.mark.slow
def test_a_compiled_run_never_recompiles_across_passes_evaluations_and_a_resume(tmp_path):
    """torch.compile'd training over a training set that is not a whole number of batches (so each pass would end
    on a partial batch), two passes, evaluations, then a resume in a new process: dynamo compiles the training graphs
    once in each process and never again (TORCH_LOGS=recompiles names every recompilation)."""
    args = [*TINY_RUN, "--compile", "on", "--embedded_stories", "20", "--max_steps", "30", "--eval_steps", "10",
            "--save_steps", "10", "--output_dir", tmp_path / "run"]
    env = {"TORCH_LOGS": "recompiles"}
    first = run_script("-c", COMPILED_RUN, *args, env=env, check=True)
    windows = TokenWindows(str(tmp_path / "run" / "tokens"), "train", 128)
    assert len(windows) % 8 and 30 * 8 > 2 * len(windows), len(windows)  # a partial batch; more than two passes
    shutil.rmtree(tmp_path / "run" / "checkpoint-30")
    resumed = run_script("-c", COMPILED_RUN, *args, "--resume_from_checkpoint", "true", env=env, check=True)
    for proc in (first, resumed):
        assert "Recompiling function" not in proc.stderr, proc.stderr[-3000:]
    graphs = [json.loads(proc.stdout.strip().splitlines()[-1])["graphs"] for proc in (first, resumed)]
    assert graphs[0] == graphs[1] > 0
    assert state(tmp_path / "run" / "checkpoint-30")["global_step"] == 30


@pytest.mark.slow
def test_a_budgeted_run_shows_no_placeholder_total_and_logs_its_plan(tmp_path):
    args = [a for a in TINY_RUN if a not in ("--max_steps", "40", "--eval_steps", "20", "--save_steps", "20")]
    proc = run_script("run_pretrain.py", *args, "--time_budget", "0.5", "--output_dir", tmp_path / "run", check=True)
    assert "first steps (compiling, measuring the step time)" in proc.stderr
    assert str(10**9) not in proc.stdout + proc.stderr  # the Trainer's bound before the plan is never shown
    planned = re.search(r"time budget: ([\d,]+) steps planned \([\d.]+ s a step; the first step took [\d.]+ s\)",
                        proc.stdout + proc.stderr)
    assert planned and int(planned.group(1).replace(",", "")) > 10, proc.stdout[-2000:]
