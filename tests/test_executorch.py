"""ExecuTorch export, run by ExecuTorch's own Python runtime: the fp32 .pte continues a prompt exactly as PyTorch's
generate() does through its static KV cache, carries the metadata ExecuTorch's LLM runner reads, and the 8-bit /
4-bit one loses little on real text; a missing executorch is one line naming the extra."""

import pytest
import torch

from tinylm_hf.modeling_tinylm import TinyLMForCausalLM
from tinylm_hf.tokenizer import load_tokenizer

from .conftest import ROOT, run_script



def needs_executorch():
    pytest.importorskip("executorch", reason="pip install 'tinylm-hf[executorch]' (.ci/run tests it in an environment "
                        "of its own)")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "gpt"])
def test_the_pte_continues_a_prompt_as_generate_does(random_model_dirs, tmp_path, family):
    needs_executorch()
    from executorch.runtime import Runtime

    from tinylm_hf.export.executorch import executorch_folder, load_method, pte_greedy

    source = random_model_dirs[family]
    report = executorch_folder(str(source), str(tmp_path / "pte"))
    tokenizer = load_tokenizer(str(source))
    prompt = tokenizer(tokenizer.bos_token + "Once upon a time", add_special_tokens=False)["input_ids"]
    model = TinyLMForCausalLM.from_pretrained(source).eval()  # the oracle: our own model, not the conversion
    expected = model.generate(torch.tensor([prompt]), max_new_tokens=20, min_new_tokens=20, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
    tokens, _, _ = pte_greedy(load_method(str(tmp_path / "pte" / "model.pte")), prompt, 20)
    assert tokens == expected and len(set(expected)) > 3 and report["max_abs_diff"] < 1e-4
    program = Runtime.get().load_program(str(tmp_path / "pte" / "model.pte"))
    context = model.config.max_position_embeddings
    assert program.load_method("get_max_seq_len").execute([])[0] == context  # what the LLM runner reads
    assert program.load_method("get_vocab_size").execute([])[0] == model.config.vocab_size
    assert {"tokenizer.json", "README.md", "model.pte"} <= {p.name for p in (tmp_path / "pte").iterdir()}


@pytest.mark.slow
def test_8_bit_activations_and_4_bit_weights_lose_little_on_real_text(tiny_model_dir, tmp_path):
    needs_executorch()
    from tinylm_hf.export.check import check, write_card
    from tinylm_hf.export.executorch import executorch_folder

    executorch_folder(str(tiny_model_dir), str(tmp_path / "q"), quantize="8da4w")
    rows, on = check(str(tiny_model_dir), str(tmp_path / "q"), max_bytes=3_000)
    write_card(str(tmp_path / "q"), rows, on)
    model, pte = rows
    assert pte["format"] == "ExecuTorch model.pte" and 1e-5 < pte["kl"] < 0.2 and pte["top1"] >= 0.8, rows
    assert 0.95 < pte["x bpb"] < 1.1 and pte["new tokens/s"] > 0
    assert "## What it loses" in (tmp_path / "q" / "README.md").read_text()


def test_a_missing_executorch_is_one_line_naming_the_extra(tiny_model_dir, tmp_path):
    (tmp_path / "executorch").mkdir()
    (tmp_path / "executorch" / "__init__.py").write_text("raise ImportError('not installed')\n")
    proc = run_script("-m", "tinylm_hf.export", "executorch", tiny_model_dir, tmp_path / "out",
                      env={"PYTHONPATH": f"{tmp_path}"}, cwd=ROOT)
    assert proc.returncode == 2 and "export needs executorch: pip install 'tinylm-hf[executorch]'" in \
        proc.stderr.strip().splitlines()[-1], proc.stderr
    assert not (tmp_path / "out").exists()
