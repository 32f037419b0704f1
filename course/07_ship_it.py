# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 7. Ship it
#
# A model folder runs where PyTorch runs. To run in a web page, a phone app or llama.cpp, it is exported: the same
# weights and the same computation in another format, for another runtime. This chapter exports your model to ONNX
# (ONNX Runtime; transformers.js in the browser) and to GGUF (llama.cpp), and checks that each runtime continues a
# story with the same tokens as PyTorch.
#
# Needs a trained model (`outputs/quickstart`; `TINYLM_MODEL=DIR` names another) and the export extras
# (`pip install -e ".[export]"`); llama.cpp runs if `js/` has its packages (`cd js && npm install
# --ignore-scripts --omit=optional`).

# %%
import json
import os
import shutil
import subprocess
from pathlib import Path

import matplotlib

if not os.environ.get("JPY_PARENT_PID"):  # run as a script: write the figures instead of showing them
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import onnxruntime
import torch

import tinylm_hf
from tinylm_hf.export.gguf import write_gguf
from tinylm_hf.export.onnx import onnx_folder, run_onnx
from tinylm_hf.loading import load_model
from tinylm_hf.tokenizer import load_tokenizer

MODEL = os.environ.get("TINYLM_MODEL", "outputs/quickstart")
OUT = os.environ.get("TINYLM_COURSE_OUT", "outputs/course")
SHIP = os.path.join(OUT, "07_ship")
os.makedirs(SHIP, exist_ok=True)
model = load_model(MODEL).eval()
tokenizer = load_tokenizer(MODEL)

prompt = tokenizer(tokenizer.bos_token + "Once upon a time, there was", add_special_tokens=False)["input_ids"]
N = 30
with torch.no_grad():
    reference = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=N, min_new_tokens=N,
                               pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
print("PyTorch:", repr(tokenizer.decode(reference)))


def shortfall(tokens):
    """How far PyTorch's logit for each token a runtime chose falls short of PyTorch's best on the same prefix, at
    most: 0 when the runtime made PyTorch's greedy choices (a near-tie can go either way within rounding)."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1:-1]
    return (logits.max(-1).values - logits[torch.arange(len(tokens)), torch.tensor(tokens)]).max().item()


# %% [markdown]
# ## ONNX: one graph with the KV cache
#
# The export goes through the exact conversion to a stock architecture (`llama`, `qwen3` or `gpt2`: names every
# runtime knows), then `torch.onnx.export`. The graph takes the new tokens and the cache, and gives the logits and
# the new cache, so each step feeds one token.

# %%
report = onnx_folder(MODEL, os.path.join(SHIP, "onnx"), quantize="q8")
session = onnxruntime.InferenceSession(os.path.join(SHIP, "onnx", "onnx", "model.onnx"),
                                       providers=["CPUExecutionProvider"])
logits, past = run_onnx(session, np.array([prompt]), None, model.config)
onnx_tokens = []
for _ in range(N):  # greedy, one token at a time through the cache
    onnx_tokens.append(int(logits[0, -1].argmax()))
    logits, past = run_onnx(session, np.array([[onnx_tokens[-1]]]), past, model.config)
print("ONNX Runtime:", repr(tokenizer.decode(onnx_tokens)), "(the same tokens)" if onnx_tokens == reference else "")
print(f"ONNX Runtime's choices fall at most {shortfall(onnx_tokens):.4f} short of PyTorch's best logit")
assert shortfall(onnx_tokens) < 1e-3, "ONNX Runtime continued differently"

# %% [markdown]
# The same folder is what transformers.js loads in a browser; `tinylm export web` adds a page to it. The 8-bit
# graph (`model_quantized.onnx`) stores the matrices in one byte per weight instead of four.
#
# ## GGUF: llama.cpp's one file

# %%
gguf_path = os.path.join(SHIP, "model.gguf")
write_gguf(MODEL, gguf_path, "f32")
js = Path(tinylm_hf.__file__).resolve().parents[1] / "js"
if shutil.which("node") and (js / "node_modules" / "node-llama-cpp").is_dir():
    request = os.path.join(SHIP, "request.json")
    json.dump({"model": gguf_path, "prompt": prompt, "new_tokens": N, "past_eos": True}, open(request, "w"))
    answer = subprocess.run(["node", str(js / "llama_cpp.mjs"), request], capture_output=True, text=True, check=True)
    llama_tokens = json.loads(answer.stdout.strip().splitlines()[-1])["tokens"]
    print("llama.cpp:", repr(tokenizer.decode(llama_tokens)), "(the same tokens)" if llama_tokens == reference else "")
    print(f"llama.cpp's choices fall at most {shortfall(llama_tokens):.4f} short of PyTorch's best logit")
    assert shortfall(llama_tokens) < 0.02, "llama.cpp continued differently"  # its own f32 kernels round otherwise
else:
    print(f"llama.cpp: run `llama-cli -m {gguf_path} -p 'Once upon a time, there was'` (or install js/: see above)")

# %% [markdown]
# ## What each format weighs

# %%
sizes = {"PyTorch\n(safetensors)": os.path.getsize(os.path.join(MODEL, "model.safetensors"))
         if os.path.isdir(MODEL) else 0,
         "ONNX fp32": report["files"]["model.onnx"], "ONNX 8-bit": report["files"]["model_quantized.onnx"],
         "GGUF f32": os.path.getsize(gguf_path)}
for name, size in sizes.items():
    print(f"{name.replace(chr(10), ' '):24} {size / 1e6:6.2f} MB")
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(list(sizes), [s / 1e6 for s in sizes.values()], color="tab:blue")
ax.set_ylabel("MB")
ax.set_title("one model, four files")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "07_sizes.png"))

# %% [markdown]
# **Try**: export with `write_gguf(MODEL, path, "q8_0")` and compare its tokens with PyTorch's. Where do they
# start to differ, and by how much did the file shrink? (8-bit weights move the logits a little: greedy
# decoding follows PyTorch until two candidates are close.)
