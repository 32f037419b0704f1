"""Shared by the benchmarks: the reference shape, stock peer models of the same shape, table + JSON output."""

import json
import os
import platform
import subprocess

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from tinylm_hf import TinyLMConfig, TinyLMForCausalLM
from tinylm_hf.files import write_json
from tinylm_hf.hardware import device_name

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def add_results_argument(parser):
    parser.add_argument("--results_dir", default=RESULTS, help="where NAME.json is written (default: %(default)s)")


def add_shape_arguments(parser):
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="a short run")


def build(name: str, a):
    """Our model (gpt / llama family) or the stock peer with the same shape, freshly initialised (seed 0)."""
    torch.manual_seed(0)
    shape = dict(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=a.heads,
                 max_position_embeddings=a.context, eos_token_id=0, pad_token_id=1, bos_token_id=0)
    if name == "tinylm-gpt":
        return TinyLMForCausalLM(TinyLMConfig(family="gpt", **shape))
    if name == "tinylm-llama":
        return TinyLMForCausalLM(TinyLMConfig(family="llama", **shape))
    if name == "GPT2LMHeadModel":
        return GPT2LMHeadModel(GPT2Config(vocab_size=a.vocab, n_embd=a.hidden, n_layer=a.layers, n_head=a.heads,
                                          n_positions=a.context, eos_token_id=0, bos_token_id=0, pad_token_id=1))
    if name == "LlamaForCausalLM":
        ours = TinyLMConfig(family="llama", **shape)
        return LlamaForCausalLM(LlamaConfig(**shape, intermediate_size=ours.intermediate_size,
                                            tie_word_embeddings=True))
    raise ValueError(name)


def save_preset(preset: str, tokenizer, folder: str, **overrides) -> TinyLMForCausalLM:
    """A freshly initialised model of a preset (seed 0) saved with `tokenizer` at `folder`: a bigger model to time
    when only its shape matters."""
    from tinylm_hf.presets import get_preset

    torch.manual_seed(0)
    config = get_preset(preset, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, **overrides)
    model = TinyLMForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


JS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "js")


def llama_cpp(request: dict) -> dict:
    """llama.cpp on a GGUF file through js/llama_cpp.mjs (node-llama-cpp; the request and answer are described
    there). Needs Node.js and `npm install --ignore-scripts --omit=optional` in js/."""
    path = os.path.splitext(request["model"])[0] + ".request.json"
    with open(path, "w") as f:
        json.dump(request, f)
    proc = subprocess.run(["node", os.path.join(JS, "llama_cpp.mjs"), path], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"llama.cpp failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def llama_cpp_log_probs(path: str, batches: list[list[int]]):
    """window -> llama.cpp's log-probabilities of each next token, all windows computed in one call."""
    out = path + ".logits.f32"
    answer = llama_cpp({"model": path, "windows": batches, "logits_file": out})
    logits = torch.from_numpy(np.fromfile(out, np.float32).reshape(answer["positions"], answer["vocabulary"]))
    rows, at = {}, 0
    for window in batches:
        rows[tuple(window)] = torch.log_softmax(logits[at:at + len(window) - 1].double(), -1).numpy()
        at += len(window) - 1
    return lambda window: rows[tuple(window)]


PEERS = {"tinylm-gpt": "GPT2LMHeadModel", "tinylm-llama": "LlamaForCausalLM"}


def report(name: str, rows: list[dict], extra: dict, results_dir: str = RESULTS) -> None:
    """Print rows as a table and write them, with the machine, to RESULTS_DIR/NAME.json (written whole, then
    renamed: an interrupted run leaves the last complete results)."""
    columns = list(rows[0])
    widths = [max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)))
    for k, v in extra.items():
        print(f"{k}: {v}")
    os.makedirs(results_dir, exist_ok=True)
    machine = {"device": device_name(), "torch": torch.__version__, "python": platform.python_version()}
    path = os.path.join(results_dir, f"{name}.json")
    write_json(path, {"machine": machine, **extra, "rows": rows}, indent=1)
    print(f"wrote {path}")
