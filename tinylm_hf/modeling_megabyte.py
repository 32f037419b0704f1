"""MEGABYTE: a byte model in patches (Yu et al., 2023), built from two TinyLM stacks, as a `transformers` model.

The bytes x_0 ... x_{T-1} are cut into patches of P bytes (patch k: bytes kP ... kP+P-1). The byte x_j, in patch
k = j // P at place p = j % P, is predicted from

  - the *global* transformer's output for patch k, which saw every patch before k: its input for patch k is the
    embedding of patch k-1 (its P byte embeddings side by side; a learned start patch for k = 0), causal over patches;
  - the *local* transformer, inside patch k only: at place p its input is the global output's p-th slice (projected
    to the local width) plus the embedding of the byte before, x_{j-1} (a learned start vector at p = 0).

So the large global model runs once per patch, the small local one once per byte. As a causal LM of transformers the
logits at position t predict byte t+1: positions 1 ... T of the prediction above (the input is padded to whole
patches past its end, one byte more than the text; the padding only ever feeds predictions that are thrown away).

Generation caches both levels (`MegabyteCache`): the global model's keys and values per patch, the local model's per
byte within the current patch, which starts afresh at every new patch.

Shapes in comments: B batch, T bytes, N patches, P bytes a patch, G global width, L local width, V vocabulary.

This file travels next to the saved weights (for `trust_remote_code=True`) with modeling_tinylm.py.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.cache_utils import DynamicCache
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import can_return_tuple
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_megabyte import MegabyteConfig
from .modeling_tinylm import TinyLMModel, TinyLMPreTrainedModel


class MegabyteCache:
    """What generation carries from one byte to the next: the global model's cache (one entry per patch), the local
    model's (one per byte of the current patch), the current patch's global output and the bytes it holds so far."""

    def __init__(self):
        self.global_cache = DynamicCache()
        self.local_cache = DynamicCache()
        self.patch_context: torch.Tensor | None = None  # (B, P, L): the global output for the current patch
        self.patch_bytes: torch.Tensor | None = None  # (B, < P): the bytes read so far since the last full patch
        self.seen = 0  # bytes read

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen


@dataclass
class MegabyteOutput(CausalLMOutputWithPast):
    """With output_attentions: the global model's attention over patches, per layer (B, H, N, N), and the local
    model's inside each patch (B * N, H, P, P)."""

    global_attentions: tuple[torch.Tensor, ...] | None = None
    local_attentions: tuple[torch.Tensor, ...] | None = None


class MegabytePreTrainedModel(TinyLMPreTrainedModel):
    """TinyLM's (the same attention implementations, gradient checkpointing), with MEGABYTE's config."""

    config_class = MegabyteConfig
    config: MegabyteConfig
    base_model_prefix = "megabyte"
    _can_compile_fullgraph = False  # generation reads bytes one at a time in a Python loop, two caches deep

    @torch.no_grad()
    def _init_weights(self, module):
        """Normal(0, initializer_range) (the base class; the two TinyLM stacks initialise themselves), and the learned
        start patch and start byte alike."""
        super()._init_weights(module)
        if isinstance(module, MegabyteForCausalLM):
            init.normal_(module.start_patch, mean=0.0, std=self.config.initializer_range)
            init.normal_(module.start_byte, mean=0.0, std=self.config.initializer_range)


