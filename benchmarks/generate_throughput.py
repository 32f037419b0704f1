#!/usr/bin/env python
"""Generation throughput: new tokens/s of generate() with the KV cache (greedy and sampled; batch 1 and 8;
256 new tokens) and the time to first token, for TinyLM (gpt and llama families) against the stock
GPT2LMHeadModel and LlamaForCausalLM of the same shape, alternating in one run. Each pair runs in the same
dtype: fp32, and bf16 where the CPU has native bf16 (AMX or AVX512-BF16), where it is the faster choice for both.

    python benchmarks/generate_throughput.py [--quick] [--dtype fp32|bf16|auto]
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import PEERS, add_results_argument, add_shape_arguments, build, report  # noqa: E402
from tinylm_hf.hardware import bf16_is_fast  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def timed_generate(model, ids, new_tokens: int, sample: bool) -> float:
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=sample, top_k=40 if sample else None,
                             eos_token_id=None, pad_token_id=1)
    assert out.shape[1] == ids.shape[1] + new_tokens
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    add_results_argument(parser)
    parser.add_argument("--new_tokens", type=int, default=256)
    parser.add_argument("--prompt", type=int, default=16, help="prompt length in tokens")
    parser.add_argument("--dtype", default="auto", choices=["auto", *DTYPES],
                        help="weights' dtype for every model (auto: fp32, then bf16 too where the CPU has it)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per cell, the best kept (default 5, "
                                                                   "quick 2)")
    a = parser.parse_args()
    a.context = max(a.context, a.prompt + a.new_tokens)
    new_tokens = 64 if a.quick else a.new_tokens
    repeats = a.repeats or (2 if a.quick else 5)
    dtypes = [a.dtype] if a.dtype != "auto" else ["fp32", "bf16"] if bf16_is_fast() else ["fp32"]
    names = ["tinylm-gpt", "GPT2LMHeadModel", "tinylm-llama", "LlamaForCausalLM"]
    best: dict = {}
    ttft: dict = {}
    for dtype in dtypes:
        models = {name: build(name, a).eval().to(DTYPES[dtype]) for name in names}
        for batch in (1, 8):
            ids = torch.randint(2, a.vocab, (batch, a.prompt), generator=torch.Generator().manual_seed(0))
            for name, model in models.items():
                timed_generate(model, ids, 4, False)  # warm up
            for _ in range(repeats):
                for name, model in models.items():  # alternate, so machine noise hits every model alike
                    for sample in (False, True):
                        key = (name, dtype, batch, "sampled" if sample else "greedy")
                        best[key] = min(best.get(key, 1e9), timed_generate(model, ids, new_tokens, sample))
                    ttft[(name, dtype, batch)] = min(ttft.get((name, dtype, batch), 1e9),
                                                     timed_generate(model, ids, 1, False))
    rows, ratios = [], {}
    for (name, dtype, batch, mode), seconds in best.items():
        rows.append({"model": name, "dtype": dtype, "batch": batch, "mode": mode,
                     "new tokens/s": round(batch * new_tokens / seconds),
                     "first token ms": round(ttft[(name, dtype, batch)] * 1000, 1)})
    for ours, peer in PEERS.items():
        for dtype in dtypes:
            for batch in (1, 8):
                for mode in ("greedy", "sampled"):
                    ratios[f"{ours} / {peer}, {dtype}, batch {batch}, {mode}"] = round(
                        best[(peer, dtype, batch, mode)] / best[(ours, dtype, batch, mode)], 2)
    report("generate_throughput", rows, {"shape": f"vocab {a.vocab}, hidden {a.hidden}, {a.layers} layers, "
                                         f"{a.heads} heads; prompt {a.prompt}, {new_tokens} new tokens, KV cache, "
                                         f"best of {repeats}", "ratios": ratios}, a.results_dir)


if __name__ == "__main__":
    main()
