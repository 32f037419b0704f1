"""Named model shapes. `tinylm presets` prints them as a table with their parameter counts.

The vocabulary size shown is the preset's default; a training run uses its tokenizer's size instead. The megabyte-*
presets are MEGABYTE byte models (`modeling_megabyte.py`: a global transformer over patches of 4 bytes, a local one
inside each patch); their columns read global / local.
"""

import torch

from .configuration_megabyte import MegabyteConfig
from .configuration_tinylm import TinyLMConfig
from .errors import UserError
from .modeling_megabyte import MegabyteForCausalLM
from .modeling_tinylm import TinyLMForCausalLM

#  name:               family,   vocab,  hidden, layers, heads, kv heads, context, where the shape comes from
PRESETS: dict[str, dict] = {
    "debug":           dict(family="gpt",   vocab_size=512,   hidden_size=32,  num_hidden_layers=2,  num_attention_heads=4,  num_key_value_heads=4,  max_position_embeddings=128,  note="tests"),
    "debug-llama":     dict(family="llama", vocab_size=512,   hidden_size=32,  num_hidden_layers=2,  num_attention_heads=4,  num_key_value_heads=2,  max_position_embeddings=128,  note="tests (grouped-query attention)"),
    "quickstart":      dict(family="llama", vocab_size=4096,  hidden_size=128, num_hidden_layers=4,  num_attention_heads=4,  num_key_value_heads=4,  max_position_embeddings=256,  note="trains on a 2-core CPU in minutes"),
    "quickstart-deep": dict(family="llama", vocab_size=4096,  hidden_size=128, num_hidden_layers=6,  num_attention_heads=4,  num_key_value_heads=4,  max_position_embeddings=256,  qk_norm=True, dropout=0.1, note="time budgets of 10+ minutes (with QK-norm and dropout 0.1)"),
    "tinystories-1m":  dict(family="gpt",   vocab_size=4096,  hidden_size=64,  num_hidden_layers=8,  num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=512,  note="TinyStories paper (GPT-Neo 1M shape)"),
    "tinystories-3m":  dict(family="gpt",   vocab_size=4096,  hidden_size=128, num_hidden_layers=8,  num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=512,  note="TinyStories paper (GPT-Neo 3M shape)"),
    "tinystories-8m":  dict(family="gpt",   vocab_size=4096,  hidden_size=256, num_hidden_layers=8,  num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=512,  note="TinyStories paper (GPT-Neo 8M shape)"),
    "tinystories-28m": dict(family="gpt",   vocab_size=4096,  hidden_size=512, num_hidden_layers=8,  num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=512,  note="TinyStories paper (GPT-Neo 28M shape)"),
    "tinystories-33m": dict(family="gpt",   vocab_size=4096,  hidden_size=768, num_hidden_layers=4,  num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=512,  note="TinyStories paper (GPT-Neo 33M shape)"),
    "stories260k":     dict(family="llama", vocab_size=512,   hidden_size=64,  num_hidden_layers=5,  num_attention_heads=8,  num_key_value_heads=4,  max_position_embeddings=512,  note="llama2.c"),
    "stories15m":      dict(family="llama", vocab_size=32000, hidden_size=288, num_hidden_layers=6,  num_attention_heads=6,  num_key_value_heads=6,  max_position_embeddings=256,  note="llama2.c"),
    "stories42m":      dict(family="llama", vocab_size=32000, hidden_size=512, num_hidden_layers=8,  num_attention_heads=8,  num_key_value_heads=8,  max_position_embeddings=1024, note="llama2.c"),
    "stories110m":     dict(family="llama", vocab_size=32000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=1024, note="llama2.c"),
}  # fmt: skip