class MegabyteForCausalLM(MegabytePreTrainedModel, GenerationMixin):
    """Byte ids -> next-byte logits (and the loss, given labels), through a global and a local transformer."""

    _tied_weights_keys = {"lm_head.weight": "local_model.embed_tokens.weight"}
    supports_left_padding = False  # padding before a text would shift its patches: batches are padded on the right

    def __init__(self, config: MegabyteConfig):
        super().__init__(config)
        P, G, L = config.patch_size, config.global_config.hidden_size, config.local_config.hidden_size
        self.patch_size = P
        self.patch_embed = nn.Embedding(config.vocab_size, G // P)  # a patch: P of these side by side -> G
        self.start_patch = nn.Parameter(torch.empty(G))  # the global input before the first patch
        self.global_model = TinyLMModel(config.global_config)
        self.global_to_local = nn.Linear(G // P, L, bias=False)  # each of the P slices of a global output -> L
        self.start_byte = nn.Parameter(torch.empty(L))  # the local input's "byte before" at a patch's first place
        self.local_model = TinyLMModel(config.local_config)  # its embed_tokens: the byte before each place
        self.lm_head = nn.Linear(L, config.vocab_size, bias=False)
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # two levels of cache: MegabyteCache

    def get_input_embeddings(self) -> nn.Module:
        return self.local_model.embed_tokens

    def local_inputs(self, context: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """context (..., P', L) the global slices of some places; previous (..., P') the byte before each place (-1:
        the patch's first place, which has none) -> the local model's inputs (..., P', L)."""
        before = self.local_model.embed_tokens(previous.clamp(min=0))  # (..., P', L)
        before = torch.where((previous < 0)[..., None], self.start_byte.to(before.dtype), before)
        return context + before

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                cache: MegabyteCache | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int = 0, output_attentions: bool | None = None,
                **kwargs) -> MegabyteOutput:
        """input_ids (B, T) byte ids -> logits (B, T, V): position t predicts byte t+1. labels: the input ids
        themselves (shifted inside the loss), -100 where no loss is wanted. attention_mask: right padding only (a
        causal model's real bytes never see it); left padding is refused."""
        if input_ids is None:
            raise ValueError("MEGABYTE takes input_ids (byte ids), not inputs_embeds")
        if attention_mask is not None and attention_mask.shape[1] > 1 \
                and bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any()):
            raise ValueError("MEGABYTE takes right-padded batches only (padding after the text): pad on the right, "
                             "or generate one text at a time")
        use_cache = (self.config.use_cache and not self.training) if use_cache is None else use_cache
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        past = cache.seen if cache is not None else 0
        if past + input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(f"{past} cached + {input_ids.shape[1]} new bytes is past the context length "
                             f"(max_position_embeddings={self.config.max_position_embeddings}): shorten the input")
        if cache is not None and cache.seen:
            logits, global_attentions, local_attentions = self.step(input_ids, cache), None, None
        else:
            cache = MegabyteCache() if use_cache else None
            logits, global_attentions, local_attentions = self.whole(input_ids, cache, output_attentions)
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return MegabyteOutput(loss=loss, logits=logits, cache=cache, global_attentions=global_attentions,
                              local_attentions=local_attentions)

    def whole(self, input_ids: torch.Tensor, cache: MegabyteCache | None, output_attentions: bool):
        """A whole text at once (training, scoring, the first call of generate()); fills `cache` if given."""
        B, T = input_ids.shape
        P = self.patch_size
        N = T // P + 1  # whole patches, one byte past the text at least
        x = F.pad(input_ids, (0, N * P - T), value=0).view(B, N, P)  # (B, N, P), padded past the end
        first = torch.full_like(x[:, :1], -1)  # (B, 1, P): stands for the start patch
        previous_patches = torch.cat((first, x[:, :-1]), dim=1)  # (B, N, P): patch k's global input is patch k-1
        context, global_attentions = self.global_context(previous_patches, cache, output_attentions)
        previous_bytes = torch.cat((torch.full_like(x[..., :1], -1), x[..., :-1]), dim=-1)  # (B, N, P)
        h = self.local_inputs(context, previous_bytes).view(B * N, P, -1)  # (B * N, P, L)
        out = self.local_model(inputs_embeds=h, use_cache=False, output_attentions=output_attentions)
        logits = self.lm_head(out.last_hidden_state.view(B, N * P, -1)[:, 1:T + 1])  # (B, T, V)
        if cache is not None:  # the current patch's places so far go into the local cache
            k, p = T // P, T % P
            cache.patch_context = context[:, k]  # (B, P, L)
            cache.patch_bytes = input_ids[:, k * P:]  # (B, p)
            self.local_model(inputs_embeds=h.view(B, N, P, -1)[:, k, :p + 1], cache=cache.local_cache,
                             use_cache=True)
            cache.seen = T
        return logits, global_attentions, out.attentions

    def global_context(self, previous_patches: torch.Tensor, cache: MegabyteCache | None, output_attentions: bool):
        """Global inputs (B, N, P) byte ids, patch k's input being patch k-1's bytes (-1s: the start patch) ->
        (B, N, P, L): what each place of each patch gets from the patches before it; and the global attentions when
        asked for."""
        B, N, P = previous_patches.shape
        x = self.patch_embed(previous_patches.clamp(min=0)).view(B, N, -1)  # (B, N, G)
        x = torch.where((previous_patches[..., :1] < 0), self.start_patch.to(x.dtype), x)
        out = self.global_model(inputs_embeds=x, cache=cache.global_cache if cache is not None else None,
                                use_cache=cache is not None, output_attentions=output_attentions)
        g = out.last_hidden_state.view(B, N, P, -1)  # (B, N, P, G/P)
        return self.global_to_local(g), out.attentions  # (B, N, P, L)

    def step(self, input_ids: torch.Tensor, cache: MegabyteCache) -> torch.Tensor:
        """New bytes after cached ones, one at a time: a local step per byte, a global step per patch completed."""
        P = self.patch_size
        logits = []
        for byte in input_ids.unbind(1):  # (B,)
            cache.patch_bytes = torch.cat((cache.patch_bytes, byte[:, None]), dim=1)
            cache.seen += 1
            place = cache.seen % P  # the place of the byte to predict next
            if place == 0:  # a patch is complete: the global model reads it, the local model starts afresh
                context, _ = self.global_context(cache.patch_bytes[:, None], cache, False)
                cache.patch_context = context[:, 0]  # (B, P, L)
                cache.patch_bytes = cache.patch_bytes[:, :0]
                cache.local_cache = DynamicCache()
                previous = torch.full_like(byte, -1)
            else:
                previous = byte
            h = self.local_inputs(cache.patch_context[:, place], previous)[:, None]  # (B, 1, L)
            out = self.local_model(inputs_embeds=h, cache=cache.local_cache, use_cache=True)
            logits.append(self.lm_head(out.last_hidden_state))  # (B, 1, V)
        return torch.cat(logits, dim=1)  # (B, T, V)


__all__ = ["MegabyteCache", "MegabyteForCausalLM", "MegabytePreTrainedModel"]
