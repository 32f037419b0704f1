"""Instruction data: TinyStories-Instruct records, records derived from plain stories, generic chat data sets,
all turned into `messages` and then into token ids whose labels are -100 everywhere but the response.
The records themselves (their format, their prompt) are `records.py`.
"""

import random
import re

from datasets import Dataset, DatasetDict

from ..errors import UserError
from . import sources
from .records import HEADER_FIELDS, LIST_FIELDS, record_messages, read_instruct_documents

SHAPES = ("messages: a list of {role, content}", "prompt + response", "instruction (+ input) + output",
          "text in TinyStories-Instruct format", "text: plain stories (records are derived)")
STOPWORDS = set("""a an the and or but so of to in on at by for with from into onto over under up down out off
about as is was were be been being am are it its it's he she they them their his her him we us our you your i me
my this that these those there then than when what who whom which while where why how very too not no yes all
any some one two had has have do did does said says say just can could would should will shall may might must
once upon time day""".split())


def derive_record(story: str, rng: random.Random, n_words: int = 3) -> dict:
    """A TinyStories-Instruct style record for a plain story: Words drawn from it, a Random sentence from it,
    and the Dialogue feature when it has quoted speech."""
    candidates = sorted({w.lower() for w in re.findall(r"[A-Za-z]+", story)
                         if len(w) > 2 and w.lower() not in STOPWORDS and not w[0].isupper()})
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", story) if len(s.split()) > 2]
    return {"features": ["Dialogue"] if re.search(r"[\"“”]", story) else [],
            "words": rng.sample(candidates, min(n_words, len(candidates))),
            "summary": "", "random_sentence": rng.choice(sentences) if sentences else "", "story": story}


def drop_fields(record: dict, rng: random.Random, keep_words: float = 0.9) -> dict:
    """A random subset of the header fields, as TinyStories-Instruct has (Words kept most of the time)."""
    out = dict(record)
    for key in HEADER_FIELDS:
        if rng.random() > (keep_words if key == "words" else 0.5):
            out[key] = [] if key in LIST_FIELDS else ""
    return out


# ---- generic data sets ----------------------------------------------------------------------------------------

def _check_str(value, what: str, row: int) -> str:
    if not isinstance(value, str):
        raise UserError(f"row {row}: {what} must be text, got {type(value).__name__}")
    return value


def row_messages(row: dict, row_index: int) -> list[dict]:
    """The chat of one row of a generic data set, in whichever accepted shape it comes."""
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise UserError(f"row {row_index}: messages must be a non-empty list of {{role, content}}")
        out = []
        for m in messages:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise UserError(f"row {row_index}: each message needs 'role' and 'content', got {m!r:.80}")
            if m["role"] not in ("system", "user", "assistant"):
                raise UserError(f"row {row_index}: unknown role {m['role']!r} (use system, user or assistant)")
            out.append({"role": m["role"], "content": _check_str(m["content"], "message content", row_index)})
        if out[-1]["role"] != "assistant":
            raise UserError(f"row {row_index}: the last message must be the assistant's (the response to learn)")
        return out
    if "prompt" in row and "response" in row:
        prompt, response = row["prompt"], row["response"]
    elif "instruction" in row and "output" in row:
        prompt = _check_str(row["instruction"], "instruction", row_index)
        if row.get("input"):
            prompt = f"{prompt}\n\n{_check_str(row['input'], 'input', row_index)}"
        response = row["output"]
    else:
        raise UserError(f"unknown data shape (columns: {', '.join(row)}): accepted shapes are {'; '.join(SHAPES)}")
    return [{"role": "user", "content": _check_str(prompt, "prompt", row_index)},
            {"role": "assistant", "content": _check_str(response, "response", row_index)}]


def chat_dataset(rows: list[list[dict]], records: list[dict] | None = None) -> Dataset:
    """`messages`, and next to them the `words` and `features` each prompt asks for (empty for chats that are not
    story records), so that scoring reads what was asked instead of parsing the prompt back."""
    records = records or [{}] * len(rows)
    return Dataset.from_dict({"messages": rows, "words": [r.get("words", []) for r in records],
                              "features": [r.get("features", []) for r in records]})


