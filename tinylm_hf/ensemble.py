"""Ensembles: several causal LMs over one tokenizer that answer as one model.

The ensemble's next-token probabilities are the weighted mean of its members' (so its logits are the log of that
mean: already normalised), each member keeps its own KV cache, and it is a `PreTrainedModel` with `generate()`
(greedy, sampling, streaming, `output_scores`, `use_cache=False`) and a `loss` given `labels`, like any causal LM:

    from tinylm_hf.ensemble import Ensemble
    ensemble = Ensemble.from_pretrained(["outputs/a", "outputs/b"])      # member folders or Hub ids
    ensemble.save_pretrained("outputs/ab")                              # a folder that names its members
    ensemble = Ensemble.from_pretrained("outputs/ab")                   # ... and loads them back

By Jensen's inequality the ensemble's loss on any text is never above the weighted mean of its members' losses:
-log(sum_k w_k p_k) <= sum_k w_k (-log p_k), token by token.

An ensemble folder holds `config.json` (`model_type: tinylm_ensemble`, the members: a path relative to the folder,
an absolute path, or a Hub id with its revision; the weights), the shared tokenizer, the generation config and a
card listing the members; no weights of its own.
"""

import json
import math
import os

import torch
from torch import nn
from transformers import GenerationConfig, GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .errors import UserError
from .files import written_whole
from .hub import is_repo_id, pull
from .loading import load_model
from .tokenizer import load_tokenizer

MODEL_TYPE = "tinylm_ensemble"


class EnsembleConfig(PreTrainedConfig):
    model_type = MODEL_TYPE

    members: list | None = None  # [{"path": folder or Hub id, "revision": str | None}, ...]
    weights: list | None = None  # one per member, summing to 1 (None: equal)
    vocab_size: int = 0
    max_position_embeddings: int = 0  # the shortest member's context: the ensemble reads no further
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None


class EnsembleCache:
    """The members' caches side by side (generate() passes it back to the ensemble's forward as it is)."""

    def __init__(self, caches: list):
        self.caches = caches

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.caches[0].get_seq_length(layer_idx)

    def crop(self, max_length: int) -> None:  # assisted decoding drops the rejected candidates
        for cache in self.caches:
            cache.crop(max_length)


def check_weights(weights, n: int) -> list[float]:
    """Weights normalised to sum to 1; equal when None; a one-line error for a wrong count or a negative weight."""
    if weights is None:
        return [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise UserError(f"{len(weights)} weights for {n} members: give one weight per member")
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise UserError(f"ensemble weights must be non-negative with a positive sum, got {weights}")
    return [w / sum(weights) for w in weights]


def same_tokenizer(first, other, first_name: str, other_name: str) -> None:
    """A one-line error naming the first difference between two members' tokenizers, if any."""
    a, b = first.get_vocab(), other.get_vocab()
    if len(a) != len(b):
        raise UserError(f"{other_name} has a vocabulary of {len(b):,} tokens, {first_name} one of {len(a):,}: the "
                        f"members of an ensemble must share one tokenizer")
    for token, index in sorted(a.items(), key=lambda item: item[1]):
        if b.get(token) != index:
            raise UserError(f"{other_name} and {first_name} have different tokenizers: token {token!r} is {index} in "
                            f"{first_name} and {b.get(token)} in {other_name}; the members must share one tokenizer")
    for special in ("bos_token", "eos_token", "pad_token"):
        if getattr(first, special) != getattr(other, special):
            raise UserError(f"{other_name} and {first_name} have different {special}s ({getattr(other, special)!r} and "
                            f"{getattr(first, special)!r}): the members must share one tokenizer")


class Ensemble(PreTrainedModel, GenerationMixin):
    """Causal LM members with one tokenizer, averaged in probability (see the module's docstring)."""

    config_class = EnsembleConfig
    config: EnsembleConfig
    base_model_prefix = "ensemble"
    main_input_name = "input_ids"

    def __init__(self, config: EnsembleConfig, members: list[PreTrainedModel] = ()):
        super().__init__(config)
        self.members = nn.ModuleList()
        self.post_init()  # before the members join: their trained weights are never re-initialised
        self.members.extend(members)
        weights = torch.tensor(check_weights(config.weights, max(len(members), 1)), dtype=torch.float32)
        self.register_buffer("log_weights", weights.log(), persistent=False)  # (K,)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # each member makes its own cache: the ensemble's is EnsembleCache

    @classmethod
    def from_members(cls, members: list[PreTrainedModel], tokenizer, names: list[dict],
                     weights: list[float] | None = None) -> "Ensemble":
        """An ensemble of loaded models; `names` are their {"path", "revision"} entries for config.json."""
        if not members:
            raise UserError("an ensemble needs at least one member")
        first = members[0].config
        config = EnsembleConfig(members=names, weights=check_weights(weights, len(members)),
                                vocab_size=first.vocab_size,
                                max_position_embeddings=min(m.config.max_position_embeddings for m in members),
                                bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        ensemble = cls(config, members)
        ensemble.generation_config = GenerationConfig.from_dict(members[0].generation_config.to_dict())
        ensemble.tokenizer = tokenizer
        return ensemble

    @classmethod
    def from_pretrained(cls, members_or_folder, weights: list[float] | None = None,
                        revision: str | None = None) -> "Ensemble":
        """An ensemble folder (or a Hub id of one), or a list of member folders / Hub ids (a `name@revision` pins a
        Hub revision). The members must share one tokenizer."""
        if isinstance(members_or_folder, (list, tuple)):
            names = [dict(zip(("path", "revision"), (*m.split("@", 1), None)[:2])) if isinstance(m, str) else m
                     for m in members_or_folder]
            return cls._load(names, weights, base=None)
        folder = members_or_folder
        if not os.path.isdir(folder):
            folder = pull(folder, revision=revision)
        config = read_config(folder)
        return cls._load(config["members"], config.get("weights") if weights is None else weights, base=folder)

    @classmethod
    def _load(cls, names: list[dict], weights, base: str | None) -> "Ensemble":
        if not names:
            raise UserError("an ensemble needs at least one member")
        check_weights(weights, len(names))  # before any member is loaded
        members, tokenizer, resolved = [], None, []
        for i, (path, revision) in enumerate(resolve_members(names, base), 1):
            member_tokenizer = load_tokenizer(path, revision)
            if tokenizer is None:
                tokenizer = member_tokenizer
            else:
                same_tokenizer(tokenizer, member_tokenizer, f"member 1 ({resolved[0]['path']})", f"member {i} ({path})")
            members.append(load_model(path, revision).eval())
            resolved.append(dict(path=path, revision=revision))
        return cls.from_members(members, tokenizer, resolved, weights)

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, cache: EnsembleCache | None = None,
                labels: torch.LongTensor | None = None, use_cache: bool | None = None, logits_to_keep: int = 0,
                **kwargs) -> CausalLMOutputWithPast:
        caches = cache.caches if cache is not None else [None] * len(self.members)
        outputs = [member(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=c,
                          use_cache=use_cache, logits_to_keep=logits_to_keep)
                   for member, c in zip(self.members, caches)]
        logits = self.mix(torch.stack([out.logits.float().log_softmax(-1) for out in outputs]))  # (B, T, V)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=logits.shape[-1], **kwargs)
        new_cache = EnsembleCache([out.cache for out in outputs]) if use_cache and outputs[0].cache is not None \
            else None
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=new_cache)

    def mix(self, logprobs: torch.Tensor) -> torch.Tensor:
        """The members' log-probabilities (K, ...) -> the ensemble's (...): log sum_k w_k p_k."""
        log_weights = self.log_weights.view(-1, *[1] * (logprobs.dim() - 1))
        return torch.logsumexp(logprobs + log_weights, dim=0)

    def save_pretrained(self, folder: str, **kwargs) -> None:
        """The folder that names the members (no weights), with the tokenizer, generation config and a card."""
        with written_whole(folder, folder=True) as tmp:
            members = [dict(m) for m in self.config.members]
            for m in members:  # a member inside the folder is named relative to it, so the folder can move
                if os.path.isdir(m["path"]) and is_inside(m["path"], folder):
                    m["path"] = os.path.relpath(m["path"], folder)
            config = {**self.config.to_dict(), "members": members}
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump(config, f, indent=2)
            self.generation_config.save_pretrained(tmp)
            if getattr(self, "tokenizer", None) is not None:
                self.tokenizer.save_pretrained(tmp)
            with open(os.path.join(tmp, "README.md"), "w") as f:
                f.write(card(members, self.config.weights))


