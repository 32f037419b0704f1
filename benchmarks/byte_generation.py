#!/usr/bin/env python
"""Generation speed of a byte model against a BPE model of the same size: MEGABYTE (`megabyte-quickstart`) and the
TinyLM llama model whose parameter count is nearest to it (the `quickstart-deep` shape with as many layers as that
takes, over a 4,096-token BPE), greedy, batch 1, the cache on, alternating in one run.

What a user waits for is text, not tokens: new tokens/s times the bytes (and characters) a token stands for on real
text, the TinyStories validation sample (a MEGABYTE token is one byte; the BPE's tokens are measured on that text).
Generation speed does not depend on what the weights learned (every run makes the same number of new tokens), so the
models are freshly initialised.

    python benchmarks/byte_generation.py [--quick]
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import add_results_argument, report  # noqa: E402
from tinylm_hf.data.sources import SAMPLE_FILES  # noqa: E402
from tinylm_hf.export.check import read_stories  # noqa: E402
from tinylm_hf.presets import count_parameters, get_preset  # noqa: E402
from tinylm_hf.tokenizer import bytes_per_token, train_tokenizer  # noqa: E402


def timed_generate(model, ids, new_tokens: int) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=1)
    assert out.shape[1] == ids.shape[1] + new_tokens
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer tokens, fewer repeats")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model, the best kept")
    add_results_argument(parser)
    a = parser.parse_args()
    train = read_stories(SAMPLE_FILES[0], 200_000 if a.quick else 2_000_000)
    valid = read_stories(SAMPLE_FILES[1], 200_000)
    text = "".join(valid)
    chars_per_byte = len(text) / len(text.encode())
    tokenizers = {"bpe": train_tokenizer(train, "bpe", 4096), "bytes": train_tokenizer(train, "bytes")}

    from transformers import AutoModelForCausalLM

    megabyte = get_preset("megabyte-quickstart", vocab_size=len(tokenizers["bytes"]))
    target = count_parameters(megabyte)
    vocab = len(tokenizers["bpe"])
    bpe = min((get_preset("quickstart-deep", vocab_size=vocab, num_hidden_layers=n) for n in range(2, 16)),
              key=lambda c: abs(count_parameters(c) - target))
    torch.manual_seed(0)
    models = {"megabyte-quickstart": (AutoModelForCausalLM.from_config(megabyte).eval(), "bytes"),
              f"quickstart-deep, {bpe.num_hidden_layers} layers (BPE)": (AutoModelForCausalLM.from_config(bpe).eval(),
                                                                         "bpe")}
    new_tokens = {"bytes": 256 if a.quick else 896}  # most of a MEGABYTE context (1,024 bytes), prompt included
    per_token = {kind: bytes_per_token(tok, valid) for kind, tok in tokenizers.items()}
    new_tokens["bpe"] = round(new_tokens["bytes"] / per_token["bpe"])  # the same text length in both
    prompt = valid[0][:64]
    best = {}
    for name, (model, kind) in models.items():
        ids = tokenizers[kind](tokenizers[kind].bos_token + prompt, return_tensors="pt",
                               add_special_tokens=False)["input_ids"]
        models[name] = (model, kind, ids)
        timed_generate(model, ids, 8)  # warm up
    for _ in range(2 if a.quick else a.repeats):
        for name, (model, kind, ids) in models.items():  # alternate, so machine noise hits both alike
            best[name] = min(best.get(name, 1e9), timed_generate(model, ids, new_tokens[kind]))
    rows = []
    for name, (model, kind, ids) in models.items():
        tokens_per_s = new_tokens[kind] / best[name]
        rows.append({"model": name, "params": model.num_parameters(), "tokenizer": kind,
                     "new tokens": new_tokens[kind], "tokens/s": round(tokens_per_s),
                     "bytes per token": round(per_token[kind], 2),
                     "bytes/s": round(tokens_per_s * per_token[kind]),
                     "characters/s": round(tokens_per_s * per_token[kind] * chars_per_byte)})
    ratio = rows[0]["bytes/s"] / rows[1]["bytes/s"]
    report("byte_generation", rows, {
        "setting": f"greedy, batch 1, cache on, fp32, prompt {len(prompt)} characters, best of "
                   f"{2 if a.quick else a.repeats}; bytes per token on {len(valid)} TinyStories validation stories",
        "megabyte / bpe (bytes/s)": round(ratio, 3)}, a.results_dir)


if __name__ == "__main__":
    main()
