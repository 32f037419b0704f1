"""MEGABYTE configuration: the patch size, the byte context, and the shapes of its two transformers.

MEGABYTE (Yu et al., 2023, "Predicting Million-byte Sequences with Multiscale Transformers") reads and writes raw
bytes: a large *global* transformer runs over patches of `patch_size` bytes, a small *local* one predicts the bytes
inside each patch. Both are TinyLM stacks (`global_config`, `local_config`: TinyLMConfig, llama family by default:
RoPE, RMSNorm, SwiGLU); the fields that follow from the patching are set here, not by hand:

    global_config.vocab_size = 0                                   patches come in as embeddings, no token table
    global_config.max_position_embeddings = context / patch + 1    one patch more: the prediction past the end
    local_config.vocab_size = vocab_size                           its table embeds the byte before each position
    local_config.max_position_embeddings = patch_size

This file travels next to the saved weights (for `trust_remote_code=True`) with configuration_tinylm.py.
"""

from transformers import PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_tinylm import TinyLMConfig, check_special_ids

BYTES = 256  # a vocabulary holds the 256 bytes, and special tokens after them (the bytes tokenizer: 261)


class MegabyteConfig(PreTrainedConfig):
    model_type = "tinylm_megabyte"
    sub_configs_defaults = {"global_config": SubConfigSpec(config_class=TinyLMConfig),
                            "local_config": SubConfigSpec(config_class=TinyLMConfig)}
    family = "megabyte"  # (not a field: what the run's log and the card call it)

    vocab_size: int = BYTES + 5  # the 256 bytes and the bytes tokenizer's 5 special tokens
    patch_size: int = 4  # P bytes a patch
    max_position_embeddings: int = 1024  # the context, in bytes: a multiple of patch_size
    global_config: dict | TinyLMConfig | None = None  # hidden_size: P byte embeddings of hidden_size / P side by side
    local_config: dict | TinyLMConfig | None = None
    tie_word_embeddings: bool = True  # the output head is the local model's byte table
    initializer_range: float = 0.02
    use_cache: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self, **kwargs):
        P, context = self.patch_size, self.max_position_embeddings
        if not isinstance(P, int) or P < 1:
            raise ValueError(f"patch_size={P!r} must be a positive integer")
        if not isinstance(context, int) or context < P or context % P:
            raise ValueError(f"max_position_embeddings={context!r} (the context, in bytes) must be a multiple of "
                             f"patch_size={P}")
        if not isinstance(self.vocab_size, int) or self.vocab_size < BYTES:
            raise ValueError(f"vocab_size={self.vocab_size!r}: a byte model needs the {BYTES} bytes (and any special "
                             f"tokens after them): use the bytes tokenizer (--tokenizer_type bytes)")
        derived = {"global_config": dict(vocab_size=0, max_position_embeddings=context // P + 1),
                   "local_config": dict(vocab_size=self.vocab_size, max_position_embeddings=P)}
        for key, fields in derived.items():
            sub = getattr(self, key)
            sub = sub.to_dict() if isinstance(sub, PreTrainedConfig) else dict(sub or {})
            sub.pop("model_type", None)
            setattr(self, key, {"family": "llama", **sub, **fields, "tie_word_embeddings": False})
        super().__post_init__(**kwargs)
        if self.global_config.hidden_size % P:
            raise ValueError(f"global_config.hidden_size={self.global_config.hidden_size} is not divisible by "
                             f"patch_size={P}: a patch is its {P} byte embeddings side by side")
        check_special_ids(self)


__all__ = ["MegabyteConfig"]
