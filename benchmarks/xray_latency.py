#!/usr/bin/env python
"""The demo's X-ray tab under a bigger model: the time one click takes (`Demo.xray`: tokens, surprisal, next-token
stages, attention, logit lens, all rendered to HTML) for a short prompt, a paragraph and a long text, alone and
compared with a second model (as when a snapshot is compared), and the size of the HTML the browser then draws.

The model is a preset (default the 33M one, freshly initialised: the time does not depend on what it learnt) with
the tokenizer of a model folder (the quickstart's by default).

    python benchmarks/xray_latency.py [--model outputs/quickstart] [--preset tinystories-33m] [--quick]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import add_results_argument, report, save_preset  # noqa: E402
from tinylm_hf.demo import XRAY_TEXT, Demo  # noqa: E402
from tinylm_hf.presets import PRESETS, format_count  # noqa: E402
from tinylm_hf.tokenizer import load_tokenizer  # noqa: E402

STORY = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. One day, she "
         "saw a big red ball in the park. She ran to the ball and kicked it very hard. The ball went up into the "
         "sky and landed in a tree. Lily was sad because she could not reach it. Her friend Tom came and helped "
         "her. He climbed the tree and got the ball. Lily was happy and said thank you to Tom.")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/quickstart", help="a model folder whose tokenizer is used")
    parser.add_argument("--preset", default="tinystories-33m", choices=sorted(PRESETS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a short run (2 repeats)")
    add_results_argument(parser)
    a = parser.parse_args()
    repeats = 2 if a.quick else a.repeats
    tokenizer = load_tokenizer(a.model)
    texts = {"prompt": XRAY_TEXT, "paragraph": STORY, "long": " ".join([STORY] * 4)}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        save_preset(a.preset, tokenizer, folder, vocab_size=len(tokenizer))
        demo = Demo(folder)  # the precision app.py picks on this CPU
        for name, text in texts.items():
            for compare in ("none", "final"):
                demo.xray(text, compare=compare)  # warm up
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    views = demo.xray(text, compare=compare)
                    times.append(time.perf_counter() - start)
                rows.append({"text": name, "tokens": len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                             "compared": compare != "none", "ms (median)": round(statistics.median(times) * 1000),
                             "ms (max)": round(max(times) * 1000),
                             "HTML KB": round(sum(len(v) for v in views.values() if isinstance(v, str)) / 1000)})
    report("xray_latency", rows, {"model": f"{a.preset} ({format_count(demo.model.num_parameters())} parameters, "
                                           f"{demo.model.dtype}, {torch.get_num_threads()} threads)"}, a.results_dir)


if __name__ == "__main__":
    main()
