"""TinyLM: a compact GPT, in one file, as a real `transformers` model.

Reads like nanoGPT (embeddings -> N x [norm -> attention -> norm -> MLP] -> norm -> head), plugs in like
`modeling_llama.py`: attention through transformers' attention interface (SDPA by default, eager available),
the KV cache through the `Cache` API, the loss through `self.loss_function`, `generate()` from
`GenerationMixin`. Every architecture choice comes from `TinyLMConfig`.

Shapes in comments: B batch, T new tokens, S tokens attended to (cache + new), C hidden size,
H query heads, K key/value heads, D head size (C / H), V vocabulary.

This file travels next to the saved weights (for `trust_remote_code=True`), so it imports nothing from the
rest of the `tinylm_hf` package.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.cache_utils import DynamicCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.utils import can_return_tuple

from .configuration_tinylm import TinyLMConfig


def make_norm(config: TinyLMConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.hidden_size, eps=config.norm_eps)
    return nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.bias)


class TinyLMRotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE): cos/sin tables for the positions asked for.

    Uses the "rotate half" layout of Hugging Face's Llama, so weights convert to `LlamaForCausalLM` as they are.
    """

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        self.dim, self.theta = config.head_dim, config.rope_theta
        self.register_buffer("inv_freq", self.frequencies(), persistent=False)

    def frequencies(self) -> torch.Tensor:
        return 1.0 / (self.theta ** (torch.arange(0, self.dim, 2, dtype=torch.float) / self.dim))  # (D/2,)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq  # (B, T, D/2)
        angles = torch.cat((freqs, freqs), dim=-1)  # (B, T, D)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, heads, T, D); cos, sin: (B, T, D)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, D): the same rotation for every head
    return x * cos + rotate_half(x) * sin


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain attention, written out: softmax(q k^T * scale + mask) v. The reference for the fused kernels."""
    key = key.repeat_interleave(module.num_key_value_groups, dim=1)  # (B, K, S, D) -> (B, H, S, D)
    value = value.repeat_interleave(module.num_key_value_groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, T, S)
    if attention_mask is not None:
        scores = scores + attention_mask  # -inf where a token may not look (the future, padding)
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    out = torch.matmul(weights, value)  # (B, H, T, D)
    return out.transpose(1, 2).contiguous(), weights  # (B, T, H, D)


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

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, past_key_values=None, **kwargs):
        B, T, _ = hidden_states.shape
        D = self.head_dim
        qkv = self.qkv_proj(hidden_states)  # (B, T, (H + 2K) * D)
        q, k, v = qkv.split([self.num_heads * D, self.num_key_value_heads * D, self.num_key_value_heads * D], dim=-1)
        q = q.view(B, T, -1, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, -1, D).transpose(1, 2)  # (B, K, T, D)
        v = v.view(B, T, -1, D).transpose(1, 2)  # (B, K, T, D)
        if position_embeddings is not None:  # rope: rotate q and k by their positions
            cos, sin = position_embeddings
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if past_key_values is not None:  # append the new k, v to the cache, get all of them back
            k, v = past_key_values.update(k, v, self.layer_idx)  # (B, K, S, D)

        attention: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        y, weights = attention(
            self, q, k, v, attention_mask,
            dropout=self.config.dropout if self.training else 0.0, scaling=self.scaling, **kwargs,
        )  # (B, T, H, D)
        return self.o_proj(y.reshape(B, T, -1)), weights  # (B, T, C)


class TinyLMMLP(nn.Module):
    """GELU: down(gelu(up(x))). SwiGLU: down(silu(gate(x)) * up(x)), gate and up fused in one matmul."""

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        n_in = 2 * config.intermediate_size if self.swiglu else config.intermediate_size
        self.up_proj = nn.Linear(config.hidden_size, n_in, bias=config.bias)  # for SwiGLU: [gate; up]
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.bias)
        self.down_proj.writes_to_residual = True

    def forward(self, x):
        h = self.up_proj(x)  # (B, T, I) or (B, T, 2I)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
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

    def forward(self, hidden_states, attention_mask=None, position_embeddings=None, past_key_values=None, **kwargs):
        attn_out, _ = self.attn(
            self.attn_norm(hidden_states), position_embeddings, attention_mask, past_key_values, **kwargs
        )
        hidden_states = hidden_states + self.dropout(attn_out)
        hidden_states = hidden_states + self.dropout(self.mlp(self.mlp_norm(hidden_states)))
        return hidden_states  # (B, T, C)


class TinyLMPreTrainedModel(PreTrainedModel):
    config_class = TinyLMConfig
    config: TinyLMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TinyLMBlock"]
    _skip_keys_device_placement = ["past_key_values"]
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
        if isinstance(module, TinyLMRotaryEmbedding):  # a buffer, not saved: from_pretrained needs it rebuilt
            init.copy_(module.inv_freq, module.frequencies())
        if getattr(module, "writes_to_residual", False):
            std = self.config.initializer_range / math.sqrt(2 * self.config.num_hidden_layers)
            init.normal_(module.weight, mean=0.0, std=std)


class TinyLMModel(TinyLMPreTrainedModel):
    """The transformer without its head: token ids -> final hidden states."""

    def __init__(self, config: TinyLMConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        if config.position_embedding == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        else:
            self.rotary = TinyLMRotaryEmbedding(config)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(TinyLMBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = make_norm(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, **kwargs) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, C)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        if position_ids is None:  # positions continue after what the cache already holds
            past = past_key_values.get_seq_length() if past_key_values is not None else 0
            position_ids = torch.arange(past, past + inputs_embeds.shape[1], device=inputs_embeds.device)[None]
        if int(position_ids.max()) >= self.config.max_position_embeddings:
            raise ValueError(
                f"position {int(position_ids.max())} is past the context length "
                f"(max_position_embeddings={self.config.max_position_embeddings}): shorten the input"
            )

        # the causal mask, merged with the padding mask; None when SDPA can use its own causal kernel
        mask = create_causal_mask(
            config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
            past_key_values=past_key_values, position_ids=position_ids,
        )
        x = inputs_embeds
        rope = None
        if self.config.position_embedding == "learned":
            x = x + self.embed_positions(position_ids)  # (B, T, C)
        else:
            rope = self.rotary(x, position_ids)  # cos, sin: (B, T, D)
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x, attention_mask=mask, position_embeddings=rope, past_key_values=past_key_values, **kwargs)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(x), past_key_values=past_key_values)


class TinyLMForCausalLM(TinyLMPreTrainedModel, GenerationMixin):
    """TinyLM with its language-model head: token ids -> next-token logits (and the loss, given labels)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: TinyLMConfig):
        super().__init__(config)
        self.model = TinyLMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, logits_to_keep: int = 0,
                **kwargs) -> CausalLMOutputWithPast:
        """labels: the input ids themselves (shifted inside the loss), -100 where no loss is wanted.
        logits_to_keep: compute logits for the last N positions only (0: all); generate() uses 1."""
        outputs = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs,
        )
        hidden = outputs.last_hidden_state  # (B, T, C)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=outputs.past_key_values)


__all__ = ["TinyLMForCausalLM", "TinyLMModel", "TinyLMPreTrainedModel"]
