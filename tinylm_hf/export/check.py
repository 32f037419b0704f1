"""How much an export loses: every format reads the same validation text as our fp32 PyTorch model, token by token.

    tinylm export check MODEL_DIR EXPORTED [--text FILE] [--max_bytes N]

EXPORTED is an ONNX folder (each of its onnx/*.onnx: fp32, q8, q4), an ExecuTorch folder (its model.pte), or one
.onnx or .pte file. The text (the TinyStories
validation stories shipped in the package unless --text; a story per `<|endoftext|>` line) is cut into windows of
the model's context, each story after the end-of-text token as in training, and every format predicts every next
token of the same ids (forced decoding, so one early difference does not change what the rest is scored on). A row
per format:

- `bpb`: bits per byte of the text under the format's own next-token probabilities (the first row: the model's);
- `x bpb`: that over the fp32 model's;
- `kl`: the mean KL divergence, in nats, from the model's next-token distribution to the format's;
- `top1`: the share of positions where both rank the same token first;
- `MB`: the file; `new tokens/s`: batch-1 greedy generation through the KV cache, 64 new tokens, best of 3.

llama.cpp's GGUF files are checked the same way by `benchmarks/runtimes.py` (it runs llama.cpp through Node.js).
"""

import gzip
import os
import time

import numpy as np
import torch
from transformers.generation.streamers import BaseStreamer

from ..data.sources import SAMPLE_FILES, documents
from ..errors import UserError
from ..files import written_whole
from ..loading import load_model
from ..tokenizer import load_tokenizer
from ..training.card import markdown_table
from .onnx import run_onnx

MAX_BYTES = 20_000
NEW_TOKENS = 64


def read_stories(path: str | None, max_bytes: int) -> list[str]:
    """The first stories of `path` (default: the validation sample in the package), up to `max_bytes` of UTF-8."""
    path = path or SAMPLE_FILES[1]
    if not os.path.isfile(path):
        raise UserError(f"--text {path}: no such file")
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8", errors="replace") as f:
        stories, size = [], 0
        for story in documents(f):
            if size and size + len(story.encode()) > max_bytes:
                break
            stories.append(story)
            size += len(story.encode())
    if not stories:
        raise UserError(f"{path} holds no text to check on")
    return stories


def windows(tokenizer, stories: list[str], context: int) -> tuple[list[list[int]], int]:
    """Windows of at most `context` ids over end-of-text + story + end-of-text + ..., each starting on the last id
    of the one before, so that every id after the first is predicted exactly once; and the text's UTF-8 bytes."""
    eos = tokenizer.eos_token_id
    ids = [eos]
    for story in stories:
        ids += tokenizer(story, add_special_tokens=False)["input_ids"] + [eos]
    step = context - 1
    return [ids[start:start + context] for start in range(0, len(ids) - 1, step)], sum(len(s.encode()) for s in stories)


def torch_log_probs(model, window: list[int]) -> np.ndarray:
    """(len - 1, vocab) log-probabilities of each next token under a PyTorch causal LM, in float64."""
    with torch.no_grad():
        logits = model(torch.tensor([window])).logits[0, :-1].double()
    return torch.log_softmax(logits, -1).numpy()


def model_log_probs(model, batches: list[list[int]]):
    """window -> `torch_log_probs` of the model, each window of `batches` computed once (the reference every format
    is compared with)."""
    table = {tuple(window): torch_log_probs(model, window) for window in batches}
    return lambda window: table[tuple(window)]


def onnx_log_probs(session, config, window: list[int]) -> np.ndarray:
    logits, _ = run_onnx(session, np.array([window]), None, config)
    logits = torch.from_numpy(logits[0, :-1]).double()
    return torch.log_softmax(logits, -1).numpy()


