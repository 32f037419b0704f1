#!/usr/bin/env python
"""Ensembles against one model in the same wall time: is it better to train one model with every thread, or K
members side by side (one process each, the threads split) and average them?

    python benchmarks/ensemble.py                  # 10 minutes a run: one model, then K = 2 and 3 (about 35 minutes)
    python benchmarks/ensemble.py --minutes 3 --members 2
    python benchmarks/ensemble.py --quick          # a smoke run (the suite's)
    python benchmarks/ensemble.py --assisted       # assisted decoding: a 15M target and a quickstart draft, each
                                                   # trained MINUTES on the same tokens, then generating
    python benchmarks/ensemble.py --assisted --target DIR --draft DIR   # two trained models over one tokenizer

Data: the TinyStories sample shipped in the package (as benchmarks/time_to_quality.py: one 4,096-token BPE and one
set of token files shared by every run, trained before the clocks start). The runs, one after the other:

- `threads`: the training speed of the default model (the budget's preset, eager, batch 16 x 256) with 1 thread
  and with all of them, in tokens per second: why side by side can pay on a CPU;
- `single`: `run_pretrain.py --time_budget MINUTES` with every default;
- `ensemble K`: `run_pretrain.py --time_budget MINUTES --ensemble K`, and each of its members alone.

`--assisted` measures the draft model of the demo's `--draft` (transformers' assisted decoding,
`generate(assistant_model=...)`): new tokens per second at batch 1, greedy, fp32, every thread, on the openings of
validation stories, the target alone, the draft alone, and the target with the draft drafting 20 tokens a turn
(transformers' default) or 5; how many new tokens each forward pass of the target brings, and whether the tokens
are the target's own (they must be).
Writes `ensemble_assisted.json`.

Every model is scored by one function (`tinylm_hf.training.ensemble.score`) over every window of the validation
file, in bits per byte. Before the timed runs of 3+ minutes (which compile), the same command runs 4 steps untimed
with 1 thread and with all, so that every run finds torch.compile's cache warm. Writes `ensemble.json`.
"""

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import add_results_argument, report  # noqa: E402
from benchmarks.time_to_quality import BATCH, BLOCK, prepare  # noqa: E402
from tinylm_hf.data.sources import SAMPLE_FILES  # noqa: E402


