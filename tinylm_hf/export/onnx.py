"""ONNX: the folder ONNX Runtime and transformers.js load, checked against PyTorch.

    tinylm export onnx MODEL_DIR OUT_DIR [--quantize q8]

It holds the stock architecture's `config.json` (the llama family as `llama`, or `qwen3` with QK-norm; the gpt
family as `gpt2`; through the exact conversion of `tinylm_hf.convert`), `generation_config.json`, `tokenizer.json`,
`tokenizer_config.json` with the chat template inside it (transformers.js reads it from there), and
`onnx/model.onnx` (fp32; with `--quantize q8`, also `onnx/model_quantized.onnx`: 8-bit weights). The graph takes
the KV cache and returns it (`past_key_values.{i}.key/value` in, `present.{i}.key/value` out), so generation does
not recompute the prompt.
After writing, it runs a prompt and a decode step through ONNX Runtime and reports the largest difference from
PyTorch's logits.
"""

import json
import os

import numpy as np
import torch
from transformers import DynamicCache, GenerationConfig

from ..convert import stock_model
from ..errors import UserError
from ..files import write_json, written_whole
from ..tokenizer import load_tokenizer

ONNX_OPSET = 18


def cache_shape(config) -> tuple[int, int]:
    """(key/value heads, head size) of the model's KV cache."""
    heads = config.num_attention_heads
    return getattr(config, "num_key_value_heads", None) or heads, config.hidden_size // heads