def compare(reference, candidate, batches: list[list[int]], n_bytes: int) -> dict:
    """bits per byte under `candidate` (window -> log-probabilities) and, against `reference`'s, the mean KL
    divergence and top-1 agreement over every predicted position."""
    nats = kl = agree = positions = 0.0
    for window in batches:
        p, q = reference(window), candidate(window)
        targets = np.array(window[1:])
        nats -= q[np.arange(len(targets)), targets].sum()
        kl += (np.exp(p) * (p - q)).sum()
        agree += (p.argmax(-1) == q.argmax(-1)).sum()
        positions += len(targets)
    return {"bpb": nats / np.log(2) / n_bytes, "kl": kl / positions, "top1": agree / positions}


class Clock(BaseStreamer):
    """A generate() streamer that only notes when each put() comes: the first is the prompt, then each new token."""

    def __init__(self):
        self.times = []

    def put(self, value):
        self.times.append(time.perf_counter())

    def end(self):
        pass


def torch_greedy(model, prompt: list[int], new_tokens: int) -> tuple[list[int], float, float]:
    """(tokens, seconds to the first, seconds for the rest) of one greedy generate() at batch 1."""
    ids = torch.tensor([prompt])
    clock = Clock()
    with torch.no_grad():
        start = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                             eos_token_id=None, pad_token_id=0, attention_mask=torch.ones_like(ids), streamer=clock)
        end = time.perf_counter()
    return out[0, len(prompt):].tolist(), clock.times[1] - start, end - clock.times[1]


def onnx_greedy(session, config, prompt: list[int], new_tokens: int) -> tuple[list[int], float, float]:
    """The same through an ONNX Runtime session: the prompt once, then one token at a time through the cache."""
    start = time.perf_counter()
    logits, past = run_onnx(session, np.array([prompt]), None, config)
    tokens = [int(logits[0, -1].argmax())]
    first = time.perf_counter() - start
    for _ in range(new_tokens - 1):
        logits, past = run_onnx(session, np.array([[tokens[-1]]]), past, config)
        tokens.append(int(logits[0, -1].argmax()))
    return tokens, first, time.perf_counter() - start - first


def rate(greedy, repeats: int = 3) -> float:
    """New tokens a second after the first: the fastest of `repeats` runs of `greedy()` (a warm-up first)."""
    greedy()
    return (NEW_TOKENS - 1) / min(greedy()[2] for _ in range(repeats))


def exported_files(exported: str) -> list[str]:
    """The graphs to check: an .onnx or .pte file, or those in an ONNX folder (onnx/*.onnx) or ExecuTorch folder."""
    if os.path.isfile(exported) and exported.endswith((".onnx", ".pte")):
        return [exported]
    files = []
    for folder, ext in ((os.path.join(exported, "onnx"), ".onnx"), (exported, ".pte")):
        if os.path.isdir(folder):
            files += sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(ext))
    if files:
        return files
    if exported.endswith(".gguf"):
        raise UserError(f"{exported}: GGUF files are checked by llama.cpp itself: python benchmarks/runtimes.py "
                        f"--model MODEL_DIR (from a clone, with Node.js and js/ installed)")
    raise UserError(f"{exported} is neither an ONNX or ExecuTorch folder (tinylm export onnx / executorch) nor an "
                    f".onnx or .pte file")


def runner(path: str, config):
    """(name, window -> log-probabilities, (prompt, n) -> greedy (tokens, first, rest)) of one exported file."""
    if path.endswith(".pte"):
        from .executorch import load_method, pte_greedy, pte_log_probs

        method = load_method(path)
        return (f"ExecuTorch {os.path.basename(path)}", lambda w: pte_log_probs(method, w),
                lambda prompt, n: pte_greedy(method, prompt, n))
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return (f"ONNX Runtime {os.path.basename(path)}", lambda w: onnx_log_probs(session, config, w),
            lambda prompt, n: onnx_greedy(session, config, prompt, n))


