# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 2. The model by hand
#
# `modeling_tinylm.py` is a few hundred lines because it plugs into everything transformers offers (caches,
# attention kernels, masks for padding, the Hub). The computation itself is short. This chapter writes one forward
# pass out in plain torch, from the saved weights of **your** model, and checks that it gives the model's own
# logits.
#
# It needs a trained model of the llama family (the quickstart's): `tinylm pretrain` writes one to
# `outputs/quickstart`; `TINYLM_MODEL=DIR` names another.

# %%
import math
import os

import matplotlib

if not os.environ.get("JPY_PARENT_PID"):  # run as a script: write the figures instead of showing them
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from tinylm_hf.loading import load_model
from tinylm_hf.tokenizer import load_tokenizer

MODEL = os.environ.get("TINYLM_MODEL", "outputs/quickstart")  # a model folder or a Hub id
OUT = os.environ.get("TINYLM_COURSE_OUT", "outputs/course")
os.makedirs(OUT, exist_ok=True)

model = load_model(MODEL).eval()
tokenizer = load_tokenizer(MODEL)
cfg = model.config
if (cfg.position_embedding, cfg.norm, cfg.mlp) != ("rope", "rmsnorm", "swiglu"):
    raise SystemExit(f"{MODEL} is of the gpt family: this chapter writes out the llama family's forward pass")
C, H, K, D, L = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.num_hidden_layers
print(f"hidden size C={C}, {L} layers, {H} query heads and {K} key/value heads of size D={D}, "
      f"vocabulary V={cfg.vocab_size}, context {cfg.max_position_embeddings}")

# every weight by name, in float64 (the model below too): so the comparison shows the computation, not the rounding
# of float32, whose different orders of operations alone move logits by ~1e-5
W = {name: w.detach().double() for name, w in model.state_dict().items()}
for name, w in list(W.items())[:8]:
    print(f"{name:40} {tuple(w.shape)}")

# %% [markdown]
# ## The pieces
#
# **RMSNorm** rescales each token's vector to unit root-mean-square, then multiplies by a learned weight per
# channel. **RoPE** encodes positions by rotating pairs of query/key channels by an angle that grows with the
# position, so the dot product of a query and a key depends on how far apart they are.

# %%
def rms_norm(x, weight):  # x (..., n), weight (n,)
    return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + cfg.norm_eps)


def rope_tables(T):  # the angle of channel pair i at position t: t / theta^(2i / D)
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, D, 2).double() / D)  # (D/2,)
    angles = torch.arange(T).double()[:, None] * inv_freq  # (T, D/2)
    return angles.cos(), angles.sin()


def rotate(x, cos, sin):  # x (heads, T, D): channel i pairs with i + D/2 (the "rotate half" layout of HF Llama)
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


# %% [markdown]
# ## One forward pass
#
# Embedding lookup, then for each layer: attention (queries, keys, values from one matrix, causal mask, softmax)
# added to the residual stream, then the SwiGLU MLP added to it; a final norm and the output head (the embedding
# matrix again: the weights are tied).

# %%
TEXT = "Once upon a time, there was a little dog named Max. Max liked to play with his red ball."
ids = tokenizer(TEXT)["input_ids"]
T = len(ids)
cos, sin = rope_tables(T)
causal = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)  # token t may look at 0..t only

x = W["model.embed_tokens.weight"][ids]  # (T, C)
for i in range(L):
    p = f"model.layers.{i}."
    # attention
    h = rms_norm(x, W[p + "attn_norm.weight"])
    q, k, v = (h @ W[p + "attn.qkv_proj.weight"].T).split([H * D, K * D, K * D], dim=-1)
    q, k, v = q.view(T, H, D).transpose(0, 1), k.view(T, K, D).transpose(0, 1), v.view(T, K, D).transpose(0, 1)
    if cfg.qk_norm:  # each head's query and key normed (Qwen3's QK-norm), before the rotation
        q, k = rms_norm(q, W[p + "attn.q_norm.weight"]), rms_norm(k, W[p + "attn.k_norm.weight"])
    q, k = rotate(q, cos, sin), rotate(k, cos, sin)
    k, v = k.repeat_interleave(H // K, dim=0), v.repeat_interleave(H // K, dim=0)  # (H, T, D): shared k/v heads
    scores = q @ k.transpose(1, 2) / math.sqrt(D) + causal  # (H, T, T)
    attn = scores.softmax(dim=-1)  # each row sums to 1
    y = (attn @ v).transpose(0, 1).reshape(T, H * D)  # (T, C): the heads side by side
    x = x + y @ W[p + "attn.o_proj.weight"].T
    # MLP
    h = rms_norm(x, W[p + "mlp_norm.weight"])
    gate, up = (h @ W[p + "mlp.up_proj.weight"].T).chunk(2, dim=-1)
    x = x + (F.silu(gate) * up) @ W[p + "mlp.down_proj.weight"].T
x = rms_norm(x, W["model.norm.weight"])
logits_by_hand = x @ model.get_output_embeddings().weight.detach().double().T  # (T, V)

with torch.no_grad():
    logits = model.double()(torch.tensor([ids])).logits[0]  # (T, V)
difference = (logits_by_hand - logits).abs().max().item()
print(f"largest difference from TinyLMForCausalLM's logits: {difference:.2e}")
assert difference < 1e-5, "the forward pass written out differs from the model's"

# %% [markdown]
# The same numbers: there is nothing else in the model. The next token is the argmax (or a sample) of the last
# row:

# %%
top = logits_by_hand[-1].softmax(-1).topk(5)
print(repr(TEXT[-30:]), "->", [(tokenizer.decode([int(t)]), round(float(p), 3)) for p, t in zip(*top)])

# %% [markdown]
# ## Where the parameters are

# %%
parts = {"embedding (and tied head)": 0, "attention": 0, "MLP": 0, "norms": 0}
for name, w in model.named_parameters():
    part = ("embedding (and tied head)" if "embed" in name else "norms" if "norm" in name else
            "attention" if ".attn." in name else "MLP")
    parts[part] += w.numel()
total = sum(parts.values())
assert total == model.num_parameters()
for part, n in parts.items():
    print(f"{part:28} {n:9,}  {n / total:6.1%}")

fig, ax = plt.subplots(figsize=(6, 2.5))
ax.barh(list(parts), list(parts.values()), color="tab:blue")
ax.set_xlabel("parameters")
ax.set_title(f"{total:,} parameters")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "02_parameters.png"))

# %% [markdown]
# In a model this small the embedding table is a large share of everything: a 4,096-token vocabulary times 128
# channels. In a 7B model it is about 2%.
#
# **Try**: skip the rotation (comment out the `rotate` line) and compare the next-token top 5. What did the model
# lose? (Its only sense of order: without RoPE, attention sees the earlier tokens as a bag, not a sequence.)
