"""TinyLM configuration: every architecture choice of the model is a field here.

This file travels next to the saved weights (for `trust_remote_code=True`), so it imports nothing from the
rest of the `tinylm_hf` package.

Two named families fill in the architecture fields left unset:

    gpt    learned positions, LayerNorm, GELU MLP, biases          (GPT-2 / nanoGPT)
    llama  rotary positions,  RMSNorm,   SwiGLU MLP, no biases     (Llama / llama2.c)
"""

from transformers import PreTrainedConfig

FAMILIES = {
    "gpt": {"position_embedding": "learned", "norm": "layernorm", "mlp": "gelu", "bias": True},
    "llama": {"position_embedding": "rope", "norm": "rmsnorm", "mlp": "swiglu", "bias": False},
}
CHOICES = {"position_embedding": ("learned", "rope"), "norm": ("layernorm", "rmsnorm"), "mlp": ("gelu", "swiglu", "relu2")}


def default_intermediate_size(hidden_size: int, mlp: str, multiple_of: int = 32) -> int:
    """4x the width for GELU and ReLU^2; for SwiGLU llama2.c's rule: 2/3 of 4x (same parameter count), rounded up."""
    if mlp in ("gelu", "relu2"):
        return 4 * hidden_size
    width = int(2 * (4 * hidden_size) / 3)
    return multiple_of * ((width + multiple_of - 1) // multiple_of)


def check_special_ids(config: PreTrainedConfig) -> None:
    """A ValueError for a beginning / end / padding token id outside the vocabulary."""
    for field in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(config, field)
        if value is not None and not 0 <= value < config.vocab_size:
            raise ValueError(f"{field}={value} is outside the vocabulary (vocab_size={config.vocab_size})")


class TinyLMConfig(PreTrainedConfig):
    model_type = "tinylm"

    family: str = "gpt"
    vocab_size: int = 4096  # 0: no token table, the model takes inputs_embeds only (MEGABYTE's global model)
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int | None = None  # None: as many as query heads (no grouping)
    intermediate_size: int | None = None  # None: default_intermediate_size()
    max_position_embeddings: int = 256  # the context length
    position_embedding: str | None = None  # "learned" | "rope"; None: the family's
    rope_theta: float = 10000.0
    norm: str | None = None  # "layernorm" | "rmsnorm"
    norm_eps: float = 1e-5
    mlp: str | None = None  # "gelu" | "swiglu" | "relu2" (relu(x)^2, as modded-nanogpt: no stock equivalent)
    bias: bool | None = None  # biases in linear layers and LayerNorm
    dropout: float = 0.0  # on the embeddings and on each block's two residual branches (GPT-2's resid/embd_pdrop)
    attention_dropout: float = 0.0  # on the attention weights (GPT-2's attn_pdrop); its masks are (B, H, T, S)
    tie_word_embeddings: bool = True
    qk_norm: bool = False  # RMSNorm over each head's queries and keys before the rotation (Qwen3's q_norm / k_norm)
    logit_softcap: float = 0.0  # c > 0: logits = c * tanh(logits / c), within (-c, c) (Gemma 2's final soft-capping)
    initializer_range: float = 0.02
    use_cache: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self, **kwargs):
        if self.family not in FAMILIES:
            raise ValueError(f"family={self.family!r} is unknown: use one of {sorted(FAMILIES)}")
        for field, value in FAMILIES[self.family].items():
            if getattr(self, field) is None:
                setattr(self, field, value)
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.intermediate_size is None:
            self.intermediate_size = default_intermediate_size(self.hidden_size, self.mlp)
        super().__post_init__(**kwargs)
        self.check_shapes()

    def check_shapes(self):
        """Raise a ValueError naming the fields of any impossible shape."""
        for field, allowed in CHOICES.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field}={getattr(self, field)!r} is not one of {allowed}")
        if not isinstance(self.vocab_size, int) or self.vocab_size < 0:
            raise ValueError(f"vocab_size={self.vocab_size!r} must be a positive integer (0: inputs_embeds only)")
        for field in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                      "num_key_value_heads", "intermediate_size", "max_position_embeddings"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
                raise ValueError(f"{field}={getattr(self, field)!r} must be a positive integer")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not divisible by "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.position_embedding == "rope" and self.head_dim % 2:
            raise ValueError(f"position_embedding='rope' needs an even head_dim (hidden_size / num_attention_heads), "
                             f"got {self.head_dim}")
        for field in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, field) < 1.0:
                raise ValueError(f"{field}={getattr(self, field)} must be in [0, 1)")
        if not self.logit_softcap >= 0:
            raise ValueError(f"logit_softcap={self.logit_softcap} must be 0 (off) or a positive bound, e.g. 15")
        check_special_ids(self)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


__all__ = ["TinyLMConfig"]