class WithCache(torch.nn.Module):
    """The model with its cache as plain tensors: (input_ids, attention_mask, position_ids, key 0, value 0, key 1,
    ...) -> (logits, present key 0, present value 0, ...), the signature ONNX graphs of decoders have."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = DynamicCache(config=self.model.config)
        for layer in range(len(past) // 2):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         cache=cache, use_cache=True)
        present = [t for layer in out.cache.layers for t in (layer.keys, layer.values)]
        return (out.logits, *present)


def io_names(layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    present = [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past], ["logits", *present]


def export_onnx(model, path: str) -> None:
    """`model` (a stock causal LM) as an ONNX graph with its KV cache at `path`; dimensions named as
    transformers.js expects: `batch_size`, `sequence_length`, `past_sequence_length`, `total_sequence_length`."""
    c = model.config
    kv_heads, head_size = cache_shape(c)
    layers = c.num_hidden_layers
    inputs, outputs = io_names(layers)
    batch, seq, past_len = 2, 3, 4  # example sizes (not 0 or 1, which export would take for constants)
    example = (torch.ones(batch, seq, dtype=torch.long), torch.ones(batch, past_len + seq, dtype=torch.long),
               torch.arange(past_len, past_len + seq).repeat(batch, 1),
               *[torch.zeros(batch, kv_heads, past_len, head_size) for _ in range(2 * layers)])
    b, s, p, t = (torch.export.Dim(name) for name in ("batch_size", "sequence_length", "past_sequence_length",
                                                        "total_sequence_length"))
    shapes = ({0: b, 1: s}, {0: b, 1: t}, {0: b, 1: s}, tuple({0: b, 2: p} for _ in range(2 * layers)))  # *past
    program = torch.onnx.export(WithCache(model).eval(), example, dynamo=True, input_names=inputs, output_names=outputs,
                                dynamic_shapes=shapes, opset_version=ONNX_OPSET, external_data=False)
    proto = program.model_proto
    names = {"batch_size", "sequence_length", "past_sequence_length", "total_sequence_length"}
    symbols = {}  # the exporter's names for the dimensions -> ours
    for value, dims in zip(proto.graph.input, (("batch_size", "sequence_length"),
                                                ("batch_size", "total_sequence_length"))):
        for dim, name in zip(value.type.tensor_type.shape.dim, dims):
            symbols[dim.dim_param] = name
    key = proto.graph.input[3].type.tensor_type.shape.dim[2].dim_param if layers else None
    if key:
        symbols[key] = "past_sequence_length"
    for value in [*proto.graph.input, *proto.graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in symbols:
                dim.dim_param = symbols[dim.dim_param]
            elif dim.dim_param and dim.dim_param not in names:  # present: past + new tokens
                dim.dim_param = "total_sequence_length"
    import onnx

    with written_whole(path) as tmp:
        onnx.save(proto, tmp)


def quantize_q8(src: str, dst: str) -> None:
    """8-bit weights for the matrix products (dynamic quantization: activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with written_whole(dst) as tmp:
        quantize_dynamic(src, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         extra_options={"MatMulConstBOnly": True})


def run_onnx(session, ids: np.ndarray, past: list[np.ndarray] | None, config) -> tuple[np.ndarray, list[np.ndarray]]:
    """One call of an exported graph: new token ids (batch, T) after `past` (None: an empty cache)."""
    kv_heads, head_size = cache_shape(config)
    if past is None:
        past = [np.zeros((ids.shape[0], kv_heads, 0, head_size), np.float32)] * (2 * config.num_hidden_layers)
    seen = past[0].shape[2]
    feeds = {"input_ids": ids.astype(np.int64),
             "attention_mask": np.ones((ids.shape[0], seen + ids.shape[1]), np.int64),
             "position_ids": np.tile(np.arange(seen, seen + ids.shape[1]), (ids.shape[0], 1)).astype(np.int64)}
    inputs, _ = io_names(config.num_hidden_layers)
    feeds.update(zip(inputs[3:], past))
    logits, *present = session.run(None, feeds)
    return logits, present


def check_against_pytorch(model, path: str, ids: list[int]) -> float:
    """The largest difference between ONNX Runtime's logits and PyTorch's, for `ids` as a prompt and then for its
    last token as a decode step after the others (through the cache)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    prompt = np.array([ids])
    with torch.no_grad():
        expected = model(torch.tensor(prompt)).logits.numpy()
    whole, _ = run_onnx(session, prompt, None, model.config)
    _, past = run_onnx(session, prompt[:, :-1], None, model.config)
    step, _ = run_onnx(session, prompt[:, -1:], past, model.config)
    return float(max(np.abs(whole - expected).max(), np.abs(step[:, -1] - expected[:, -1]).max()))


def write_tokenizer(model_dir: str, out_dir: str) -> None:
    """tokenizer.json and tokenizer_config.json, the chat template inside the latter (where transformers.js reads
    it; transformers 5 writes it to chat_template.jinja)."""
    tokenizer = load_tokenizer(model_dir, add_chat_template=False)
    tokenizer.save_pretrained(out_dir)
    template = os.path.join(out_dir, "chat_template.jinja")
    if os.path.exists(template):
        os.remove(template)
    config_path = os.path.join(out_dir, "tokenizer_config.json")
    with open(config_path) as f:
        config = json.load(f)
    if tokenizer.chat_template:
        config["chat_template"] = tokenizer.chat_template
    write_json(config_path, config)


def onnx_folder(model_dir: str, out_dir: str, quantize: str | None = None, log=print, also=None) -> dict:
    """The ONNX folder of `model_dir` at `out_dir` (see the module's docstring); returns the check's figures.
    `also(folder, model)` writes more files into it before it takes its place (the web page)."""
    if quantize not in (None, "q8"):
        raise UserError(f"--quantize {quantize!r}: the one quantization offered is q8")
    model = stock_model(model_dir)
    tokenizer = load_tokenizer(model_dir, add_chat_template=False)
    with written_whole(out_dir, folder=True) as tmp:
        os.makedirs(os.path.join(tmp, "onnx"))
        model.config.save_pretrained(tmp)
        try:
            GenerationConfig.from_pretrained(model_dir).save_pretrained(tmp)
        except OSError:
            pass  # no generation_config.json: runtimes use their defaults
        write_tokenizer(model_dir, tmp)
        log(f"exporting {model.config.model_type} ({model.num_parameters():,} parameters) to ONNX")
        export_onnx(model, os.path.join(tmp, "onnx", "model.onnx"))
        if quantize:
            quantize_q8(os.path.join(tmp, "onnx", "model.onnx"), os.path.join(tmp, "onnx", "model_quantized.onnx"))
        if also:
            also(tmp, model)
    text = "Once upon a time, there was a little dog named Max. Max liked to play."
    ids = tokenizer(tokenizer.bos_token + text, add_special_tokens=False)["input_ids"]
    report = {"max_abs_diff": check_against_pytorch(model, os.path.join(out_dir, "onnx", "model.onnx"), ids),
              "files": {name: os.path.getsize(os.path.join(out_dir, "onnx", name))
                        for name in sorted(os.listdir(os.path.join(out_dir, "onnx")))}}
    sizes = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in report["files"].items())
    log(f"wrote {out_dir} ({sizes}); ONNX Runtime vs PyTorch: largest logit difference {report['max_abs_diff']:.1e}")
    return report
