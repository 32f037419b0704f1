#!/usr/bin/env python
"""The same model in each runtime and format: batch-1 greedy generation (new tokens/s after the first, and the time to
the first token) and what each format loses (bits per byte, KL divergence from our fp32 model's next-token
distribution, top-1 agreement: `tinylm_hf.export.check`, forced decoding on validation stories), in PyTorch
`generate()`, in ONNX Runtime (the exported fp32, 8-bit and 4-bit graphs, with their KV cache) and in llama.cpp (the
GGUF files, f32, q8_0 and q4_0, through node-llama-cpp's prebuilt binaries: js/) and in ExecuTorch (fp32 and
8da4w .pte files, its Python runtime, when `tinylm-hf[executorch]` is installed), with the file sizes. The fp32
graph must produce PyTorch's tokens (checked); the others may differ where two tokens are close.

    python benchmarks/runtimes.py --model outputs/quickstart [--new_tokens 200] [--quick]
    python benchmarks/runtimes.py --model outputs/quickstart --preset stories15m     a 15M model of that shape
"""

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import (JS, add_results_argument, llama_cpp, llama_cpp_log_probs, report,  # noqa: E402
                               save_preset)
from tinylm_hf.export.check import (compare, model_log_probs, onnx_greedy, onnx_log_probs,  # noqa: E402
                                    read_stories, torch_greedy, windows)
from tinylm_hf.export.executorch import executorch_folder, load_method, pte_greedy, pte_log_probs  # noqa: E402
from tinylm_hf.export.gguf import write_gguf  # noqa: E402
from tinylm_hf.export.onnx import onnx_folder  # noqa: E402
from tinylm_hf.loading import load_model  # noqa: E402
from tinylm_hf.presets import PRESETS  # noqa: E402
from tinylm_hf.tokenizer import load_tokenizer  # noqa: E402

GGUF_TYPES = ("f32", "q8_0", "q4_0")


