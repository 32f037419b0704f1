#!/usr/bin/env python
"""fp32 or bf16 weights for generating on this CPU: sampled new tokens/s at batch 1 (what the demo does) for
models of several presets, the same weights in both dtypes, alternating. It sets the threshold of the demo's
`--precision auto` (tinylm_hf/demo.py: bf16 from AUTO_BF16_MIN_PARAMETERS, on CPUs with bf16 units).

    python benchmarks/inference_precision.py [--quick] [--presets quickstart stories15m ...]
"""

import argparse
import copy
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import add_results_argument, report  # noqa: E402
from tinylm_hf import TinyLMForCausalLM  # noqa: E402
from tinylm_hf.presets import count_parameters, format_count, get_preset  # noqa: E402


def tokens_per_second(model, ids, new_tokens: int) -> float:
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=True, temperature=0.8, top_k=40, top_p=0.95,
                       eos_token_id=None, pad_token_id=0)
    return new_tokens / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["quickstart", "tinystories-8m", "stories15m",
                                                         "tinystories-33m"])
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=4, help="timed runs per model, the best kept")
    parser.add_argument("--quick", action="store_true", help="a short run")
    add_results_argument(parser)
    a = parser.parse_args()
    new_tokens, repeats = (32, 2) if a.quick else (a.new_tokens, a.repeats)
    rows = []
    for name in a.presets:
        config = get_preset(name)
        torch.manual_seed(0)
        fp32 = TinyLMForCausalLM(config).eval()
        models = {"fp32": fp32, "bf16": copy.deepcopy(fp32).to(torch.bfloat16)}  # the same weights, rounded
        ids = torch.randint(3, config.vocab_size, (1, 24), generator=torch.Generator().manual_seed(0))
        best = {dtype: 0.0 for dtype in models}
        for model in models.values():
            tokens_per_second(model, ids, 4)  # warm up
        for _ in range(repeats):
            for dtype, model in models.items():
                best[dtype] = max(best[dtype], tokens_per_second(model, ids, new_tokens))
        rows.append({"preset": name, "parameters": format_count(count_parameters(config)),
                     "fp32 tokens/s": round(best["fp32"]), "bf16 tokens/s": round(best["bf16"]),
                     "bf16 / fp32": round(best["bf16"] / best["fp32"], 2)})
    report("inference_precision", rows, {"setting": f"batch 1, sampled, {new_tokens} new tokens after a 24-token "
                                                    f"prompt, best of {repeats}"}, a.results_dir)


if __name__ == "__main__":
    main()
