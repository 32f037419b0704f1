"""Tokenizers: train a byte-level BPE (or a bytes or words tokenizer) with `tokenizers`, or load GPT-2's files,
wrapped as a fast HF tokenizer with our special tokens and a chat template."""

import hashlib
import json
import os
from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from .errors import UserError, hub_hint

EOS = "<|endoftext|>"
PAD = "<|pad|>"
ROLES = ("system", "user", "assistant")
SPECIAL_TOKENS = [EOS, PAD] + [f"<|{role}|>" for role in ROLES]

# One turn: "<|role|>\n" + content + EOS. Assistant turns are wrapped in {% generation %} so that
# apply_chat_template(..., return_assistant_tokens_mask=True) marks the tokens to learn (content and its EOS).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """A `tokenizers.Tokenizer` as a fast HF tokenizer with our special tokens and chat template."""
    tokenizer.add_special_tokens(SPECIAL_TOKENS)  # no-op for tokens already there
    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS, pad_token=PAD,
                                 unk_token=None, model_max_length=int(1e9))
    hf.chat_template = CHAT_TEMPLATE
    return hf


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")  # what save_pretrained writes
UNK = "<|unk|>"  # the words tokenizer's stand-in for a word outside its vocabulary


def describe_kind(kind: str, vocab_size: int) -> str:
    """'4096-token byte-level BPE' and the like; an unknown kind is a one-line error."""
    names = {"bpe": f"{vocab_size}-token byte-level BPE", "bytes": "bytes tokenizer (256 bytes, no merges)",
             "words": f"{vocab_size}-word words tokenizer"}
    if kind not in names:
        raise UserError(f"--tokenizer_type {kind!r}: use one of {', '.join(names)}")
    return names[kind]


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 4096, min_frequency: int = 2
                    ) -> PreTrainedTokenizerFast:
    """Train a tokenizer of one of three kinds on an iterator of texts (consumed in a stream, never held in memory
    at once):
    - bpe: a byte-level BPE of `vocab_size` tokens (GPT-2's kind): lossless, any text;
    - bytes: the 256 byte tokens and no merges (the tokenizer-free route of byte models; `vocab_size` unused):
      lossless, about one token per character, so a context covers ~4x less text;
    - words: the `vocab_size` most frequent lower-cased words and punctuation marks (as small narrow-domain models
      use), other words `<|unk|>`: lossy (case, spacing and rare words are lost), so its bits per byte are not
      comparable with the lossless kinds' (they count the bytes of the original text)."""
    describe_kind(kind, vocab_size)  # a known kind
    if kind == "words":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        tokenizer.normalizer = normalizers.Lowercase()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([  # words (with their apostrophes), line breaks, marks
            pre_tokenizers.Split(Regex(r"[^\S\n]+"), behavior="removed"),
            pre_tokenizers.Split(Regex(r"\w+(?:'\w+)*|\n|[^\w\s]"), behavior="isolated")])
        tokenizer.decoder = decoders.WordPiece(cleanup=True)  # joins with spaces, none before punctuation
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=[*SPECIAL_TOKENS, UNK], show_progress=True)
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return wrap(tokenizer)
    if kind == "bytes":
        vocab_size = 256 + len(SPECIAL_TOKENS)
    elif vocab_size < 256 + len(SPECIAL_TOKENS) + 1:
        raise UserError(f"--vocab_size {vocab_size} is too small: a byte-level BPE needs at least "
                        f"{256 + len(SPECIAL_TOKENS) + 1} (256 bytes + special tokens + 1 merge); "
                        f"--tokenizer_type bytes has no merges")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=True)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return wrap(tokenizer)


def from_gpt2_files(vocab_file: str, merges_file: str) -> PreTrainedTokenizerFast:
    """GPT-2's byte-level BPE from its `vocab.json` + `merges.txt` (with or without the `#version` line)."""
    for path in (vocab_file, merges_file):
        if not os.path.isfile(path):
            raise UserError(f"tokenizer file not found: {path}")
    tokenizer = Tokenizer(models.BPE.from_file(vocab_file, merges_file))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return wrap(tokenizer)


def load_tokenizer(name_or_path: str, revision: str | None = None, add_chat_template: bool = True
                   ) -> PreTrainedTokenizerFast:
    """A saved tokenizer folder or Hub id; a folder holding GPT-2's vocab.json + merges.txt also works.
    Our special tokens are added when missing, and the chat template too unless add_chat_template=False."""
    vocab, merges = os.path.join(name_or_path, "vocab.json"), os.path.join(name_or_path, "merges.txt")
    if os.path.isdir(name_or_path) and not os.path.exists(os.path.join(name_or_path, "tokenizer.json")) \
            and os.path.exists(vocab) and os.path.exists(merges):
        return from_gpt2_files(vocab, merges)
    if not os.path.exists(name_or_path) and (name_or_path.startswith((".", "/")) or name_or_path.count("/") > 1):
        raise UserError(f"tokenizer not found: {name_or_path} is neither a folder nor a Hub id")
    no_files = (f"{name_or_path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}): copy them from the folder "
                f"the model was trained into (every tinylm model folder has them beside the weights)")
    if os.path.isdir(name_or_path) and not os.path.exists(os.path.join(name_or_path, "tokenizer.json")):
        raise UserError(no_files)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
    except OSError as err:
        raise UserError(f"cannot load a tokenizer from {name_or_path!r}: {hub_hint(err)}") from err
    except ValueError as err:  # a Hub repository without tokenizer files: "Couldn't instantiate the backend ..."
        raise UserError(no_files) from err
    if not tokenizer.is_fast:
        raise UserError(f"{name_or_path} has no fast tokenizer (tokenizer.json): convert it first")
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if tokenizer.eos_token is None:
        tokenizer.eos_token = EOS
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PAD
    if tokenizer.bos_token is None:
        tokenizer.bos_token = tokenizer.eos_token
    if add_chat_template and not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def fingerprint(tokenizer: PreTrainedTokenizerFast) -> str:
    """A short hash of everything that decides token ids: the vocabulary, merges, normalizer, pre-tokenizer."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def bytes_per_token(tokenizer: PreTrainedTokenizerFast, texts: Iterator[str] | list[str]) -> float:
    """Compression on held-out text: UTF-8 bytes per token (higher is better)."""
    texts = [t for t in texts if t]
    n_tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return sum(len(t.encode()) for t in texts) / max(n_tokens, 1)
