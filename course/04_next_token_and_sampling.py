# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 4. Next-token prediction and sampling
#
# The model does one thing: given the tokens so far, it gives a probability to every token of its vocabulary for
# the next position. Everything that looks like writing is a loop around that: pick a token, append it, ask again.
# How the token is picked (greedy, temperature, top-k, top-p) is not the model; it is a few lines of code, written
# out here by hand and checked against what `generate()` does.
#
# Needs a trained model: `tinylm pretrain` writes `outputs/quickstart`; `TINYLM_MODEL=DIR` names another.

# %%
import os

import matplotlib

if not os.environ.get("JPY_PARENT_PID"):  # run as a script: write the figures instead of showing them
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from tinylm_hf.loading import load_model
from tinylm_hf.tokenizer import load_tokenizer

MODEL = os.environ.get("TINYLM_MODEL", "outputs/quickstart")
OUT = os.environ.get("TINYLM_COURSE_OUT", "outputs/course")
os.makedirs(OUT, exist_ok=True)
model = load_model(MODEL).eval()
tokenizer = load_tokenizer(MODEL)

PROMPT = "Once upon a time, there was a little"
ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
with torch.no_grad():
    logits = model(ids).logits[0, -1]  # (V,): one score per token of the vocabulary
probs = logits.softmax(-1)
print(f"{len(probs):,} probabilities, summing to {probs.sum():.4f}; the 8 most likely next tokens:")
for p, t in zip(*probs.topk(8)):
    print(f"  {tokenizer.decode([int(t)])!r:12} {p:.3f}")

# %% [markdown]
# ## Temperature, top-k, top-p, by hand
#
# - **temperature** divides the scores before the softmax: below 1 sharpens the distribution, above 1 flattens it.
# - **top-k** keeps the k most likely tokens.
# - **top-p** (nucleus) keeps the most likely tokens until their probability adds up to p.
#
# Cut tokens get a score of -inf, so a probability of 0.

# %%
def sample_distribution(logits, temperature=1.0, top_k=0, top_p=1.0):
    scores = logits / temperature
    if top_k:
        kth_best = scores.topk(top_k).values[-1]
        scores = scores.masked_fill(scores < kth_best, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = scores.sort(descending=True)
        mass_before = sorted_scores.softmax(-1).cumsum(-1) - sorted_scores.softmax(-1)  # of the likelier tokens
        cut = mass_before >= top_p  # the nucleus is already full before this token
        scores = scores.masked_fill(torch.zeros_like(cut).scatter(0, order, cut), float("-inf"))
    return scores.softmax(-1)


SETTINGS = dict(temperature=0.8, top_k=40, top_p=0.9)
by_hand = sample_distribution(logits, **SETTINGS)
print(f"kept {int((by_hand > 0).sum())} of {len(by_hand):,} tokens")

# %% [markdown]
# The same three steps as transformers' logits processors, which `generate(do_sample=True, ...)` applies in this
# order, and the scores `generate()` itself samples its first token from:

# %%
processors = LogitsProcessorList([TemperatureLogitsWarper(SETTINGS["temperature"]), TopKLogitsWarper(SETTINGS["top_k"]),
                                  TopPLogitsWarper(SETTINGS["top_p"])])
library = processors(ids, logits[None].clone())[0].softmax(-1)
generated = model.generate(ids, do_sample=True, max_new_tokens=1, output_scores=True, return_dict_in_generate=True,
                           pad_token_id=tokenizer.pad_token_id, **SETTINGS)
from_generate = generated.scores[0][0].softmax(-1)
for name, other in (("the logits processors", library), ("generate()", from_generate)):
    assert torch.equal(by_hand > 0, other > 0) and torch.allclose(by_hand, other, atol=1e-6), name
    print(f"by hand = {name}: the same {int((other > 0).sum())} tokens, the same probabilities")

# %% [markdown]
# ## What temperature does to the distribution

# %%
top = probs.topk(12).indices
labels = [tokenizer.decode([int(t)]) for t in top]
fig, axes = plt.subplots(1, 3, figsize=(11, 3), sharey=True)
for ax, temperature in zip(axes, (0.5, 1.0, 1.5)):
    ax.bar(range(len(top)), sample_distribution(logits, temperature)[top].numpy())
    ax.set_xticks(range(len(top)), labels, rotation=70)
    ax.set_title(f"temperature {temperature}")
axes[0].set_ylabel("probability")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "04_temperature.png"))

# %% [markdown]
# ## Writing is a loop
#
# Greedy decoding by hand, with no cache (each step runs the whole text again), equals `generate()`'s greedy
# tokens:

# %%
text_ids = ids
with torch.no_grad():
    for _ in range(20):
        next_id = model(text_ids).logits[0, -1].argmax()
        text_ids = torch.cat([text_ids, next_id.view(1, 1)], dim=1)
greedy = model.generate(ids, do_sample=False, max_new_tokens=20, eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
assert torch.equal(text_ids, greedy)
print(tokenizer.decode(text_ids[0]))

# %% [markdown]
# ## The context limit, felt
#
# The model has a position for each of its `max_position_embeddings` tokens and no more. A story longer than
# that cannot be read at once:

# %%
context = model.config.max_position_embeddings
story = " ".join(["Lily went to the park and played with her ball."] * 40)
long_ids = tokenizer(story, return_tensors="pt")["input_ids"]
print(f"the story is {long_ids.shape[1]} tokens; the context is {context}")
try:
    model(long_ids)
except ValueError as err:
    print("the model refuses:", err)
# what a chat or a story generator does instead: keep the last `context` tokens; the beginning is forgotten
with torch.no_grad():
    last = model(long_ids[:, -context:]).logits[0, -1].softmax(-1)
print("reading only the last", context, "tokens, it expects:", repr(tokenizer.decode([int(last.argmax())])))

# %% [markdown]
# **Try**: set `top_p=0.5` with `temperature=1.5`. Temperature flattens the distribution, so the nucleus needs
# more tokens to reach half the mass: how many does it keep, compared with `temperature=0.8`?
