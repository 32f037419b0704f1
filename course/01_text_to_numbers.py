# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 1. Text to numbers
#
# A language model never sees letters. It sees integers: the ids of *tokens*, pieces of text from a fixed
# vocabulary. Which pieces is decided before the model exists, by a tokenizer trained on the corpus. This chapter
# trains the three kinds this project offers on the same stories and looks at how each one cuts text.
#
# - **bpe**: byte-level BPE (GPT-2's kind). Starts from the 256 bytes and merges the most frequent pairs until the
#   vocabulary is full. Lossless: any text, any script.
# - **bytes**: the 256 bytes and no merges. Lossless, one token per byte.
# - **words**: the most frequent lower-cased words and punctuation marks; anything else becomes `<|unk|>`. Lossy.
#
# On 2,317 real TinyStories stories (2 MiB, shipped with the package); under a minute on a laptop CPU, offline.

# %%
import os

import matplotlib

if not os.environ.get("JPY_PARENT_PID"):  # run as a script: write the figures instead of showing them
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tinylm_hf.data.sources import load_corpus
from tinylm_hf.tokenizer import train_tokenizer

OUT = os.environ.get("TINYLM_COURSE_OUT", "outputs/course")
os.makedirs(OUT, exist_ok=True)

corpus = load_corpus("tinystories-sample")  # real TinyStories stories, shipped with the package
stories = corpus["train"]["text"]
print(len(stories), "stories, e.g.:\n", stories[0][:300])

# %%
tokenizers = {kind: train_tokenizer(iter(stories), kind=kind, vocab_size=2048) for kind in ("bpe", "bytes", "words")}
for kind, tok in tokenizers.items():
    print(f"{kind:6} {len(tok):5} tokens in its vocabulary")

# %% [markdown]
# ## How each one cuts a sentence, a number, an emoji and a misspelling

# %%
SAMPLES = ["Once upon a time, there was a little dog.", "Tom had 1234 apples.", "Lily smiled 🙂",
           "The dgo was very hapy."]


def pieces(tok, text):
    """The text as the tokenizer cuts it: each token's own text (byte-level pieces of one character show as
    their bytes' stand-ins, e.g. 'Ġ' for a space)."""
    return tok.convert_ids_to_tokens(tok(text)["input_ids"])


for text in SAMPLES:
    print(f"\n{text!r}")
    for kind, tok in tokenizers.items():
        p = pieces(tok, text)
        print(f"  {kind:6} {len(p):3} tokens: {p}")

# %% [markdown]
# What to notice:
#
# - BPE keeps frequent words whole (`Ġdog`: the `Ġ` is the space before it, which belongs to the word) and cuts
#   rare ones into pieces: a misspelling becomes several pieces the model has rarely seen together.
# - Numbers come apart into pieces that have nothing to do with place value.
# - The emoji is 4 bytes of UTF-8; a 2,048-token BPE trained on these stories has never merged them.
# - The words tokenizer turns whatever it did not see into `<|unk|>`, and its decoded text loses the case: a
#   model trained on it cannot write what it cannot see.
#
# ## Bytes per token: how much text one position of the context holds

# %%
held_out = corpus["validation"]["text"]
n_bytes = sum(len(s.encode()) for s in held_out)
per_token = {kind: n_bytes / sum(len(tok(s)["input_ids"]) for s in held_out) for kind, tok in tokenizers.items()}
for kind, value in per_token.items():
    print(f"{kind:6} {value:.2f} bytes per token: a 256-token context holds ~{256 * value:.0f} bytes of story")

fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(per_token), list(per_token.values()), color=["tab:blue", "tab:orange", "tab:green"])
ax.set_ylabel("bytes per token (held-out stories)")
ax.set_title("The same stories, three tokenizers")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "01_bytes_per_token.png"))

# %% [markdown]
# ## Why models struggle to spell
#
# Ask a BPE model how many letters a word has and it has to know it from the id alone: the letters are not in its
# input. Here is what the model gets for a few words:

# %%
bpe = tokenizers["bpe"]
for word in [" cat", " happy", " strawberry", " Supercalifragilistic"]:
    ids = bpe(word)["input_ids"]
    print(f"{word!r:26} -> ids {ids} pieces {pieces(bpe, word)}")

# %% [markdown]
# " cat" is one id; nothing in that id says c-a-t. A model learns spelling only from text that happens to spell
# words out, which small corpora rarely do.
#
# **Try**: train the BPE with `vocab_size=512` and then `8192`. How do bytes per token change, and what happens
# to " strawberry"? (More merges: fewer, longer pieces, more text per context, and a larger embedding table.)