def to_chat_dataset(ds: Dataset, rng: random.Random, derive: bool | None = None) -> Dataset:
    """Any accepted shape -> a Dataset of `messages` (with the `words` and `features` of story records)."""
    columns = set(ds.column_names)
    records = None
    if columns & {"messages", "prompt", "instruction"}:
        rows = [row_messages(row, i) for i, row in enumerate(ds)]
    elif "text" in columns:
        texts = ds["text"]
        records = read_instruct_documents(texts)
        if not records or derive:  # a plain story corpus: derive the header from each story
            records = [drop_fields(derive_record(t, rng), rng) for t in texts if t.strip()]
        rows = [record_messages(r) for r in records]
    else:
        raise UserError(f"unknown data shape (columns: {', '.join(sorted(columns))}): "
                        f"accepted shapes are {'; '.join(SHAPES)}")
    for i, messages in enumerate(rows):
        if not messages[-1]["content"].strip():
            raise UserError(f"row {i}: the response is empty: remove the row or fill it in")
    return chat_dataset(rows, records)


def embedded_chat(n_train: int, seed: int) -> DatasetDict:
    """Instruction records from the embedded corpus, with random header subsets (Words kept 90% of the time)."""
    corpus = sources.embedded_dataset(n_train, seed)
    out = {}
    for split, ds in corpus.items():
        rng = random.Random(f"{seed}-{split}")
        records = [drop_fields({**row, "story": row["text"]}, rng) for row in ds]
        out[split] = chat_dataset([record_messages(r) for r in records], records)
    return DatasetDict(out)


def load_chat(dataset: str | None = None, *, data_files=None, validation_files=None, revision: str | None = None,
              derive_from_stories: bool = False, max_train_samples: int | None = None,
              max_eval_samples: int | None = None, validation_split_percentage: float = 5.0, seed: int = 42,
              embedded_stories: int = 20_000) -> DatasetDict:
    """`train` and `validation` splits of chats (`messages`), from any instruction source (None: the embedded
    records). revision: the data set's Hub revision."""
    if dataset in (None, "", "embedded"):
        splits = embedded_chat(embedded_stories, seed)
    else:
        raw = sources.load_raw(dataset, data_files=data_files, validation_files=validation_files, revision=revision)
        raw = sources.with_validation(sources.as_documents(raw), validation_split_percentage, seed, max_eval_samples)
        rng = random.Random(seed)
        splits = DatasetDict({k: to_chat_dataset(v, rng, derive_from_stories) for k, v in raw.items()})
    splits = sources.limit_splits(splits, max_train_samples, max_eval_samples)
    if len(splits["train"]) == 0:
        raise UserError(f"no usable examples in {dataset}")
    return splits


# ---- tokenization with response-only labels -------------------------------------------------------------------

def encode_chat(messages: list[dict], tokenizer, max_length: int) -> dict | None:
    """Token ids of a chat through the tokenizer's chat template, labels -100 except the assistant's tokens.

    A chat longer than `max_length` keeps its start and is cut at the end; if that leaves no response token
    (the prompt alone fills the context), the example is dropped (None) rather than trained with no target.
    """
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"][:max_length], out["assistant_masks"][:max_length]
    labels = [t if m else -100 for t, m in zip(ids, mask)]
    if all(label == -100 for label in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def _encode_batch(batch, tokenizer, max_length):
    out = {"input_ids": [], "labels": []}
    for messages in batch["messages"]:
        example = encode_chat(messages, tokenizer, max_length)
        if example is not None:
            out["input_ids"].append(example["input_ids"])
            out["labels"].append(example["labels"])
    return out


def encode_chats(splits: DatasetDict, tokenizer, max_length: int, num_proc: int | None = None, log=print
                 ) -> DatasetDict:
    encoded = DatasetDict({
        split: ds.map(_encode_batch, batched=True, remove_columns=ds.column_names, desc=f"encoding {split}",
                      fn_kwargs={"tokenizer": tokenizer, "max_length": max_length},
                      num_proc=num_proc if num_proc and len(ds) > 5000 else None)
        for split, ds in splits.items()})
    for split, ds in splits.items():
        dropped = len(ds) - len(encoded[split])
        if dropped:
            log(f"{split}: dropped {dropped} of {len(ds)} examples whose prompt fills the whole context "
                f"({max_length} tokens)")
    if len(encoded["train"]) == 0:
        raise UserError(f"every training prompt is longer than the context ({max_length} tokens): "
                        f"shorten the prompts or raise --block_size")
    return encoded
