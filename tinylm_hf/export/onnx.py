"""ONNX: the folder ONNX Runtime and transformers.js load, checked against PyTorch.

    tinylm export onnx MODEL_DIR OUT_DIR [--quantize q8|q4]

It holds the stock architecture's `config.json` (the llama family as `llama`, or `qwen3` with QK-norm; the gpt
family as `gpt2`; through the exact conversion of `tinylm_hf.convert`), `generation_config.json`, `tokenizer.json`,
`tokenizer_config.json` with the chat template inside it (transformers.js reads it from there), and
`onnx/model.onnx` (fp32; with `--quantize q8`, also `onnx/model_quantized.onnx`: 8-bit weights; with `--quantize
q4`, `onnx/model_q4.onnx`: 4-bit weights, the embedding and the head too; the names transformers.js loads for
`dtype: "q8"` and `"q4"`). The graph takes
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
    for node in proto.graph.node:  # the exporter's notes on each node (stack traces with this machine's paths): a
        del node.metadata_props[:]  # ninth of the fp32 file, half of a 4-bit one
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


QUANTIZED = {"q8": "model_quantized.onnx", "q4": "model_q4.onnx"}  # transformers.js's file for each dtype
Q4_BLOCK = 32  # values per 4-bit block, each block with its own fp32 scale (llama.cpp's q4_0 blocks are as long)


def quantize_q8(src: str, dst: str) -> list[str]:
    """8-bit weights for the matrix products, the head included, and the embedding (dynamic quantization: the
    activations stay float). Returns the matrices left in fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load(src)
    constant_weights(proto)
    with written_whole(dst) as tmp:
        quantize_dynamic(proto, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm", "Gather"],
                         extra_options={"MatMulConstBOnly": True})  # per tensor: per channel measured 30% slower
    return float_weights(onnx.load(dst))


def constant_weights(proto) -> int:
    """Make every weight matrix a constant MatMul input, which weight-only quantizers take: the exporter writes a tied
    head as MatMul(x, Transpose(embedding)) (folded into a transposed copy; the embedding then feeds only its Gather)
    and GPT-2's Conv1D layers as Gemm (split into MatMul + Add, the same arithmetic). Returns how many it rewrote."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    made = {n.output[0]: n for n in proto.graph.node}
    rewritten = 0

    def constant(name: str, array: np.ndarray) -> str:
        proto.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    for index, node in reversed(list(enumerate(proto.graph.node))):  # from the end: inserting keeps the order
        if node.op_type == "MatMul":
            source = made.get(node.input[1])
            if source is None or source.op_type != "Transpose" or source.input[0] not in inits:
                continue
            perm = next((list(a.ints) for a in source.attribute if a.name == "perm"), None)
            weight = numpy_helper.to_array(inits[source.input[0]]).transpose(perm)
            node.input[1] = constant(f"{source.input[0]}.transposed", weight)
        elif node.op_type == "Gemm" and node.input[1] in inits:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
                continue
            weight = numpy_helper.to_array(inits[node.input[1]])
            weight_name = constant(f"{node.input[1]}.transposed", weight.T) if attrs.get("transB", 0) \
                else node.input[1]
            has_bias = len(node.input) > 2 and node.input[2]
            product = f"{node.output[0]}.matmul" if has_bias else node.output[0]
            new = [helper.make_node("MatMul", [node.input[0], weight_name], [product], name=f"{node.name}.matmul")]
            if has_bias:
                new.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}.add"))
            proto.graph.node.remove(node)
            for offset, added in enumerate(new):
                proto.graph.node.insert(index + offset, added)
        else:
            continue
        rewritten += 1
    used = {name for n in proto.graph.node for name in n.input}
    for node in [n for n in proto.graph.node if n.op_type == "Transpose" and n.output[0] not in used]:
        proto.graph.node.remove(node)
    used = {name for n in proto.graph.node for name in n.input}
    for init in [i for i in proto.graph.initializer if i.name not in used]:
        proto.graph.initializer.remove(init)
    return rewritten


def quantize_q4(src: str, dst: str) -> list[str]:
    """4-bit weights in blocks of `Q4_BLOCK` along each matrix's input dimension, symmetric, one fp32 scale a block
    (ONNX Runtime's MatMulNBits), for every matrix product, the head included; a tied embedding is read from the
    head's 4-bit copy (`tied_embedding`: one table, not two), any other one (GPT-2's positions) stored in 8 bits.
    Activations stay fp32. Every op runs in ONNX Runtime Web too (its wasm build has no GatherBlockQuantized).
    Returns the weight matrices left in fp32 (none for our shapes)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    proto = onnx.load(src)
    constant_weights(proto)
    heads = {n.input[1].removesuffix(".transposed") for n in proto.graph.node if n.op_type == "MatMul"}
    tied = [n.name for n in proto.graph.node if n.op_type == "Gather" and n.input[0] in heads]
    with written_whole(dst) as tmp:
        quantize_dynamic(proto, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"],
                         nodes_to_exclude=tied)
        config = DefaultWeightOnlyQuantConfig(block_size=Q4_BLOCK, is_symmetric=True, op_types_to_quantize=("MatMul",))
        quantizer = MatMulNBitsQuantizer(onnx.load(tmp), algo_config=config)
        quantizer.process()
        proto = quantizer.model.model
        for name in tied:
            tied_embedding(proto, name)
        onnx.save(proto, tmp)
    return float_weights(proto)


