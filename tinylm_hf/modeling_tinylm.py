"""TinyLM: a compact GPT, in one file, as a real `transformers` model.

Reads like nanoGPT (embeddings -> N x [norm -> attention -> norm -> MLP] -> norm -> head), plugs in like
`modeling_llama.py`: attention through transformers' attention interface (SDPA by default; the plain
`eager_attention_forward` here is the reference; faster kernels plug in by name, as the package's blocked CPU
attention for training does, `tinylm_hf/attention.py`),
the KV cache through the `Cache` API, the loss through `self.loss_function`, `generate()` from
`GenerationMixin`. Every architecture choice comes from `TinyLMConfig`.

Shapes in comments: B batch, T new tokens, S tokens attended to (cache + new), C hidden size,
H query heads, K key/value heads, D head size (C / H), V vocabulary.

This file travels next to the saved weights (for `trust_remote_code=True`), so it imports nothing from the
rest of the `tinylm_hf` package.
"""

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.utils import can_return_tuple
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_tinylm import TinyLMConfig


class TinyLMRMSNorm(nn.Module):
    """RMSNorm, written out: x / sqrt(mean(x^2) + eps) * weight, in fp32. (torch's nn.RMSNorm does not fuse on CPUs:
    one call costs ~45 us for a single token, several times these few ops, which matters when generating.)"""

    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def make_norm(config: TinyLMConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return TinyLMRMSNorm(config.hidden_size, eps=config.norm_eps)
    return nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.bias)


class TinyLMRotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE): cos/sin tables for every position, computed once, looked up per call.

    Uses the "rotate half" layout of Hugging Face's Llama, so weights convert to `LlamaForCausalLM` as they are:
    x * cos + rotate_half(x) * sin, with rotate_half(x) = [-x2, x1]. Here the minus sign lives in the sin table,
    so the rotation is x * cos + roll(x) * sin, roll swapping the two halves (see `apply_rotary`).
    """

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        self.dim, self.theta, self.max_positions = config.head_dim, config.rope_theta, config.max_position_embeddings
        cos, sin = self.tables()
        self.register_buffer("cos", cos, persistent=False)  # (P, D)
        self.register_buffer("sin", sin, persistent=False)  # (P, D), first half negated

    def tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.dim, 2, dtype=torch.float) / self.dim))  # (D/2,)
        angles = torch.arange(self.max_positions, dtype=torch.float)[:, None] * inv_freq  # (P, D/2)
        return torch.cat((angles, angles), dim=-1).cos(), torch.cat((-angles, angles), dim=-1).sin()

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos[position_ids].to(x.dtype), self.sin[position_ids].to(x.dtype)  # (B, T, D) each


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, T, heads, D); cos, sin: (B, T, D), the same rotation for every head."""
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)  # (B, T, 1, D)
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * sin  # roll by D/2: [x1, x2] -> [x2, x1]


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain attention, written out: softmax(q k^T * scale + mask) v. The reference for the faster kernels (SDPA,
    flash attention, the package's blocked CPU attention), and the one that returns the attention weights.

    query (B, H, T, D); key, value (B, K, S, D); attention_mask (B, 1, T, S): 0 where a token may look, the dtype's
    minimum where not (the future, padding) -> (B, T, H, D) and the weights (B, H, T, S)."""
    if module.num_key_value_groups > 1:  # each k/v head serves a group of query heads
        key = key.repeat_interleave(module.num_key_value_groups, dim=1)  # (B, K, S, D) -> (B, H, S, D)
        value = value.repeat_interleave(module.num_key_value_groups, dim=1)
    scores = query @ key.transpose(2, 3) * scaling  # (B, H, T, S)
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)  # each row sums to 1
    weights = F.dropout(weights, p=dropout, training=module.training)
    out = weights @ value  # (B, H, T, D)
    return out.transpose(1, 2).contiguous(), weights  # (B, T, H, D), (B, H, T, S)


class TinyLMAttention(nn.Module):
    """Causal self-attention with grouped key/value heads (K <= H) and one fused q/k/v projection."""

    def __init__(self, config: TinyLMConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx  # which slot of the KV cache is ours
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads  # query heads per k/v head
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        self.qkv_proj = nn.Linear(
            config.hidden_size, (self.num_heads + 2 * self.num_key_value_heads) * self.head_dim, bias=config.bias
        )
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=config.bias)
        self.o_proj.writes_to_residual = True  # scaled init, see TinyLMPreTrainedModel._init_weights
        if config.qk_norm:  # each head's query and key RMS-normed (own weights, over D), as Qwen3 does
            self.q_norm = TinyLMRMSNorm(self.head_dim, eps=config.norm_eps)
            self.k_norm = TinyLMRMSNorm(self.head_dim, eps=config.norm_eps)

    def forward(self, hidden_states: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                attention_mask: torch.Tensor | None = None, cache: Cache | None = None,
                output_attentions: bool = False, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, _ = hidden_states.shape
        D = self.head_dim
        H, K = self.num_heads, self.num_key_value_heads
        qkv = self.qkv_proj(hidden_states).view(B, T, H + 2 * K, D)  # q, k, v heads side by side
        qk, v = qkv.split([H + K, K], dim=2)  # (B, T, H + K, D), (B, T, K, D)
        if self.config.qk_norm:
            q, k = qk.split([H, K], dim=2)
            qk = torch.cat((self.q_norm(q), self.k_norm(k)), dim=2)
        if position_embeddings is not None:  # rope: rotate q and k by their positions, in one go
            qk = apply_rotary(qk, *position_embeddings)
        q, k = qk.split([H, K], dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D), (B, K, T, D) x 2
        if cache is not None:  # append the new k, v to the cache, get all of them back
            k, v = cache.update(k, v, self.layer_idx)  # (B, K, S, D)

        # the configured implementation (SDPA by default); only the plain one returns the weights, so asking for
        # them switches to it (the model builds the mask it needs)
        implementation = "eager" if output_attentions else self.config._attn_implementation
        attention: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        y, weights = attention(
            self, q, k, v, attention_mask,
            dropout=self.config.attention_dropout if self.training else 0.0, scaling=self.scaling, **kwargs,
        )  # (B, T, H, D)
        return self.o_proj(y.reshape(B, T, -1)), weights  # (B, T, C), (B, H, T, S) or None


class TinyLMMLP(nn.Module):
    """GELU: down(gelu(up(x))). ReLU^2: down(relu(up(x))^2). SwiGLU: down(silu(gate(x)) * up(x)), gate and up fused
    in one matmul."""

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        self.kind = config.mlp  # "gelu" | "swiglu" | "relu2"
        n_in = 2 * config.intermediate_size if self.kind == "swiglu" else config.intermediate_size
        self.up_proj = nn.Linear(config.hidden_size, n_in, bias=config.bias)  # for SwiGLU: [gate; up]
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.bias)
        self.down_proj.writes_to_residual = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up_proj(x)  # (B, T, I) or (B, T, 2I)
        if self.kind == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        elif self.kind == "relu2":
            h = F.relu(h).square()
        else:
            h = F.gelu(h)
        return self.down_proj(h)  # (B, T, C)


class TinyLMBlock(GradientCheckpointingLayer):
    """One transformer block, pre-norm: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: TinyLMConfig, layer_idx: int):
        super().__init__()
        self.attn_norm = make_norm(config)
        self.attn = TinyLMAttention(config, layer_idx)
        self.mlp_norm = make_norm(config)
        self.mlp = TinyLMMLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: Cache | None = None, output_attentions: bool = False,
                **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_out, weights = self.attn(self.attn_norm(hidden_states), position_embeddings, attention_mask,
                                      cache, output_attentions, **kwargs)
        hidden_states = hidden_states + self.dropout(attn_out)
        hidden_states = hidden_states + self.dropout(self.mlp(self.mlp_norm(hidden_states)))
        return hidden_states, weights  # (B, T, C), the attention weights when asked for


def soft_cap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    """cap * tanh(logits / cap): about the logits themselves when small, never beyond +-cap (Gemma 2)."""
    return cap * torch.tanh(logits / cap)