def tokens_per_second(preset: str, vocab: int, threads: int, steps: int = 6) -> float:
    """Training steps (forward, backward, AdamW) of a fresh model of `preset` on random tokens, eager."""
    from tinylm_hf.hardware import bf16_is_fast
    from tinylm_hf.modeling_tinylm import TinyLMForCausalLM
    from tinylm_hf.presets import get_preset

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TinyLMForCausalLM(get_preset(preset, vocab_size=vocab, dropout=0.0)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, vocab, (BATCH, BLOCK))
    for step in range(steps + 2):  # two untimed
        if step == 2:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_is_fast()):
            loss = model(ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return steps * BATCH * BLOCK / (time.perf_counter() - start)


ASSISTED_PROMPTS = 8  # validation stories whose openings are generated from
ASSISTED_OPENING = 24  # tokens of each opening
ASSISTED_NEW = 128  # new tokens each, end of text or not


DRAFTING = {  # the draft's generation config in each run: transformers' defaults, then fewer tokens a turn
    "with the draft, 20 tokens a turn (transformers' default)": {"num_assistant_tokens": 20,
                                                                 "assistant_confidence_threshold": 0.4},
    "with the draft, 5 tokens a turn": {"num_assistant_tokens": 5, "assistant_confidence_threshold": 0.0}}


@torch.no_grad()
def assisted(target_dir: str, draft_dir: str, valid_file: str) -> list[dict]:
    """The target generating alone and with the draft (as DRAFTING says), and the draft alone: new tokens/s over the
    same prompts, new tokens per forward pass of the target, and whether the tokens are the target's own."""
    from tinylm_hf.ensemble import same_tokenizer
    from tinylm_hf.loading import load_model
    from tinylm_hf.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(target_dir)
    same_tokenizer(tokenizer, load_tokenizer(draft_dir), target_dir, draft_dir)
    target, draft = load_model(target_dir).eval(), load_model(draft_dir).eval()
    with gzip.open(valid_file, "rt") as f:  # TinyStories' stories, separated by <|endoftext|>
        stories = [s for s in f.read().split("<|endoftext|>")[1:] if len(s.split()) > 40]
    prompts = [tokenizer(tokenizer.bos_token + s.strip(), add_special_tokens=False, return_tensors="pt")["input_ids"]
               [:, :ASSISTED_OPENING] for s in stories[:ASSISTED_PROMPTS]]
    settings = dict(max_new_tokens=ASSISTED_NEW, min_new_tokens=ASSISTED_NEW, do_sample=False,
                    pad_token_id=tokenizer.pad_token_id)
    calls = []
    target.register_forward_hook(lambda module, args, output: calls.append(1))
    runs = [("alone", target, {}, {}), ("the draft alone", draft, {}, {}),
            *((name, target, {"assistant_model": draft}, drafting) for name, drafting in DRAFTING.items())]
    new, rows, alone = len(prompts) * ASSISTED_NEW, [], None
    for name, model, extra, drafting in runs:
        for key, value in drafting.items():
            setattr(draft.generation_config, key, value)
        model.generate(prompts[0], **settings, **extra)  # warm once
        calls.clear()
        start = time.perf_counter()
        outputs = [model.generate(ids, **settings, **extra)[0].tolist() for ids in prompts]
        rate = new / (time.perf_counter() - start)
        alone = alone or (rate, outputs)
        rows.append({"run": name, "parameters": model.num_parameters(), "new tokens": new, "tokens_per_s": round(rate),
                     "speed-up": round(rate / alone[0], 2) if model is target else None,
                     "new tokens per target pass": round(new / len(calls), 2) if model is target else None,
                     "same tokens": outputs == alone[1] if model is target else None})
        same = rows[-1]["same tokens"]
        against = f" ({rate / alone[0]:.2f}x, the target's tokens: {same})" if model is target else ""
        print(f"{name}: {rate:.0f} new tokens/s{against}", flush=True)
    return rows


def train_pair(work: str, minutes: float, data_args, limit: int | None, env: dict) -> tuple[str, str]:
    """A 15M target (stories15m) and a quickstart draft trained `minutes` each on one tokenizer and token files."""
    tokenizer_dir, token_dir = prepare(work, data_args)
    folders = []
    for preset in ("stories15m", "quickstart"):
        folders.append(os.path.join(work, preset))
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "run_pretrain.py"), "--preset", preset, "--dataset",
                               SAMPLE_FILES[0], "--validation_files", SAMPLE_FILES[1], "--tokenizer_name",
                               tokenizer_dir, "--token_dir", token_dir, "--disable_tqdm", "true", "--time_budget",
                               str(minutes), "--output_dir", folders[-1],
                               *(["--max_train_samples", str(limit), "--max_eval_samples", str(limit)] if limit
                                 else [])], cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"training the {preset} model failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        print(f"trained {preset} for {minutes} minutes", flush=True)
    return folders[0], folders[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="the wall time of each run")
    parser.add_argument("--members", type=int, nargs="+", default=[2, 3], help="the ensembles' sizes")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 stories, 0.25-minute runs, K = 2")
    parser.add_argument("--assisted", action="store_true", help="measure assisted decoding instead (see above)")
    parser.add_argument("--target", help="with --assisted: a trained target model (default: train a 15M one)")
    parser.add_argument("--draft", help="with --assisted: a trained draft over the target's tokenizer")
    add_results_argument(parser)
    a = parser.parse_args()
    minutes, members = (0.25, [2]) if a.quick else (a.minutes, a.members)
    if a.assisted:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        with tempfile.TemporaryDirectory() as work:
            from tinylm_hf.training.arguments import DataArguments

            limit = 300 if a.quick else None
            data_args = DataArguments(dataset=SAMPLE_FILES[0], validation_files=SAMPLE_FILES[1],
                                      max_train_samples=limit, max_eval_samples=limit)
            if a.target and a.draft:
                target, draft = a.target, a.draft
            else:
                target, draft = train_pair(work, minutes, data_args, limit, env)
            rows = assisted(target, draft, SAMPLE_FILES[1])
        report("ensemble_assisted", rows, results_dir=a.results_dir,
               extra={"target": target if a.target else f"stories15m preset, {minutes} minutes",
                      "draft": draft if a.draft else f"quickstart preset, {minutes} minutes", "goal": 1.5})
        return
    limit = 300 if a.quick else None
    from tinylm_hf.presets import for_budget
    from tinylm_hf.training.arguments import DataArguments
    from tinylm_hf.training.ensemble import cpu_threads, score

    threads = cpu_threads()
    data_args = DataArguments(dataset=SAMPLE_FILES[0], validation_files=SAMPLE_FILES[1], max_train_samples=limit,
                              max_eval_samples=limit)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    rows = []
    for n in sorted({1, threads}):
        rows.append({"run": "threads", "members": 1, "threads": n, "minutes": None, "steps": None,
                     "tokens_per_s": round(tokens_per_second(for_budget(minutes), 4096, n)), "bpb": None,
                     "ratio": None})
        print(f"training speed with {n} thread{'s' * (n > 1)}: {rows[-1]['tokens_per_s']:,} tokens/s", flush=True)
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as work:
        tokenizer_dir, token_dir = prepare(work, data_args)
        from tinylm_hf.data.tokens import TokenWindows
        from tinylm_hf.ensemble import Ensemble

        valid = TokenWindows(token_dir, "validation", BLOCK)
        common = [os.path.join(ROOT, "run_pretrain.py"), "--dataset", SAMPLE_FILES[0], "--validation_files",
                  SAMPLE_FILES[1], "--tokenizer_name", tokenizer_dir, "--token_dir", token_dir, "--disable_tqdm",
                  "true", *(["--max_train_samples", str(limit), "--max_eval_samples", str(limit)] if limit else [])]
        if minutes >= 3:  # the runs compile: warm the cache, with one thread (the members) and with all
            for n in sorted({1, threads}):
                subprocess.run([sys.executable, *common, "--time_budget", str(minutes), "--max_steps", "4",
                                "--compile", "on", "--output_dir", os.path.join(work, f"warm-{n}")], cwd=ROOT,
                               env={**env, "OMP_NUM_THREADS": str(n)}, capture_output=True, text=True)
        for k in [1, *members]:
            out = os.path.join(work, f"k{k}")
            start = time.time()
            proc = subprocess.run([sys.executable, *common, "--time_budget", str(minutes), "--output_dir", out,
                                   *(["--ensemble", str(k)] if k > 1 else [])], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"the run with {k} member(s) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            seconds = time.time() - start
            folders = [out] if k == 1 else [os.path.join(out, f"member-{i}") for i in range(1, k + 1)]
            steps = [max(int(p.split("-")[1]) for p in os.listdir(f) if p.startswith("checkpoint-")) for f in folders]
            if k == 1:
                from tinylm_hf.loading import load_model

                model, name = load_model(out), "single"
            else:
                model, name = Ensemble.from_pretrained(out), f"ensemble of {k}"
            _, bpb = score(model, valid)
            rows.append({"run": name, "members": k, "threads": max(1, threads // k), "minutes": round(seconds / 60, 2),
                         "steps": sum(steps), "tokens_per_s": round(sum(steps) * BATCH * BLOCK / seconds),
                         "bpb": round(bpb, 4), "ratio": None})
            print(f"{name}: {'+'.join(map(str, steps))} steps in {seconds:.0f} s, {bpb:.4f} bits per byte", flush=True)
            for i, member in enumerate(model.members if k > 1 else [], 1):
                _, member_bpb = score(member, valid)
                rows.append({"run": f"  member {i} of {k} alone", "members": 1, "threads": max(1, threads // k),
                             "minutes": None, "steps": steps[i - 1], "tokens_per_s": None,
                             "bpb": round(member_bpb, 4), "ratio": None})
    single = next(r["bpb"] for r in rows if r["run"] == "single")
    for r in rows:
        if r["bpb"] is not None:
            r["ratio"] = round(r["bpb"] / single, 3)
    best = min((r for r in rows if r["run"].startswith("ensemble")), key=lambda r: r["bpb"])
    report("ensemble", rows, results_dir=a.results_dir,
           extra={"minutes": minutes, "best ensemble / single (bits per byte)": best["ratio"], "target": 0.97})


if __name__ == "__main__":
    main()
