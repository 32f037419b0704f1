# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 3. Watch it learn
#
# Training keeps a snapshot of the weights at every evaluation (`OUTPUT_DIR/snapshots/step-N`). This chapter
# reads your run's snapshots and watches one skill appear: **copying a name**. A story says "a dog named Max";
# later the story needs the name again, and the only way to know it is to look back at it. Early in training the
# model cannot; at some step a head of some layer starts to look at the earlier "Max", and the name becomes
# nearly free to predict. (A run keeps a snapshot at each evaluation, every fifth of the run by default:
# `--eval_steps 0.05` keeps twenty.) On the quickstart's corpus that is the drop of the validation loss from ~0.6 to ~0.3.
#
# Needs a run folder with snapshots: `tinylm pretrain` writes `outputs/quickstart`; `TINYLM_MODEL=DIR` names
# another.

# %%
import glob
import json
import os

import matplotlib

if not os.environ.get("JPY_PARENT_PID"):  # run as a script: write the figures instead of showing them
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from tinylm_hf import xray
from tinylm_hf.loading import load_model
from tinylm_hf.tokenizer import load_tokenizer

RUN = os.environ.get("TINYLM_MODEL", "outputs/quickstart")
OUT = os.environ.get("TINYLM_COURSE_OUT", "outputs/course")
os.makedirs(OUT, exist_ok=True)
tokenizer = load_tokenizer(RUN)
steps = xray.snapshots(RUN)
print("snapshots at steps", steps)

# %% [markdown]
# ## The loss curve
#
# The Trainer logs the training loss every few steps and the validation loss at each evaluation, in its
# `trainer_state.json`; the dotted lines are the snapshots.

# %%
last_checkpoint = max(glob.glob(os.path.join(RUN, "checkpoint-*")), key=lambda p: int(p.rsplit("-", 1)[1]))
history = json.load(open(os.path.join(last_checkpoint, "trainer_state.json")))["log_history"]
train = [(h["step"], h["loss"]) for h in history if "loss" in h]
valid = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(*zip(*train), label="training loss", alpha=0.7)
ax.plot(*zip(*valid), "o-", label="validation loss")
for step in steps:
    ax.axvline(step, color="grey", linestyle=":", linewidth=1)
ax.set_xlabel("step")
ax.set_ylabel("loss (nats per token)")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "03_loss_curve.png"))

# %% [markdown]
# ## Surprisal of one story, step by step
#
# Surprisal is -log2 of the probability the model gave the token that came: 0 bits when it was certain, 10 bits
# when it gave it 1 in 1,000.

# %%
STORY = ("Once upon a time, there was a little dog named Max. Max liked to play in the park. "
         "One day, Max saw a big red ball.")
models = {step: xray.load_snapshot(RUN, step) for step in steps}
models["final"] = load_model(RUN).eval()
pieces = [t["text"] for t in xray.tokens(tokenizer, STORY)["tokens"]]
names = [t for t, piece in enumerate(pieces) if piece.strip() == "Max"]  # the name's positions
first, later = names[0], names[1:]
print("the name at tokens", names, "of", len(pieces))

bits = {step: np.array([t["bits"] for t in xray.surprisal(m, tokenizer, STORY)["tokens"]]) for step, m in models.items()}
fig, ax = plt.subplots(figsize=(11, 0.45 * len(bits) + 1))
grid = np.stack(list(bits.values()))
ax.imshow(grid, aspect="auto", cmap="Reds", vmin=0, vmax=12)
ax.set_yticks(range(len(bits)), [f"step {s}" if s != "final" else "final" for s in bits])
ax.set_xticks(range(len(pieces)), pieces, rotation=90, fontsize=7)
ax.set_title("surprisal (bits) of each token, at each snapshot: white is easy")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "03_surprisal_by_step.png"))
for step, b in bits.items():
    print(f"{str(step):>6}: mean {b.mean():5.2f} bits, the first 'Max' {b[first]:5.2f}, "
          f"the later ones {b[later].mean():5.2f}")

# %% [markdown]
# The first "Max" stays expensive at every step: nothing in the story so far says which name comes. The later
# ones become nearly free: the model has learned to copy.
#
# ## The head that copies
#
# Where the name is predicted (the token just before each later "Max"), which head of which layer looks back at
# the first "Max"?

# %%
def copy_scores(model):
    """(layers, heads): the attention paid to the earlier 'Max'es from the positions that predict a later one,
    averaged over the later ones. The model reads the beginning-of-text token first, so text token t sits at
    position t + 1, and position t is the one that predicts it."""
    weights = xray.attention(model, tokenizer, STORY)["weights"].numpy()  # (layers, heads, T + 1, T + 1)
    return np.mean([weights[:, :, t, [n + 1 for n in names if n < t]].sum(-1) for t in later], axis=0)


final = copy_scores(models["final"])
layer, head = np.unravel_index(final.argmax(), final.shape)
print(f"the copying head: layer {layer + 1}, head {head + 1}, "
      f"{final[layer, head]:.0%} of its attention on the earlier 'Max'")
by_step = {step: copy_scores(m)[layer, head] for step, m in models.items()}
for step, score in by_step.items():
    print(f"{str(step):>6}: {score:.0%}")

fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
seen = xray.attention(models["final"], tokenizer, STORY)
weights = seen["weights"][layer, head].numpy()
axes[0].imshow(weights, cmap="Blues")
axes[0].set_xticks(range(len(seen["tokens"])), seen["tokens"], rotation=90, fontsize=6)
axes[0].set_yticks(range(len(seen["tokens"])), seen["tokens"], fontsize=6)
for t in later:  # row t predicts text token t; column n + 1 is the name at text token n
    for n in (n for n in names if n < t):
        axes[0].add_patch(plt.Rectangle((n + 0.5, t - 0.5), 1, 1, fill=False, edgecolor="red"))
axes[0].set_title(f"layer {layer + 1}, head {head + 1}: row t attends to columns 0..t")
axes[1].plot([str(s) for s in by_step], list(by_step.values()), "o-", label="that head's attention to the earlier Max")
axes[1].plot([str(s) for s in bits], [b[later].mean() / 12 for b in bits.values()], "s--",
             label="surprisal of the later Max (bits / 12)")
axes[1].set_xlabel("snapshot step")
axes[1].legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "03_copying_head.png"))
assert final[layer, head] > 0.3 and bits["final"][later].mean() < 1.0, "this run has not learned to copy the name"
learned = next((step for step, b in bits.items() if b[later].mean() < 1.0), None)
if learned == steps[0]:
    print(f"copying was there at the first snapshot already (step {steps[0]}): it appeared earlier; a run with "
          f"more snapshots shows when (tinylm pretrain --eval_steps 0.05)")
else:
    print(f"copying appears between the snapshots before step {learned} and at it")

# %% [markdown]
# The red squares are where the head looks from the token before each later "Max" to the earlier ones. Its
# attention there and the cost of the name move together: the skill appears between two snapshots, not smoothly.
#
# **Try**: replace "Max" with a name the corpus never used ("Zorblax"). Does the head still copy it, and what do
# the later "Zorblax" tokens cost? (The name is several tokens now: copying its first piece is the hard part.)
