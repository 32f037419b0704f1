"""Token files: a corpus tokenized once into flat `train.bin` / `validation.bin` plus `meta.json`, and a
dataset over `numpy.memmap` windows, so corpora larger than memory train with constant memory.

Layout of a token folder:

    train.bin, validation.bin   every document's token ids followed by the end-of-text id, back to back
                                (uint16 when the vocabulary fits, else uint32)
    meta.json                   tokenizer fingerprint, dtype, per split: tokens, documents, UTF-8 bytes; source

Files are written under a temporary name and renamed when complete; `meta.json` is written last. A folder whose
meta.json is missing, names another tokenizer or source, or whose sizes do not match it, is rebuilt, never used.
"""

import json
import os
import time

import numpy as np

from ..errors import UserError
from ..files import TMP, write_json, written_whole
from ..tokenizer import fingerprint

META = "meta.json"
FORMAT_VERSION = 1


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32


def read_meta(folder: str) -> dict | None:
    """meta.json of a complete token folder, else None (missing, unreadable, or files of the wrong size)."""
    try:
        with open(os.path.join(folder, META)) as f:
            meta = json.load(f)
        itemsize = np.dtype(meta["dtype"]).itemsize
        for split, info in meta["splits"].items():
            if os.path.getsize(os.path.join(folder, f"{split}.bin")) != info["tokens"] * itemsize:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta


def check_meta(meta: dict, tokenizer, folder: str) -> None:
    """Refuse token files built with another tokenizer."""
    if meta.get("tokenizer") != fingerprint(tokenizer):
        raise UserError(f"the token files in {folder} were built with another tokenizer "
                        f"({meta.get('tokenizer')} != {fingerprint(tokenizer)}): delete the folder or pass "
                        f"--rebuild_tokens to rebuild them")


def _encode_batch(batch, tokenizer, eos_id):
    ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
    return {"ids": [x + [eos_id] for x in ids], "n_bytes": [len(t.encode()) for t in batch["text"]]}


def build_token_files(splits, tokenizer, folder: str, source: str, num_proc: int | None = None,
                      rebuild: bool = False, log=print, owned: bool = True) -> dict:
    """Tokenize each split of `splits` (a DatasetDict or IterableDatasetDict with a `text` column) into `folder`,
    or reuse what is there when it was built from the same source with the same tokenizer.

    owned=False (a folder the user named): files built with another tokenizer are refused, not replaced."""
    os.makedirs(folder, exist_ok=True)
    meta = read_meta(folder)
    tok_id = fingerprint(tokenizer)
    if meta and not owned and not rebuild:
        check_meta(meta, tokenizer, folder)
    if meta and not rebuild and meta.get("source") == source and meta.get("version") == FORMAT_VERSION:
        if meta.get("tokenizer") == tok_id:
            log(f"reusing token files in {folder} ({meta['splits']['train']['tokens']:,} training tokens)")
            return meta
        log(f"the token files in {folder} were built with another tokenizer: rebuilding them")
    elif meta or any(name == META or name.endswith(".bin") or TMP in name for name in os.listdir(folder)):
        log(f"the token files in {folder} are incomplete or from another source: rebuilding them")
    if os.path.exists(os.path.join(folder, META)):
        os.remove(os.path.join(folder, META))  # from here on, the folder is incomplete until meta.json is back
    for name in os.listdir(folder):  # what a killed build left half-written
        if TMP in name:
            os.remove(os.path.join(folder, name))

    dtype = token_dtype(len(tokenizer))
    eos_id = tokenizer.eos_token_id
    new_meta = {"version": FORMAT_VERSION, "tokenizer": tok_id, "dtype": np.dtype(dtype).name,
                "vocab_size": len(tokenizer), "eos_token_id": eos_id, "source": source, "splits": {}}
    start = time.time()
    for split, ds in splits.items():
        map_kwargs = dict(batched=True, batch_size=1000, remove_columns=ds.column_names,
                          fn_kwargs={"tokenizer": tokenizer, "eos_id": eos_id})
        if not hasattr(ds, "num_shards") or ds.__class__.__name__ == "Dataset":
            map_kwargs.update(num_proc=num_proc if num_proc and num_proc > 1 and len(ds) > 10_000 else None,
                              desc=f"tokenizing {split}")
        encoded = ds.map(_encode_batch, **map_kwargs)
        path = os.path.join(folder, f"{split}.bin")
        n_tokens = n_docs = n_bytes = 0
        with written_whole(path) as tmp, open(tmp, "wb") as f:
            for batch in encoded.iter(batch_size=1000):
                if batch["ids"]:
                    np.concatenate([np.asarray(x, dtype=dtype) for x in batch["ids"]]).tofile(f)
                n_tokens += sum(len(x) for x in batch["ids"])
                n_docs += len(batch["ids"])
                n_bytes += sum(batch["n_bytes"])
        new_meta["splits"][split] = {"tokens": n_tokens, "documents": n_docs, "bytes": n_bytes}
        log(f"{split}: {n_docs:,} documents, {n_tokens:,} tokens, {n_bytes / max(n_tokens, 1):.2f} bytes/token")
    if new_meta["splits"].get("train", {}).get("tokens", 0) == 0:
        raise UserError(f"no tokens in the training split of {source}: the corpus is empty")
    new_meta["seconds"] = round(time.time() - start, 2)
    write_json(os.path.join(folder, META), new_meta)
    return new_meta