def llama_cpp_rows(folder: str, prompt: list[int], new_tokens: int, repeats: int, tmp: str) -> dict:
    """{runtime: (tokens, first, rest, bytes, log_probs)} of llama.cpp on the GGUF files, at 1 and at every thread
    (more threads than the work needs make llama.cpp's threads wait on each other): the faster kept, named."""
    out = {}
    for kind in GGUF_TYPES:
        path = os.path.join(tmp, f"model-{kind}.gguf")
        write_gguf(folder, path, kind, log=lambda *_: None)
        runs = {threads: llama_cpp({"model": path, "prompt": prompt, "new_tokens": new_tokens, "repeats": repeats,
                                    "threads": threads, "past_eos": True}) for threads in sorted({1, os.cpu_count()})}
        threads, best = min(runs.items(), key=lambda item: item[1]["rest_s"])
        out[f"llama.cpp {kind}.gguf ({threads} thread{'s' if threads > 1 else ''})"] = (
            best["tokens"], best["first_token_s"], best["rest_s"], os.path.getsize(path), path)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/quickstart", help="model folder (its tokenizer, with --preset)")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="time a freshly initialised model of this preset instead (e.g. stories15m: 15M)")
    parser.add_argument("--new_tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per runtime, the best kept")
    parser.add_argument("--quick", action="store_true", help="20 new tokens, one repeat, 3,000 bytes of text")
    parser.add_argument("--text", help="the text the formats are scored on (default: the TinyStories validation "
                        "stories in the package)")
    parser.add_argument("--max_bytes", type=int, default=20_000, help="how much of it (default: %(default)s)")
    add_results_argument(parser)
    a = parser.parse_args()
    new_tokens, repeats = (20, 1) if a.quick else (a.new_tokens, a.repeats)
    import onnxruntime

    torch.set_num_threads(os.cpu_count())
    tokenizer = load_tokenizer(a.model)
    prompt = tokenizer(tokenizer.bos_token + "Once upon a time", add_special_tokens=False)["input_ids"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.model
        if a.preset:
            folder = os.path.join(tmp, a.preset)
            save_preset(a.preset, tokenizer, folder)
        model = load_model(folder).eval()
        new_tokens = min(new_tokens, model.config.max_position_embeddings - len(prompt))
        export = onnx_folder(folder, os.path.join(tmp, "onnx-folder"), quantize=["q8", "q4"], log=lambda *_: None)
        graphs = {name: os.path.join(tmp, "onnx-folder", "onnx", name) for name in export["files"]}
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = os.cpu_count()
        sessions = {name: onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                    for name, path in graphs.items()}
        runners = {"PyTorch generate()": lambda: torch_greedy(model, prompt, new_tokens),
                   **{f"ONNX Runtime {name}": (lambda s=s: onnx_greedy(s, model.config, prompt, new_tokens))
                      for name, s in sessions.items()}}
        sizes = {"PyTorch generate()": os.path.getsize(os.path.join(folder, "model.safetensors")),
                 **{f"ONNX Runtime {name}": size for name, size in export["files"].items()}}
        batches, n_bytes = windows(tokenizer, read_stories(a.text, 3_000 if a.quick else a.max_bytes),
                                   model.config.max_position_embeddings)
        log_probs = {"PyTorch generate()": model_log_probs(model, batches),
                     **{f"ONNX Runtime {name}": (lambda w, s=s: onnx_log_probs(s, model.config, w))
                        for name, s in sessions.items()}}
        if importlib.util.find_spec("executorch"):
            for quantize in (None, "8da4w"):
                name = f"ExecuTorch {'8da4w' if quantize else 'fp32'}.pte"
                path = os.path.join(tmp, f"pte-{quantize or 'fp32'}", "model.pte")
                executorch_folder(folder, os.path.dirname(path), quantize, log=lambda *_: None)
                method = load_method(path)
                runners[name] = lambda m=method: pte_greedy(m, prompt, new_tokens)
                sizes[name] = os.path.getsize(path)
                log_probs[name] = lambda w, m=method: pte_log_probs(m, w)
        else:
            print("ExecuTorch left out: pip install 'tinylm-hf[executorch]'")
        best = {name: (float("inf"), float("inf")) for name in runners}
        tokens = {}
        for name, run in runners.items():
            run()  # warm up
        for _ in range(repeats):
            for name, run in runners.items():  # alternate, so machine noise hits every runtime alike
                tokens[name], first, rest = run()
                best[name] = (min(best[name][0], first), min(best[name][1], rest))
        if shutil.which("node") and os.path.isdir(os.path.join(JS, "node_modules", "node-llama-cpp")):
            for name, (got, first, rest, size, path) in llama_cpp_rows(folder, prompt, new_tokens, repeats,
                                                                        tmp).items():
                tokens[name], best[name], sizes[name] = got, (first, rest), size
                log_probs[name] = llama_cpp_log_probs(path, batches)
        else:
            print("llama.cpp left out: needs Node.js and (cd js && npm install --ignore-scripts --omit=optional)")
        quality = {name: compare(log_probs["PyTorch generate()"], lp, batches, n_bytes)
                   for name, lp in log_probs.items()}
    reference = tokens["PyTorch generate()"]
    if tokens["ONNX Runtime model.onnx"] != reference:
        raise SystemExit("the fp32 ONNX graph generated other tokens than PyTorch: an export bug")
    speed = {name: (new_tokens - 1) / rest for name, (_, rest) in best.items()}

    def figure(x):  # three significant figures: a tiny model's first token can take well under 0.05 ms
        return float(f"{x:.3g}")

    fp32 = quality["PyTorch generate()"]["bpb"]
    rows = [{"runtime": name, "MB": figure(sizes[name] / 1e6), "bpb": round(quality[name]["bpb"], 4),
             "x bpb": round(quality[name]["bpb"] / fp32, 4), "kl": figure(quality[name]["kl"]),
             "top1": round(quality[name]["top1"], 4), "first token ms": figure(first * 1000),
             "new tokens/s": round(speed[name]), "x PyTorch": round(speed[name] / speed["PyTorch generate()"], 2),
             "same tokens": tokens[name] == reference} for name, (first, _) in best.items()]
    report("runtimes", rows, {"model": a.preset or a.model, "parameters": model.num_parameters(),
                              "new tokens": new_tokens, "threads": os.cpu_count(), "text bytes": n_bytes},
           a.results_dir)


if __name__ == "__main__":
    main()
