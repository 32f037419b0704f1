"""ONNX export: the graph ONNX Runtime runs gives PyTorch's logits, for a prompt and for decode steps through its
KV cache, on both families; the 8-bit graph agrees on the top token; the folder is what transformers.js reads."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from tinylm_hf.configuration_tinylm import TinyLMConfig
from tinylm_hf.export.check import check, write_card
from tinylm_hf.export.onnx import constant_weights, float_weights, onnx_folder, run_onnx
from tinylm_hf.modeling_tinylm import TinyLMForCausalLM

from .conftest import ROOT, VALID_SAMPLE, run_script

TEXT = "Once upon a time, there was a little dog named Max. Max liked to play with his red ball."


@pytest.fixture(scope="module", params=["llama", "gpt", "qwen3"])
def exported(request, random_model_dirs, tmp_path_factory):
    source = random_model_dirs[request.param]
    out = tmp_path_factory.mktemp("onnx") / request.param
    report = onnx_folder(str(source), str(out), quantize="q8")
    return source, out, report


def test_onnx_logits_equal_pytorch_for_a_prompt_and_each_decode_step(exported):
    source, out, report = exported
    model = TinyLMForCausalLM.from_pretrained(source).eval()  # the oracle: our own model, not the conversion
    session = onnxruntime.InferenceSession(str(out / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    from tinylm_hf.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(str(source))
    ids = tokenizer(tokenizer.bos_token + TEXT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    logits, past = run_onnx(session, np.array([ids[:10]]), None, model.config)
    assert np.abs(logits[0] - expected[:10]).max() < 1e-4
    for t in range(10, len(ids)):  # one token at a time through the cache
        logits, past = run_onnx(session, np.array([[ids[t]]]), past, model.config)
        assert np.abs(logits[0, -1] - expected[t]).max() < 1e-4
    assert past[0].shape[2] == len(ids) and report["max_abs_diff"] < 1e-4


def test_greedy_generation_through_onnx_runtime_equals_generate(exported):
    source, out, _ = exported
    model = TinyLMForCausalLM.from_pretrained(source).eval()
    session = onnxruntime.InferenceSession(str(out / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    from tinylm_hf.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(str(source))
    prompt = tokenizer(tokenizer.bos_token + "Once upon a time", add_special_tokens=False)["input_ids"]
    expected = model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, min_new_tokens=20,
                              pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
    assert len(set(expected)) > 3  # a varied continuation, which a wrong cache would change
    logits, past = run_onnx(session, np.array([prompt]), None, model.config)
    got = []
    for _ in range(20):
        got.append(int(logits[0, -1].argmax()))
        logits, past = run_onnx(session, np.array([[got[-1]]]), past, model.config)
    assert got == expected


def test_the_folder_is_what_transformers_js_reads(exported):
    source, out, _ = exported
    ours = TinyLMConfig.from_pretrained(source)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == ("gpt2" if ours.family == "gpt" else "qwen3" if ours.qk_norm else "llama")
    assert {"tokenizer.json", "tokenizer_config.json", "generation_config.json"} <= {p.name for p in out.iterdir()}
    assert "chat_template" in json.loads((out / "tokenizer_config.json").read_text())  # not only in a .jinja file
    graph = onnx.load(str(out / "onnx" / "model.onnx")).graph
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*graph.input, *graph.output]}
    heads = config.get("num_key_value_heads") or config.get("n_head")
    head_size = (config.get("hidden_size") or config["n_embd"]) // (config.get("num_attention_heads") or config["n_head"])
    assert dims["input_ids"] == ["batch_size", "sequence_length"]
    assert dims["attention_mask"] == ["batch_size", "total_sequence_length"]
    assert dims["past_key_values.0.key"] == ["batch_size", heads, "past_sequence_length", head_size]
    assert dims["present.0.value"] == ["batch_size", heads, "total_sequence_length", head_size]
    assert dims["logits"][:2] == ["batch_size", "sequence_length"]


def test_the_check_scores_each_graph_against_the_model_on_real_text(tiny_model_dir, tmp_path):
    """fp32, 8-bit and 4-bit graphs read the same validation stories as the model: the fp32 graph is the model (the
    oracle), the 8-bit one loses less than the 4-bit one, each still ranks the model's top token first nearly
    everywhere, and every matrix (the tied head and the embedding too) is stored quantized: the 4-bit graph reads
    the embedding from the head's 4-bit copy, the position table in 8 bits (GPT-2)."""
    out = tmp_path / "onnx"
    onnx_folder(str(tiny_model_dir), str(out), quantize=["q8", "q4"])
    rows, on = check(str(tiny_model_dir), str(out), max_bytes=4_000)
    write_card(str(out), rows, on)
    card = (out / "README.md").read_text()
    assert '{ dtype: "q4" }' in card and f"| ONNX Runtime model_q4.onnx | {rows[2]['MB']} |" in card
    rows = {r["format"].split()[-1]: r for r in rows}
    assert list(rows) == ["fp32", "model.onnx", "model_q4.onnx", "model_quantized.onnx"] and "bytes of" in on
    fp32, q8, q4 = rows["model.onnx"], rows["model_quantized.onnx"], rows["model_q4.onnx"]
    assert rows["fp32"]["kl"] == 0 and rows["fp32"]["top1"] == 1 and rows["fp32"]["bpb"] > 0
    assert fp32["kl"] < 1e-8 and fp32["top1"] == 1 and fp32["x bpb"] == 1
    assert 1e-6 < q8["kl"] < q4["kl"] < 0.2 and q8["top1"] >= 0.9 and q4["top1"] >= 0.8, rows
    assert 0.95 < q4["x bpb"] < 1.1 and max(q4["MB"], q8["MB"]) < fp32["MB"]  # (a model this tiny is mostly graph)
    for name, ops in (("model_quantized.onnx", {"MatMulInteger"}), ("model_q4.onnx", {"MatMulNBits", "BitShift"})):
        proto = onnx.load(str(out / "onnx" / name))
        assert ops <= {node.op_type for node in proto.graph.node} and float_weights(proto) == [], name
    assert len(float_weights(onnx.load(str(out / "onnx" / "model.onnx")))) > 2


