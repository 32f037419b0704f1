"""Training an ensemble: `tinylm pretrain --ensemble K` trains K members side by side, one process each with the
CPU threads split between them, in the run's time budget, then writes the ensemble (tinylm_hf/ensemble.py).

    OUTPUT_DIR/tokenizer, tokens/     made once, shared by the members (they must share one tokenizer)
    OUTPUT_DIR/member-1 ... member-K  each a complete model folder: the same corpus, its own initial weights and
                                      data order (--member i: seed --seed + i - 1 for those)
    OUTPUT_DIR                        the ensemble folder that names them: config.json, the tokenizer, a card,
                                      eval_results.json (the ensemble's and each member's validation figures)

A small model uses two threads poorly, so on a 2-core CPU two members at one thread each see more tokens in total
than one model with both (benchmarks/ensemble.py measures it).
"""

import json
import math
import os
import subprocess
import sys
import threading
import time

import torch

from ..configuration_megabyte import MegabyteConfig
from ..ensemble import Ensemble
from ..errors import UserError
from ..files import write_json
from .arguments import RUN_STARTED
from ..presets import format_count

GIB = 1024**3


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory free for new processes (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def member_memory(n_params: int, batch: int, block_size: int, config) -> int:
    """A rough upper bound of one training process's memory: the interpreter and libraries, the weights with their
    gradients and two optimizer states in fp32, and the activations autograd keeps (~24 values per hidden unit per
    token per layer, plus the logits)."""
    stacks = [config.global_config, config.local_config] if isinstance(config, MegabyteConfig) else [config]
    units = sum(24 * c.hidden_size * c.num_hidden_layers for c in stacks)  # (MEGABYTE: over-counts its global model)
    activations = batch * block_size * (units + 3 * config.vocab_size)
    return int(1.0 * GIB + 16 * n_params + 4 * activations)


def check_members(k: int, world_size: int, n_params: int, batch: int, block_size: int, config) -> None:
    if k > 1 and world_size > 1:
        raise UserError("--ensemble trains its members in processes of its own: run it without torchrun")
    need, free = k * member_memory(n_params, batch, block_size, config), available_memory()
    if free is not None and need > free:
        raise UserError(f"--ensemble {k}: {k} members of {format_count(n_params)} parameters need about "
                        f"{need / GIB:.1f} GiB, this machine has {free / GIB:.1f} GiB free: train fewer members, a "
                        f"smaller model or a smaller --per_device_train_batch_size")


def member_argv(argv: list[str], args, i: int, folder: str) -> list[str]:
    """The command line of member i (1-based): the run's own with what it shares with the others (the token files,
    the tokenizer, the shape, compiling or not), then what makes it a member (the last word wins). A member's time
    budget counts from the start of the whole run (RUN_STARTED in its environment), not from its own."""
    return [*argv, "--ensemble", "1", "--member", str(i), "--output_dir", folder, "--disable_tqdm", "true",
            "--push_to_hub", "false"]


def _relay(i: int, stream, log) -> None:
    """A member's lines, marked with its number (progress bars left out: they would interleave)."""
    for line in stream:
        if "%|" not in line and line.strip():
            log(f"[member {i}] {line.rstrip()}")


def train_members(argv: list[str], args, *, command: str = "pretrain", bases: list[str] | None = None, eval_set=None,
                  log=print) -> dict:
    """Train the members side by side (`tinylm COMMAND`, each from its base model when `bases` are given: tuning an
    ensemble), then write the ensemble and score it on `eval_set`'s windows (when given); returns its metrics."""
    k, threads = args.ensemble, max(1, cpu_threads() // args.ensemble)
    folders = [os.path.join(args.output_dir, f"member-{i}") for i in range(1, k + 1)]
    log(f"ensemble: {k} members side by side, {threads} thread{'s' * (threads > 1)} each, in {args.output_dir}/"
        f"member-1 ... member-{k}")
    procs, relays = [], []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1", RUN_STARTED: repr(args.started)}
    for i, folder in enumerate(folders, 1):
        base = ["--model_name_or_path", bases[i - 1]] if bases else []
        line = [sys.executable, "-m", "tinylm_hf", command, *member_argv(argv + base, args, i, folder)]
        proc = subprocess.Popen(line, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        relay = threading.Thread(target=_relay, args=(i, proc.stdout, log), daemon=True)
        relay.start()
        procs.append(proc)
        relays.append(relay)
    codes = [proc.wait() for proc in procs]
    for relay in relays:
        relay.join()
    failed = [i for i, code in enumerate(codes, 1) if code != 0]
    if failed:
        raise UserError(f"member {failed[0]} of the ensemble failed (exit {codes[failed[0] - 1]}): its lines above "
                        f"(marked [member {failed[0]}]) say why; the other members' folders are kept")
    ensemble = Ensemble.from_pretrained(folders)
    ensemble.save_pretrained(args.output_dir)
    members = []  # each member scored itself on the validation data, in its budget
    for folder in folders:
        with open(os.path.join(folder, "eval_results.json")) as f:
            members.append({"folder": os.path.basename(folder), **json.load(f)})
    metrics = {"members": [{k: m[k] for k in ("folder", "eval_loss", "eval_bpb") if k in m} for m in members]}
    for i, m in enumerate(members, 1):
        log(f"member {i}: validation loss {m['eval_loss']:.3f}" +
            (f", {m['eval_bpb']:.3f} bits per byte" if "eval_bpb" in m else ""))
    if eval_set is not None:
        loss, bpb = score(ensemble, eval_set)
        metrics = {"eval_loss": loss, "eval_bpb": bpb, "eval_perplexity": math.exp(loss), **metrics}
        log(f"the ensemble: validation loss {loss:.3f}, {bpb:.3f} bits per byte "
            f"({bpb / min(m['eval_bpb'] for m in members):.3f}x its best member)")
    write_json(os.path.join(args.output_dir, "eval_results.json"), metrics)
    log(f"{k} members in {(time.time() - args.started) / 60:.1f} minutes"
        + (f" of a {args.time_budget:g}-minute budget" if args.time_budget else ""))
    log(f"\nthe ensemble is in {args.output_dir}: load it with "
        f"tinylm_hf.ensemble.Ensemble.from_pretrained({args.output_dir!r})")
    return metrics


@torch.no_grad()
def score(model, windows, batch_size: int = 32) -> tuple[float, float]:
    """Loss (nats per token) of a causal LM over every window of a `TokenWindows` split, and bits per byte."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(windows), batch_size):
        ids = torch.stack([windows[i]["input_ids"] for i in range(start, min(start + batch_size, len(windows)))])
        logits = model(ids).logits[:, :-1].float()
        total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                                   reduction="sum").item()
        count += ids[:, 1:].numel()
    loss = total / count
    return loss, loss / math.log(2) / windows.bytes_per_token