#  name:                   patch, context (bytes), global transformer (over patches), local transformer (in a patch)
MEGABYTE_PRESETS: dict[str, dict] = {
    "megabyte-debug":      dict(patch_size=4, max_position_embeddings=128,  global_config=dict(hidden_size=32,  num_hidden_layers=2, num_attention_heads=4), local_config=dict(hidden_size=32,  num_hidden_layers=1, num_attention_heads=4), note="tests"),
    "megabyte-quickstart": dict(patch_size=4, max_position_embeddings=1024, global_config=dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=4), local_config=dict(hidden_size=96,  num_hidden_layers=2, num_attention_heads=4), note="MEGABYTE for a 2-core CPU in minutes"),
    "megabyte-15m":        dict(patch_size=4, max_position_embeddings=1024, global_config=dict(hidden_size=384, num_hidden_layers=8, num_attention_heads=6), local_config=dict(hidden_size=192, num_hidden_layers=2, num_attention_heads=4), note="MEGABYTE, 15M class"),
}  # fmt: skip


def is_megabyte(name: str | None) -> bool:
    return name in MEGABYTE_PRESETS


DEEP_FROM_MINUTES = 10  # from this time budget on, run_pretrain.py's default shape is quickstart-deep


def for_budget(minutes: float | None) -> str:
    """run_pretrain.py's default shape for a time budget: `quickstart`, or `quickstart-deep` (6 layers instead of 4,
    QK-norm, dropout 0.1) for budgets of 10 minutes or more. Measured at 10 minutes on TinyStories' 515K-token sample
    (2-core AMX Xeon, README, "Quality per minute"): 4 layers stop improving (1,725-2,186 steps, all 1.081-1.085 bits
    per byte), 6 layers reach 1.066 in 1,387 steps, 8 layers 1.093 in 973 (still improving: too few steps); on the 6
    layers QK-norm learns faster per step and then overfits (1.062), with dropout 0.1 as well it reached 1.030 and
    1.035 against 1.038-1.061 without either (README, "Levers")."""
    return "quickstart-deep" if minutes is not None and minutes >= DEEP_FROM_MINUTES else "quickstart"


def get_preset(name: str, **overrides) -> TinyLMConfig | MegabyteConfig:
    """The config of a named preset, with any config field overridden (e.g. vocab_size from the tokenizer; a
    MEGABYTE preset's stacks by their sub-config's fields: {"global_config": {"num_hidden_layers": 6}})."""
    if name not in PRESETS and name not in MEGABYTE_PRESETS:
        raise UserError(f"unknown preset {name!r}: choose one of {', '.join([*PRESETS, *MEGABYTE_PRESETS])}")
    config_class = MegabyteConfig if is_megabyte(name) else TinyLMConfig
    fields = {k: v for k, v in {**PRESETS, **MEGABYTE_PRESETS}[name].items() if k != "note"}
    for key, value in overrides.items():
        fields[key] = {**fields[key], **value} if isinstance(value, dict) and key in fields else value
    return config_class(**fields)


def count_parameters(config: TinyLMConfig | MegabyteConfig) -> int:
    """The number of distinct parameters of the model of `config` (tied weights once), counted by the model itself,
    built on the meta device: no memory, no time, whatever the size."""
    model_class = MegabyteForCausalLM if isinstance(config, MegabyteConfig) else TinyLMForCausalLM
    with torch.device("meta"):
        return model_class(config).num_parameters()


def format_count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def table() -> str:
    header = ("preset", "family", "params", "vocab", "hidden", "layers", "heads", "kv", "mlp", "context", "shape of")
    rows = [header]
    for name, spec in PRESETS.items():
        c = get_preset(name)
        rows.append((name, c.family, format_count(count_parameters(c)), c.vocab_size, c.hidden_size,
                     c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.intermediate_size,
                     c.max_position_embeddings, spec["note"]))
    for name, spec in MEGABYTE_PRESETS.items():
        c = get_preset(name)
        g, l = c.global_config, c.local_config
        rows.append((name, f"megabyte (patch {c.patch_size})", format_count(count_parameters(c)), c.vocab_size,
                     *(f"{getattr(g, f)}/{getattr(l, f)}" for f in ("hidden_size", "num_hidden_layers",
                                                                    "num_attention_heads", "num_key_value_heads",
                                                                    "intermediate_size")),
                     c.max_position_embeddings, spec["note"]))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows)


def main(argv: list[str]) -> None:
    import argparse

    argparse.ArgumentParser(prog="tinylm presets", description=__doc__).parse_args(argv)
    print(table())


if __name__ == "__main__":
    from .errors import run_cli

    run_cli(main)
