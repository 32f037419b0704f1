"""GGUF export, checked by llama.cpp itself (node-llama-cpp's prebuilt binaries): it loads the file, cuts text into
the same token ids as our tokenizer, and continues a prompt greedily as PyTorch's generate() does."""

import gguf
import pytest
import torch

from benchmarks.common import llama_cpp, llama_cpp_log_probs
from tinylm_hf.configuration_tinylm import TinyLMConfig
from tinylm_hf.export.check import compare, model_log_probs, read_stories, windows
from tinylm_hf.export.gguf import llama_rows, write_gguf
from tinylm_hf.modeling_tinylm import TinyLMForCausalLM
from tinylm_hf.tokenizer import load_tokenizer

from .conftest import ROOT, needs_js, run_script

TRICKY = ["Once upon a time, there was a little dog named Max.",
          "In 1999 he paid $3.50 -- 'twice'!?  Wow\n\n  ok 🙂 café naïve",
          "<|endoftext|><|user|>\nWrite a story.<|endoftext|><|assistant|>\n"]


def opening(folder) -> list[int]:
    """The prompt ids: BOS + an opening."""
    tokenizer = load_tokenizer(str(folder))
    return tokenizer(tokenizer.bos_token + "Once upon a time", add_special_tokens=False)["input_ids"]


def shortfalls(folder, prompt: list[int], tokens: list[int]) -> list[float]:
    """For each token llama.cpp chose, how far PyTorch's logit for it falls short of PyTorch's best on the same
    prefix (0: llama.cpp took PyTorch's greedy choice)."""
    model = TinyLMForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1:-1]
    return (logits.max(-1).values - logits[torch.arange(len(tokens)), torch.tensor(tokens)]).tolist()