@pytest.mark.parametrize("family", ["llama", "gpt"])
def test_every_weight_becomes_a_constant_matmul_input_with_the_same_logits(random_model_dirs, tmp_path, family):
    """What a 4-bit quantizer takes: the tied head is MatMul(x, Transpose(embedding)) as exported, and GPT-2's layers
    are Gemm; rewritten, the graph computes the same logits."""
    onnx_folder(str(random_model_dirs[family]), str(tmp_path / "onnx"))
    proto = onnx.load(str(tmp_path / "onnx" / "onnx" / "model.onnx"))
    config = TinyLMConfig.from_pretrained(random_model_dirs[family])
    ids = np.array([[0, 5, 9, 3, 7]])

    def logits():
        session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        return run_onnx(session, ids, None, config)[0]

    before = logits()
    gemms = sum(n.op_type == "Gemm" for n in proto.graph.node)
    assert (gemms > 0) == (family == "gpt") and "model.lm_head.weight" in float_weights(proto)
    assert constant_weights(proto) == 1 + gemms
    ops = {n.op_type for n in proto.graph.node}
    assert "Gemm" not in ops and "model.lm_head.weight.transposed" in float_weights(proto)
    assert not any(n.op_type == "Transpose" and n.input[0] == "model.lm_head.weight" for n in proto.graph.node)
    assert np.abs(before - logits()).max() < 1e-5


@pytest.mark.slow
def test_export_errors_are_one_line(tmp_path):
    proc = run_script("-m", "tinylm_hf.export", "onnx", tmp_path / "missing", tmp_path / "out", cwd=ROOT)
    assert proc.returncode == 2 and "is neither a model folder nor a Hub id" in proc.stderr.strip().splitlines()[-1]
    proc = run_script("-m", "tinylm_hf.export", "check", ROOT / "tinylm_hf", tmp_path / "x.gguf", cwd=ROOT)
    assert proc.returncode == 2 and "is neither a model folder nor a Hub id" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "GGUF files are checked by llama.cpp itself: python benchmarks/runtimes.py" in last, last
