#!/usr/bin/env python
"""Training throughput: tokens/s of a training step through the path run_pretrain.py uses (the Trainer, with
our defaults for this device), for TinyLM (gpt and llama families) and the stock GPT2LMHeadModel and
LlamaForCausalLM of the same shape under the same Trainer, alternating in one run; ratios, MFU against a
measured matmul peak, compile time, and the loss after the same steps on the same data.

    python benchmarks/train_throughput.py            # default shape: vocab 4096, hidden 256, 4 layers, 8 heads,
    python benchmarks/train_throughput.py --quick    # context 256, batch 16
"""

import argparse
import math
import os
import sys
import tempfile
import time

import torch
from transformers import TrainerCallback, default_data_collator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import PEERS, add_results_argument, add_shape_arguments, build, report  # noqa: E402
from tinylm_hf.training.arguments import TinyLMTrainingArguments  # noqa: E402
from tinylm_hf.training.callbacks import flops_per_token  # noqa: E402
from tinylm_hf.training.trainer import TinyLMTrainer  # noqa: E402
from tinylm_hf.hardware import default_attention, matmul_peak_flops  # noqa: E402


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step (forward, backward, clip, AdamW, data loading)."""

    def __init__(self):
        self.times, self.losses = [], []

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.start)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])


class Windows(torch.utils.data.Dataset):
    """Fixed random token windows (the same for every model): a synthetic corpus with structure to learn."""

    def __init__(self, n, block, vocab):
        g = torch.Generator().manual_seed(0)
        base = torch.randint(2, vocab, (n, block // 4), generator=g)
        self.data = base.repeat_interleave(4, dim=1)  # each token repeated 4 times: learnable, not trivial

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return {"input_ids": self.data[i], "labels": self.data[i]}


def run(model, a, steps: int, compile_mode: str) -> dict:
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = TinyLMTrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=a.batch, logging_steps=1,
            eval_strategy="no", save_strategy="no", load_best_model_at_end=False, disable_tqdm=True,
            warmup_steps=2, compile=compile_mode, report_to="none", seed=0, optimizer="adamw")  # one optimizer for all
        trainer = TinyLMTrainer(model=model, args=args, train_dataset=Windows(steps * a.batch, a.context, a.vocab),
                                data_collator=default_data_collator, callbacks=[timer])
        start = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - start
    warm = timer.times[a.warmup:]
    return {"step_s": sum(warm) / len(warm), "first_steps_s": sum(timer.times[:a.warmup]), "total_s": total,
            "loss": timer.losses[-1], "bf16": args.bf16, "compiled": args.torch_compile}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    add_results_argument(parser)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None, help="steps per measurement (default 30, quick 12)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 2, quick 1)")
    parser.add_argument("--compile", default="on", choices=["on", "off"],
                        help="torch.compile every model (run_pretrain.py's default for runs of 500+ steps)")
    a = parser.parse_args()
    steps = a.steps or (12 if a.quick else 30)
    rounds = a.rounds or (1 if a.quick else 2)
    a.warmup = 4
    models = ["tinylm-gpt", "GPT2LMHeadModel", "tinylm-llama", "LlamaForCausalLM"]
    results = {m: [] for m in models}
    for r in range(rounds):
        for name in models:
            model = build(name, a)
            if name.startswith("tinylm"):  # our default attention for this device (run_pretrain.py's "auto")
                model.config._attn_implementation = default_attention(a.compile == "on")
            res = run(model, a, steps, a.compile)
            results[name].append(res)
            print(f"round {r + 1} {name}: {a.batch * a.context / res['step_s']:,.0f} tokens/s", flush=True)
    # the stock models once more with the other compile setting
    other = "on" if a.compile == "off" else "off"
    for name in ("GPT2LMHeadModel", "LlamaForCausalLM"):
        results[f"{name} (compile {other})"] = [run(build(name, a), a, steps, other)]
    bf16 = results[models[0]][0]["bf16"]
    peak = matmul_peak_flops(torch.bfloat16 if bf16 else torch.float32)
    fpt = {m: flops_per_token(build("tinylm-gpt" if "GPT" in m or "gpt" in m else "tinylm-llama", a), a.context)
           for m in results}
    rows, tps = [], {}
    for name, runs in results.items():
        step = min(r["step_s"] for r in runs)  # the best round: the least disturbed by the machine
        tps[name] = a.batch * a.context / step
        rows.append({"model": name, "tokens/s": round(tps[name]), "step ms": round(step * 1000, 1),
                     "MFU": f"{tps[name] * fpt[name] / peak:.1%}", "compile+warmup s": round(runs[0]["first_steps_s"], 1),
                     f"loss@{steps}": round(runs[-1]["loss"], 4)})
    ratios = {f"{ours} / {peer}": round(tps[ours] / tps[peer], 2) for ours, peer in PEERS.items()}
    ratios.update({f"{ours} / {peer} (compile {other})": round(tps[ours] / tps[f"{peer} (compile {other})"], 2)
                   for ours, peer in PEERS.items()})
    report("train_throughput", rows, {"shape": f"vocab {a.vocab}, hidden {a.hidden}, {a.layers} layers, {a.heads} "
                                      f"heads, context {a.context}, batch {a.batch}",
                                      "precision": "bf16 autocast" if bf16 else "fp32",
                                      "matmul peak GFLOP/s": round(peak / 1e9), "ratios": ratios}, a.results_dir)
    return 0 if all(math.isfinite(r["loss"]) for runs in results.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
