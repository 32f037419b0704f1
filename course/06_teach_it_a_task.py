# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 6. Teach it a task
#
# A pretrained model continues text. Asked "Write a story. Words: kite, jump, happy", it has no idea that this is
# a request: it never saw one. Instruction tuning shows it thousands of requests with good answers, in a fixed
# format (the chat template), and trains it **only on the answers**: the loss ignores the request's tokens, so the
# model learns to answer, not to write requests.
#
# Needs the two models of the quickstart: `tinylm pretrain` (`outputs/quickstart`) then `tinylm instruct`
# (`outputs/quickstart-instruct`); `TINYLM_MODEL` and `TINYLM_TUNED` name others.

# %%
import os
import re

import matplotlib

if not os.environ.get("JPY_PARENT_PID"):  # run as a script: write the figures instead of showing them
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from tinylm_hf.data.instruct import embedded_chat, encode_chat
from tinylm_hf.loading import load_model
from tinylm_hf.tokenizer import load_tokenizer
from tinylm_hf.training.generation import complete

BASE = os.environ.get("TINYLM_MODEL", "outputs/quickstart")
TUNED = os.environ.get("TINYLM_TUNED", "outputs/quickstart-instruct")
OUT = os.environ.get("TINYLM_COURSE_OUT", "outputs/course")
os.makedirs(OUT, exist_ok=True)
base, tuned = load_model(BASE).eval(), load_model(TUNED).eval()
tokenizer = load_tokenizer(TUNED)  # the same vocabulary, with the chat template

# %% [markdown]
# ## A chat, as the model sees it
#
# One held-out record of the embedded corpus as a chat: the user asks, the assistant answers. The chat template
# turns it into one text with role tags; the labels are -100 (ignored by the loss) everywhere but the answer.

# %%
chats = embedded_chat(200, seed=7)["validation"]  # records the tuned model never trained on
messages = chats[0]["messages"]
print(tokenizer.apply_chat_template(messages, tokenize=False)[:600])
example = encode_chat(messages, tokenizer, max_length=tuned.config.max_position_embeddings)
ids, labels = example["input_ids"], example["labels"]
learned = [t for t, label in zip(ids, labels) if label != -100]
print(f"{len(ids)} tokens, of which {len(learned)} are learned: "
      f"{tokenizer.decode(learned[:12])!r} ... {tokenizer.decode(learned[-6:])!r}")
assert tokenizer.decode(learned) == messages[1]["content"] + tokenizer.eos_token  # the answer and its end, only

# %% [markdown]
# ## The loss on the answer, before and after
#
# The same masked loss, computed by each model's own `forward` (transformers' causal LM loss skips the -100s):

# %%
def answer_bits(model):
    """Each answer token's surprisal in bits, and the mean: the masked loss in bits."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()  # position t predicts token t + 1
    targets = torch.tensor(labels[1:])
    keep = targets != -100
    bits = -logits.log_softmax(-1)[keep].gather(1, targets[keep, None])[:, 0] / torch.log(torch.tensor(2.0))
    loss = model(torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
    assert abs(bits.mean().item() * torch.log(torch.tensor(2.0)).item() - loss) < 1e-4  # the model's own loss
    return bits


bits = {"base": answer_bits(base), "tuned": answer_bits(tuned)}
for name, b in bits.items():
    print(f"{name:5} model: {b.mean():.2f} bits per answer token")

# %% [markdown]
# ## Side by side
#
# Both models answer held-out requests. The request names words the story must use; the base model, never
# having seen a request, mostly writes a story of its own (or nothing).

# %%
records = chats.select(range(6))
prompts = [chat["messages"][0]["content"] for chat in records]
answers = {name: complete(model, tokenizer, prompts, chat=True, max_new_tokens=150)
           for name, model in (("base", base), ("tuned", tuned))}


def words_used(prompt, answer):
    """How many of the request's Words the answer uses (the word itself or with an ending: jump, jumps, jumped)."""
    line = next((ln for ln in prompt.splitlines() if ln.startswith("Words: ")), "Words: ")
    words = [w.strip() for w in line.removeprefix("Words: ").split(",") if w.strip()]
    return sum(bool(re.search(rf"\b{re.escape(w.lower().rstrip('e'))}", answer.lower())) for w in words), len(words)


share = {}
for name in answers:
    used = [words_used(p, a) for p, a in zip(prompts, answers[name])]
    share[name] = sum(u for u, _ in used) / max(sum(n for _, n in used), 1)
print(prompts[0], "\n")
for name in answers:
    print(f"--- {name} ({share[name]:.0%} of the required words over {len(prompts)} requests)\n"
          f"{answers[name][0][:300]}\n")

fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].bar(list(bits), [b.mean().item() for b in bits.values()], color=["tab:grey", "tab:green"])
axes[0].set_ylabel("bits per answer token")
axes[0].set_title("the masked loss on a held-out answer")
axes[1].bar(list(share), list(share.values()), color=["tab:grey", "tab:green"])
axes[1].set_ylim(0, 1)
axes[1].set_title("required words used")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "06_base_and_tuned.png"))
assert bits["tuned"].mean() < bits["base"].mean(), "tuning did not lower the loss on held-out answers"

# %% [markdown]
# `tinylm instruct` measures the same thing on 64 held-out requests, before and after, with `word_inclusion`
# (which knows irregular forms) and the loss on the responses, and writes both into the model card.
#
# **Try**: give the tuned model a request in a shape it never saw ("Please write about a kite."). Does it still
# answer? (It learned one format: the more your own data varies its requests, the more it generalises.)