class TinyLMPreTrainedModel(PreTrainedModel):
    config_class = TinyLMConfig
    config: TinyLMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TinyLMBlock"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True

    @torch.no_grad()
    def _init_weights(self, module):
        """Normal(0, initializer_range) everywhere (the base class), then GPT-2's scaled init: the projections
        that write into the residual stream get std / sqrt(2 * layers), so the stream's variance stays put."""
        super()._init_weights(module)
        if isinstance(module, TinyLMRotaryEmbedding):  # buffers, not saved: from_pretrained needs them rebuilt
            for buffer, table in zip((module.cos, module.sin), module.tables()):
                init.copy_(buffer, table)
        if getattr(module, "writes_to_residual", False):
            std = self.config.initializer_range / math.sqrt(2 * self.config.num_hidden_layers)
            init.normal_(module.weight, mean=0.0, std=std)


class TinyLMModel(TinyLMPreTrainedModel):
    """The transformer without its head: token ids -> final hidden states."""

    def __init__(self, config: TinyLMConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size) if config.vocab_size else None
        if config.position_embedding == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        else:
            self.rotary = TinyLMRotaryEmbedding(config)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(TinyLMBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = make_norm(config)
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")  # the name before transformers 5.24
    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, cache: Cache | None = None,
                inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                **kwargs) -> BaseModelOutputWithPast:
        """hidden_states (with output_hidden_states): the input of every layer, then the final normed output, as
        stock Llama / GPT-2 give them; attentions (with output_attentions): each layer's (B, H, T, S) weights."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, C)
        use_cache = (self.config.use_cache and not self.training) if use_cache is None else use_cache
        if use_cache and cache is None:  # (training needs no cache unless asked for one)
            cache = DynamicCache(config=self.config)
        past = cache.get_seq_length() if cache is not None else 0
        if past + inputs_embeds.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"{past} cached + {inputs_embeds.shape[1]} new tokens is past the context length "
                f"(max_position_embeddings={self.config.max_position_embeddings}): shorten the input"
            )
        if position_ids is None:  # positions continue after what the cache already holds
            position_ids = torch.arange(past, past + inputs_embeds.shape[1], device=inputs_embeds.device)[None]

        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        config = self.config
        if output_attentions and config._attn_implementation != "eager":  # the plain attention, which needs its mask
            config = copy.copy(config)
            config._attn_implementation = "eager"
        # the causal mask, merged with the padding mask; None when SDPA can use its own causal kernel
        mask = create_causal_mask(
            config=config, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
            cache=cache, position_ids=position_ids,
        )
        x = inputs_embeds
        rope = None
        if self.config.position_embedding == "learned":
            x = x + self.embed_positions(position_ids)  # (B, T, C)
        else:
            rope = self.rotary(x, position_ids)  # cos, sin: (B, T, D)
        x = self.dropout(x)
        hidden_states = [] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                hidden_states.append(x)
            x, weights = layer(x, attention_mask=mask, position_embeddings=rope, cache=cache,
                               output_attentions=output_attentions, **kwargs)
            if output_attentions:
                attentions.append(weights)
        x = self.norm(x)  # (B, T, C)
        if output_hidden_states:
            hidden_states.append(x)
        return BaseModelOutputWithPast(last_hidden_state=x, cache=cache,
                                       hidden_states=tuple(hidden_states) if output_hidden_states else None,
                                       attentions=tuple(attentions) if output_attentions else None)


class TinyLMForCausalLM(TinyLMPreTrainedModel, GenerationMixin):
    """TinyLM with its language-model head: token ids -> next-token logits (and the loss, given labels)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: TinyLMConfig):
        super().__init__(config)
        self.model = TinyLMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, cache: Cache | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int = 0, **kwargs) -> CausalLMOutputWithPast:
        """labels: the input ids themselves (shifted inside the loss), -100 where no loss is wanted.
        logits_to_keep: compute logits for the last N positions only (0: all); generate() uses 1."""
        outputs = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            cache=cache, inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs,
        )
        hidden = outputs.last_hidden_state  # (B, T, C)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)  # (B, T, V)
        if self.config.logit_softcap:
            logits = soft_cap(logits, self.config.logit_softcap)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=outputs.cache,
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)


__all__ = ["TinyLMForCausalLM", "TinyLMModel", "TinyLMPreTrainedModel"]