def resolve_members(names: list[dict], base: str | None = None) -> list[tuple[str, str | None]]:
    """(folder or Hub id, revision) of each member: a path relative to the ensemble's folder `base` found there; a
    one-line error for a member folder that is not there."""
    out = []
    for i, name in enumerate(names, 1):
        path, revision = name["path"], name.get("revision")
        if base is not None and not os.path.isabs(path) and (os.path.exists(os.path.join(base, path))
                                                             or not is_repo_id(path)):
            path = os.path.join(base, path)  # a member inside (or beside) the ensemble's folder
        if not os.path.isdir(path) and not is_repo_id(path):
            raise UserError(f"member {i} of the ensemble, {path}, is not there: train it again, or name the "
                            f"members that exist" + (f" in {os.path.join(base, 'config.json')}" if base else ""))
        out.append((path, revision))
    return out


def is_inside(path: str, folder: str) -> bool:
    return os.path.commonpath([os.path.abspath(path), os.path.abspath(folder)]) == os.path.abspath(folder)


def read_config(folder: str) -> dict:
    try:
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise UserError(f"{folder} is not an ensemble folder (no readable config.json: {err})") from err
    if config.get("model_type") != MODEL_TYPE:
        raise UserError(f"{folder} is a {config.get('model_type')!r} model, not an ensemble: load it with "
                        f"load_model, or name member folders")
    return config


def is_ensemble(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "config.json")) as f:
            return json.load(f).get("model_type") == MODEL_TYPE
    except (OSError, ValueError):
        return False


def card(members: list[dict], weights: list[float]) -> str:
    rows = "\n".join(f"| {i} | `{m['path']}` | {m.get('revision') or '-'} | {w:.3f} |"
                     for i, (m, w) in enumerate(zip(members, weights), 1))
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags:
- tinylm-hf
- ensemble
---

# An ensemble of {len(members)} small language models

Its next-token probabilities are the weighted mean of its members'. Load it with
`tinylm_hf.ensemble.Ensemble.from_pretrained(FOLDER_OR_ID)` (`pip install tinylm-hf`).

| member | folder or Hub id | revision | weight |
|---|---|---|---|
{rows}
"""


__all__ = ["Ensemble", "EnsembleCache", "EnsembleConfig", "is_ensemble"]