def load_tokens(folder: str, split: str) -> np.memmap:
    meta = read_meta(folder)
    if meta is None:
        raise UserError(f"no complete token files in {folder}: build them first")
    return np.memmap(os.path.join(folder, f"{split}.bin"), dtype=meta["dtype"], mode="r")


class TokenWindows:
    """`block_size`-token windows of a token file, for the Trainer (a map-style dataset).

    sequential: window i starts at i * block_size (the Trainer shuffles the order).
    random: the whole grid of windows moves by one offset in [0, block_size), drawn from (seed, epoch): other windows
    at every pass over the data, so a model that sees a small corpus many times does not see the same windows again;
    a pass covers every token but the first `offset` ones and the tail after the last whole window (windows drawn
    one by one at random, as nanoGPT does, leave far more out; the epoch is set at every pass by
    `training.callbacks.DataEpochCallback`, in every process). The Trainer's sampler leaves out a partial last batch
    of windows too (`TinyLMTrainer`), other ones each pass.
    Each item is {"input_ids": ids, "labels": ids}: the model shifts labels itself.
    The memmap is opened lazily in each process, so workers and DDP ranks share the page cache.
    """

    def __init__(self, folder: str, split: str, block_size: int, random: bool = False, seed: int = 0):
        meta = read_meta(folder)
        if meta is None:
            raise UserError(f"no complete token files in {folder}: build them first")
        self.path = os.path.join(folder, f"{split}.bin")
        self.dtype = meta["dtype"]
        self.n_tokens = meta["splits"][split]["tokens"]
        self.bytes_per_token = meta["splits"][split]["bytes"] / max(self.n_tokens, 1)
        self.block_size, self.random, self.seed, self.epoch = block_size, random, seed, 0
        if self.n_tokens < block_size + 1:
            raise UserError(f"{split} has {self.n_tokens} tokens, fewer than one block of {block_size}: "
                            f"use more data or a smaller --block_size")
        self._tokens = None

    def __len__(self) -> int:
        return self.n_tokens // self.block_size

    @property
    def tokens(self) -> np.memmap:
        if self._tokens is None:
            self._tokens = np.memmap(self.path, dtype=self.dtype, mode="r")
        return self._tokens

    def __getitem__(self, i: int) -> dict:
        import torch

        start = i * self.block_size
        if self.random:  # the same offset for every window of this pass, in every process
            start += int(np.random.default_rng((self.seed, self.epoch)).integers(0, self.block_size))
            start = min(start, self.n_tokens - self.block_size)
        ids = torch.from_numpy(self.tokens[start:start + self.block_size].astype(np.int64))
        return {"input_ids": ids, "labels": ids}

    def spread(self, n: int):
        """n of the windows, spread evenly over the split (all of them when n is 0 or not below their number): a
        cheaper evaluation that still covers the whole split."""
        if not 0 < n < len(self):
            return self
        from torch.utils.data import Subset

        return Subset(self, np.linspace(0, len(self) - 1, n).round().astype(int).tolist())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getstate__(self):
        return {**self.__dict__, "_tokens": None}
