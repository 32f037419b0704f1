"""ONNX export: the graph ONNX Runtime runs gives PyTorch's logits, for a prompt and for decode steps through its
KV cache, on both families; the 8-bit graph agrees on the top token; the folder is what transformers.js reads."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from tinylm_hf.configuration_tinylm import TinyLMConfig
from tinylm_hf.export.onnx import onnx_folder, run_onnx
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


def test_8_bit_weights_agree_on_the_top_token_of_real_text(tiny_model_dir, tmp_path):
    out = tmp_path / "onnx"
    onnx_folder(str(tiny_model_dir), str(out), quantize="q8")
    model = TinyLMForCausalLM.from_pretrained(tiny_model_dir).eval()
    from tinylm_hf.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    text = VALID_SAMPLE.read_text()[:600] if VALID_SAMPLE.exists() else TEXT * 4
    ids = tokenizer(tokenizer.bos_token + text, add_special_tokens=False)["input_ids"][:model.config.max_position_embeddings]
    session = onnxruntime.InferenceSession(str(out / "onnx" / "model_quantized.onnx"),
                                           providers=["CPUExecutionProvider"])
    logits, _ = run_onnx(session, np.array([ids]), None, model.config)
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    agreement = (logits[0].argmax(-1) == expected.argmax(-1)).mean()
    assert agreement >= 0.9, agreement
    ops = {node.op_type for node in onnx.load(str(out / "onnx" / "model_quantized.onnx")).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops  # really 8-bit matrix products


@pytest.mark.slow
def test_export_errors_are_one_line(tmp_path):
    proc = run_script("-m", "tinylm_hf.export", "onnx", tmp_path / "missing", tmp_path / "out", cwd=ROOT)
    assert proc.returncode == 2 and "is neither a model folder nor a Hub id" in proc.stderr.strip().splitlines()[-1]
