"""The model card (README.md with a metadata header) of an output folder."""

import json

from huggingface_hub import ModelCard, ModelCardData

from ..configuration_megabyte import MegabyteConfig
from ..convert import cannot_convert, stock_target
from ..presets import format_count

EXPORTS = [  # the card's "Run it elsewhere" table
    ("format", "for", "command"),
    ("ONNX (fp32, 8-bit, 4-bit)", "ONNX Runtime, transformers.js",
     "`tinylm export onnx MODEL OUT --quantize q8 --quantize q4`"),
    ("web page", "any browser, no server", "`tinylm export web MODEL OUT [--offline]`"),
    ("GGUF (f32, f16, q8_0, q4_0)", "llama.cpp (`llama-cli -m OUT.gguf`)",
     "`tinylm export gguf MODEL OUT.gguf --type q4_0`"),
    ("ExecuTorch .pte (fp32, 8da4w)", "Android, iOS (ExecuTorch's LLM runner)",
     "`tinylm export executorch MODEL OUT --quantize 8da4w`"),
]


def markdown_table(rows: list[tuple]) -> str:
    """A header row and body rows as a Markdown table."""
    header, *body = rows
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in body]
    return "\n".join(lines)


def describe_shape(config, n_params: int) -> str:
    if isinstance(config, MegabyteConfig):
        g, l = config.global_config, config.local_config
        return (f"MEGABYTE, {format_count(n_params)} parameters: patches of {config.patch_size} bytes, a global "
                f"transformer of {g.num_hidden_layers} layers (hidden {g.hidden_size}, {g.num_attention_heads} heads) "
                f"over patches and a local one of {l.num_hidden_layers} (hidden {l.hidden_size}, "
                f"{l.num_attention_heads} heads) inside each, {g.family} blocks, context "
                f"{config.max_position_embeddings} bytes, vocabulary {config.vocab_size} (the bytes and special tokens)")
    return (f"{config.family} family, {format_count(n_params)} parameters: {config.num_hidden_layers} layers, "
            f"hidden {config.hidden_size}, {config.num_attention_heads} heads ({config.num_key_value_heads} key/value), "
            f"MLP {config.mlp} {config.intermediate_size}, {config.position_embedding} positions, {config.norm}, "
            f"context {config.max_position_embeddings}, vocabulary {config.vocab_size}"
            + (", QK-norm" if config.qk_norm else "")
            + (f", logits soft-capped at {config.logit_softcap:g}" if config.logit_softcap else ""))


def where_it_runs(config) -> str:
    """The card's "Run it elsewhere": the export commands, or why there are none."""
    if isinstance(config, MegabyteConfig):
        return ("## Run it elsewhere\n\nNot exportable: MEGABYTE has no stock architecture, so the conversion and "
                "the exports (ONNX, web page, GGUF, ExecuTorch) refuse it; it runs with transformers.")
    target = stock_target(config)
    if blockers := cannot_convert(config, target):  # the exports go through the exact conversion to stock
        return (f"## Run it elsewhere\n\nNot exportable: the exports (ONNX, web page, GGUF) go through the exact "
                f"conversion to stock {target}, which this model cannot take: {'; '.join(blockers)}.")
    return (f"## Run it elsewhere\n\nThe same model, exported as stock {target} and checked against PyTorch "
            "(`pip install 'tinylm-hf[export]'`; MODEL: a local copy of this folder):\n\n" + markdown_table(EXPORTS))


def model_card(*, name: str, summary: str, config, n_params: int, datasets: list[str], license: str,
               hyperparameters: dict, metrics: dict, samples: list[dict], plot: str | None, base_model: str | None,
               tags: list[str], extra_sections: str = "") -> ModelCard:
    data = ModelCardData(library_name="transformers", pipeline_tag="text-generation", license=license,
                         datasets=datasets or None, tags=["tinylm", "tinylm-hf", "causal-lm", *tags],
                         base_model=base_model, model_name=name)
    shape, elsewhere = describe_shape(config, n_params), where_it_runs(config)
    sections = [
        f"# {name}", summary, f"**Model:** {shape}.",
        "## Use it\n\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f"model = AutoModelForCausalLM.from_pretrained(\"{name}\", trust_remote_code=True)  # no remote code needed "
        f"with `pip install tinylm-hf` + `import tinylm_hf`\ntokenizer = AutoTokenizer.from_pretrained(\"{name}\", trust_remote_code=True)\n"
        "ids = tokenizer(tokenizer.bos_token + \"Once upon a time\", return_tensors=\"pt\").input_ids\n"
        "print(tokenizer.decode(model.generate(ids, max_new_tokens=100)[0], skip_special_tokens=True))\n```",
        elsewhere,
        "## Evaluation\n\n" + markdown_table([("metric", "value")] + [(k, v) for k, v in metrics.items()]),
        extra_sections,
        "## Training hyperparameters\n\n" + markdown_table([("hyperparameter", "value")] +
                                                          [(k, json.dumps(v) if isinstance(v, dict) else v)
                                                           for k, v in hyperparameters.items()]),
    ]
    if plot:
        sections.append(f"## Loss curve\n\n![loss curve]({plot})")
    if samples:
        sections.append("## Samples (greedy)\n\n" + "\n\n".join(
            f"**{s['prompt'].strip()!s}** → {s['completion'].strip()}".replace("\n", " ") for s in samples))
    sections.append("Trained with tinylm-hf (`pip install tinylm-hf`).")
    body = "\n\n".join(s for s in sections if s)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")