def tied_embedding(proto, gather_name: str) -> None:
    """Replace the embedding lookup `gather_name` (Gather(E, ids), E the head's weight) by a lookup in the head's
    4-bit copy (MatMulNBits' packed [vocabulary, blocks, 16] bytes, two values a byte, low nibble first, and its
    [vocabulary, blocks] scales): the rows of the ids, unpacked, minus the zero point 8, times their scales."""
    from onnx import TensorProto, helper, numpy_helper

    gather = next(n for n in proto.graph.node if n.name == gather_name)
    table, ids = gather.input[0], gather.input[1]
    packed, scales = f"{table}.transposed_Q4", f"{table}.transposed_scales"
    inits = {i.name: i for i in proto.graph.initializer}
    rows, blocks, _ = inits[packed].dims
    hidden = inits[table].dims[1]  # the embedding is (vocabulary, hidden); the packed rows are padded to blocks
    scale = numpy_helper.to_array(inits[scales]).reshape(rows, blocks)
    p = f"{gather_name}.q4"
    consts = {f"{p}.scales": scale, f"{p}.15": np.array(15, np.uint8), f"{p}.4": np.array(4, np.uint8),
              f"{p}.8": np.array(8, np.float32), f"{p}.last": np.array([-1], np.int64),
              f"{p}.shape": np.array([0, 0, blocks, Q4_BLOCK], np.int64), f"{p}.flat": np.array([0, 0, -1], np.int64),
              f"{p}.start": np.array([0], np.int64), f"{p}.end": np.array([hidden], np.int64)}
    proto.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    nodes = [  # ids (B, T) -> (B, T, hidden)
        helper.make_node("Gather", [packed, ids], [f"{p}.bytes"], axis=0),  # (B, T, blocks, 16)
        helper.make_node("BitwiseAnd", [f"{p}.bytes", f"{p}.15"], [f"{p}.low"]),
        helper.make_node("BitShift", [f"{p}.bytes", f"{p}.4"], [f"{p}.high"], direction="RIGHT"),
        helper.make_node("Unsqueeze", [f"{p}.low", f"{p}.last"], [f"{p}.low1"]),
        helper.make_node("Unsqueeze", [f"{p}.high", f"{p}.last"], [f"{p}.high1"]),
        helper.make_node("Concat", [f"{p}.low1", f"{p}.high1"], [f"{p}.pairs"], axis=-1),  # (B, T, blocks, 16, 2)
        helper.make_node("Reshape", [f"{p}.pairs", f"{p}.shape"], [f"{p}.values"]),  # (B, T, blocks, 32)
        helper.make_node("Cast", [f"{p}.values"], [f"{p}.float"], to=TensorProto.FLOAT),
        helper.make_node("Sub", [f"{p}.float", f"{p}.8"], [f"{p}.centred"]),
        helper.make_node("Gather", [f"{p}.scales", ids], [f"{p}.row_scales"], axis=0),  # (B, T, blocks)
        helper.make_node("Unsqueeze", [f"{p}.row_scales", f"{p}.last"], [f"{p}.row_scales1"]),
        helper.make_node("Mul", [f"{p}.centred", f"{p}.row_scales1"], [f"{p}.scaled"]),
        helper.make_node("Reshape", [f"{p}.scaled", f"{p}.flat"], [f"{p}.padded"]),  # (B, T, blocks * 32)
        helper.make_node("Slice", [f"{p}.padded", f"{p}.start", f"{p}.end", f"{p}.last"], [gather.output[0]]),
    ]
    index = list(proto.graph.node).index(gather)
    proto.graph.node.remove(gather)
    for offset, node in enumerate(nodes):
        proto.graph.node.insert(index + offset, node)
    if table in inits and not any(table in n.input for n in proto.graph.node):
        proto.graph.initializer.remove(inits[table])


def float_weights(proto) -> list[str]:
    """The weight matrices a MatMul, Gemm or Gather of `proto` still reads in float (not counting scales)."""
    from onnx import TensorProto

    inits = {i.name: i for i in proto.graph.initializer}
    weights = {n.input[0] if n.op_type == "Gather" else n.input[1] for n in proto.graph.node
               if n.op_type in ("MatMul", "Gemm", "Gather")}
    return sorted(name for name in weights if name in inits and inits[name].data_type == TensorProto.FLOAT
                  and not name.endswith("scales"))  # a quantized table's own scales


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


def onnx_folder(model_dir: str, out_dir: str, quantize: str | list[str] | None = None, log=print, also=None) -> dict:
    """The ONNX folder of `model_dir` at `out_dir` (see the module's docstring), with the quantized graphs named in
    `quantize` ("q8", "q4" or both); returns the check's figures. `also(folder, model)` writes more files into it
    before it takes its place (the web page)."""
    quantize = [quantize] if isinstance(quantize, str) else list(quantize or [])
    for kind in quantize:
        if kind not in QUANTIZED:
            raise UserError(f"--quantize {kind!r}: choose q8 or q4")
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
        for kind in quantize:
            src, dst = os.path.join(tmp, "onnx", "model.onnx"), os.path.join(tmp, "onnx", QUANTIZED[kind])
            kept = quantize_q8(src, dst) if kind == "q8" else quantize_q4(src, dst)
            if kept:
                log(f"{kind}: {len(kept)} matrices stay fp32 ({', '.join(kept[:4])}{', ...' if len(kept) > 4 else ''})")
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