def check(model_dir: str, exported: str, text: str | None = None, max_bytes: int = MAX_BYTES,
          log=print) -> tuple[list[dict], str]:
    """The rows described in the module's docstring (the fp32 PyTorch model first, then each exported graph), and
    what they were measured on."""
    files = exported_files(exported)
    model = load_model(model_dir).eval()
    tokenizer = load_tokenizer(model_dir)
    batches, n_bytes = windows(tokenizer, read_stories(text, max_bytes), model.config.max_position_embeddings)
    log(f"checking on {n_bytes:,} bytes of text ({sum(len(w) - 1 for w in batches):,} tokens in {len(batches)} "
        f"windows)")
    reference = model_log_probs(model, batches)
    prompt = batches[0][:8]
    rows = [{"format": "PyTorch fp32", "MB": os.path.getsize(os.path.join(model_dir, "model.safetensors")) / 1e6,
             **compare(reference, reference, batches, n_bytes),
             "new tokens/s": rate(lambda: torch_greedy(model, prompt, NEW_TOKENS))}]
    config = model.config  # the cache's shape (the stock config of an export has the same)
    for path in files:
        name, log_probs, greedy = runner(path, config)
        rows.append({"format": name, "MB": os.path.getsize(path) / 1e6,
                     **compare(reference, log_probs, batches, n_bytes),
                     "new tokens/s": rate(lambda: greedy(prompt, NEW_TOKENS))})
    for row in rows:
        row["x bpb"] = row["bpb"] / rows[0]["bpb"]
    on = f"{n_bytes:,} bytes of {os.path.basename(text) if text else 'TinyStories validation stories'}"
    return [rounded(row) for row in rows], on


def rounded(row: dict) -> dict:
    return {"format": row["format"], "MB": round(row["MB"], 2), "bpb": round(row["bpb"], 4),
            "x bpb": round(row["x bpb"], 4), "kl": float(f"{row['kl']:.3g}"), "top1": round(row["top1"], 4),
            "new tokens/s": round(row["new tokens/s"])}


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table (the command's output, and an export's card)."""
    return markdown_table([tuple(rows[0]), *(tuple(row.values()) for row in rows)])

CARD = """---
library_name: transformers.js
pipeline_tag: text-generation
tags: [tinylm-hf, onnx]
---
# {name}

A small language model trained with tinylm-hf, exported to ONNX (with its KV cache) for ONNX Runtime and
transformers.js: `pipeline("text-generation", "USER/{name}", {{ dtype: "{dtype}" }})` (dtypes here: {dtypes}).

What each file loses against the fp32 PyTorch model (`tinylm export check`: forced decoding on {on}; bits per
byte, mean KL divergence of the next-token distribution, top-1 agreement; batch-1 greedy speed on the machine that
exported it):

{table}
"""


def write_card(out_dir: str, rows: list[dict], on: str) -> None:
    """README.md of an ONNX folder: how to load it and its check's table; an ExecuTorch folder's README (written
    with it) gets the table added."""
    if any(row["format"].startswith("ExecuTorch") for row in rows):
        path = os.path.join(out_dir, "README.md")
        with open(path) as f:
            text = f.read().split("\n## What it loses")[0]
        with written_whole(path) as tmp, open(tmp, "w") as f:
            f.write(f"{text}\n## What it loses\n\nAgainst the fp32 PyTorch model (`tinylm export check`: forced "
                    f"decoding on {on}):\n\n{table(rows)}\n")
        return
    files = {row["format"].split()[-1] for row in rows}
    dtypes = [d for d, f in (("q4", "model_q4.onnx"), ("q8", "model_quantized.onnx"), ("fp32", "model.onnx"))
              if f in files]
    with written_whole(os.path.join(out_dir, "README.md")) as tmp, open(tmp, "w") as f:
        f.write(CARD.format(name=os.path.basename(os.path.abspath(out_dir)), on=on, table=table(rows),
                            dtype=dtypes[0], dtypes=", ".join(f"`{d}`" for d in dtypes)))