def test_llama_rows_interleave_the_halves_of_each_head():
    rows = torch.arange(8).reshape(8, 1).numpy()  # 2 heads of 4 rows: halves (0, 1 | 2, 3), (4, 5 | 6, 7)
    assert llama_rows(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.slow
@needs_js
@pytest.mark.parametrize("name", ["llama", "qwen3"])
def test_llama_cpp_continues_the_llama_family_as_pytorch_does(random_model_dirs, tmp_path, name):
    """Plain, and with QK-norm (written as llama.cpp's qwen3: its own rope order and q/k norms). In f32 every token
    llama.cpp picks is PyTorch's greedy choice on the same prefix, but for a tie within float rounding (two logits
    0.006 apart, seen with QK-norm: llama.cpp took the other); a token a broken runtime picks falls ~1.7 short."""
    path = tmp_path / "model.gguf"
    write_gguf(str(random_model_dirs[name]), str(path), "f32")
    assert gguf.GGUFReader(str(path)).fields["general.architecture"].contents() == name
    prompt = opening(random_model_dirs[name])
    tokens = llama_cpp({"model": str(path), "prompt": prompt, "new_tokens": 24, "past_eos": True})["tokens"]
    short = shortfalls(random_model_dirs[name], prompt, tokens)
    assert len(tokens) == 24 and len(set(tokens)) > 5 and max(short) < 0.02, (tokens, short)  # varied: q/k order


@pytest.mark.slow
@needs_js
def test_llama_cpp_cuts_tricky_text_into_our_token_ids(tiny_model_dir, tmp_path):
    path = tmp_path / "model.gguf"
    write_gguf(str(tiny_model_dir), str(path), "f16")
    tokenizer = load_tokenizer(str(tiny_model_dir))
    answer = llama_cpp({"model": str(path), "tokenize": TRICKY})
    assert answer["tokenize"] == [tokenizer(text, add_special_tokens=False)["input_ids"] for text in TRICKY]


@pytest.mark.slow
@needs_js
@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_the_gpt_family_and_smaller_types_load_and_agree_within_rounding(random_model_dirs, tmp_path, kind):
    # llama.cpp's gpt2 path uses tanh-GELU and these types round the weights, so where PyTorch's two best tokens are
    # a hair apart (0.015 logits, seen) llama.cpp may take the other and the continuations part. So each token
    # llama.cpp chose is scored by PyTorch on the same prefix: it must be PyTorch's best or within 0.25 logits of
    # it (rounding costs ~0.01-0.1 here; a token a broken runtime picks is ~1.7 logits, one std, from the best)
    path = tmp_path / f"model-{kind}.gguf"
    report = write_gguf(str(random_model_dirs["gpt"]), str(path), kind)
    prompt = opening(random_model_dirs["gpt"])
    tokens = llama_cpp({"model": str(path), "prompt": prompt, "new_tokens": 16, "past_eos": True})["tokens"]
    short = shortfalls(random_model_dirs["gpt"], prompt, tokens)
    assert len(tokens) == 16 and len(set(tokens)) > 3 and max(short) < 0.25, (tokens, short)
    assert report["tensor_types"][kind.upper()] > 0 and report["tensor_types"]["F32"] > 0  # norms and biases


@pytest.mark.slow
@needs_js
def test_llama_cpp_reads_real_text_as_the_model_does_and_q4_0_loses_a_little(tiny_model_dir, tmp_path):
    """Forced decoding on validation stories, llama.cpp's logits at every position against our model's: the f32
    file is the model (the oracle for the logits path), q8_0 and q4_0 lose a little each, q4_0 more."""
    model = TinyLMForCausalLM.from_pretrained(tiny_model_dir).eval()
    batches, n_bytes = windows(load_tokenizer(str(tiny_model_dir)), read_stories(None, 3_000),
                               model.config.max_position_embeddings)
    reference = model_log_probs(model, batches)
    rows = {}
    for kind in ("f32", "q8_0", "q4_0"):
        path = tmp_path / f"model-{kind}.gguf"
        report = write_gguf(str(tiny_model_dir), str(path), kind)
        rows[kind] = compare(reference, llama_cpp_log_probs(str(path), batches), batches, n_bytes)
    assert rows["f32"]["kl"] < 1e-5 and rows["f32"]["top1"] > 0.99, rows
    assert rows["f32"]["kl"] < rows["q8_0"]["kl"] < rows["q4_0"]["kl"] < 0.2 and rows["q4_0"]["top1"] > 0.8, rows
    assert report["tensor_types"]["Q4_0"] > 0 and report["f16_instead"] == []


def test_rows_that_are_not_whole_blocks_fall_back_to_f16_by_name(tiny_tokenizer, tmp_path):
    config = TinyLMConfig(family="llama", vocab_size=len(tiny_tokenizer), hidden_size=48, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                          bos_token_id=tiny_tokenizer.bos_token_id, eos_token_id=tiny_tokenizer.eos_token_id)
    TinyLMForCausalLM(config).save_pretrained(tmp_path / "model")
    tiny_tokenizer.save_pretrained(tmp_path / "model")
    logged = []
    report = write_gguf(str(tmp_path / "model"), str(tmp_path / "model.gguf"), "q4_0", log=logged.append)
    assert "token_embd.weight" in report["f16_instead"] and "blk.0.ffn_down.weight" not in report["f16_instead"]
    assert report["tensor_types"]["F16"] == len(report["f16_instead"]) and report["tensor_types"]["Q4_0"] == 1
    assert f"{len(report['f16_instead'])} matrices with rows not a multiple of 32 long were written f16: " in logged[0]


def test_the_file_holds_the_tokenizer_and_the_layout_llama_cpp_reads(random_model_dirs, tmp_path):
    path = tmp_path / "model.gguf"
    write_gguf(str(random_model_dirs["llama"]), str(path), "q8_0")
    reader = gguf.GGUFReader(str(path))
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    tokenizer = load_tokenizer(str(random_model_dirs["llama"]))
    assert fields["general.architecture"] == "llama" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.tokens"][:3] == ["<|endoftext|>", "<|pad|>", "<|system|>"]
    assert fields["tokenizer.ggml.token_type"][0] == gguf.TokenType.CONTROL
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    names = {t.name for t in reader.tensors}
    assert "output.weight" not in names and "token_embd.weight" in names  # tied: llama.cpp reads the embedding


@pytest.mark.slow
def test_gguf_errors_are_one_line(random_model_dirs, tmp_path):
    proc = run_script("-m", "tinylm_hf.export", "gguf", tmp_path / "missing", tmp_path / "x.gguf", cwd=ROOT)
    assert proc.returncode == 2 and "is neither a model folder nor a Hub id" in proc.stderr.strip().splitlines()[-1]
    proc = run_script("-m", "tinylm_hf.export", "gguf", random_model_dirs["llama"], tmp_path / "x.gguf", "--type", "q4",
                      cwd=ROOT)
    assert proc.returncode == 2 and "invalid choice: 'q4'" in proc.stderr


def test_the_model_card_lists_the_exported_formats(tiny_model_dir):
    card = (tiny_model_dir / "README.md").read_text()
    for command in ("export onnx MODEL OUT --quantize q8 --quantize q4", "export web MODEL OUT",
                    "export gguf MODEL OUT.gguf --type q4_0", "export executorch MODEL OUT --quantize 8da4w"):
        assert f"tinylm {command}" in card
