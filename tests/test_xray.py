"""The X-ray library on a real trained model and its real tokenizer, checked against the model's own outputs and
against what generate() really samples from."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tinylm_hf import xray
from tinylm_hf.hub import files_to_push

from .conftest import run_script

TEXT = "Once upon a time, Tom had 42 red balls.\n\tHe smiled 🙂 at the sun."


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def test_tokens_cover_the_text_byte_for_byte_and_group_the_pieces_of_a_character(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    out = xray.tokens(tokenizer, TEXT, context=10)
    toks = out["tokens"]
    assert [t["id"] for t in toks] == tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert toks[0]["bytes"][0] == 0 and toks[-1]["bytes"][1] == len(TEXT.encode()) == out["bytes"]
    groups = {}
    for t in toks:
        groups.setdefault(t["group"], []).append(t)
    assert "".join(tokenizer.decode([t["id"] for t in g]) for g in groups.values()) == TEXT
    emoji = [g for g in groups.values() if tokenizer.decode([t["id"] for t in g]).strip() == "🙂"]
    assert emoji and all(t["partial"] for t in emoji[0]) and len(emoji[0]) > 1  # 4 bytes, no merge for them
    assert not any(t["partial"] for t in toks if t["text"].strip().isalnum())  # whole words are whole characters
    assert any(t["shown"].startswith("·") for t in toks)
    assert any("↵" in t["shown"] for t in toks) and any("⇥" in t["shown"] for t in toks)
    assert [t["in_context"] for t in toks] == [i < 10 for i in range(len(toks))]
    assert out["beyond_context"] == len(toks) - 10
    assert out["bytes_per_token"] == pytest.approx(len(TEXT.encode()) / len(toks))


def test_mean_surprisal_is_the_models_own_loss(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    out = xray.surprisal(model, tokenizer, TEXT)
    ids = tokenizer(tokenizer.bos_token + TEXT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = model(ids, labels=ids)
    assert out["loss"] == pytest.approx(expected.loss.item(), rel=1e-5)
    assert out["mean_bits"] == pytest.approx(out["loss"] / math.log(2))
    assert len(out["tokens"]) == ids.shape[1] - 1
    choices = expected.logits[0, :-1].argmax(-1)
    for row, choice in zip(out["tokens"], choices):
        assert (row["rank"] == 1) == (row["id"] == int(choice))
        assert row["top"][0]["id"] == int(choice) and row["bits"] >= -math.log2(row["top"][0]["p"]) - 1e-5


@pytest.mark.parametrize("settings", [dict(temperature=0.7, top_k=12, top_p=0.9), dict(temperature=1.3, top_p=0.5),
                                      dict(top_k=3)])
def test_next_token_stages_are_what_generate_samples_from(model_and_tokenizer, settings):
    model, tokenizer = model_and_tokenizer
    out = xray.next_token(model, tokenizer, "Once upon a time", **settings)
    names = [s["name"] for s in out["stages"]]
    assert names[0] == "raw" and names[1:] == [n for n, key in (("temperature", "temperature"), ("top-k", "top_k"),
                                                                 ("top-p", "top_p")) if key in settings]
    kept = [s["kept"] for s in out["stages"]]
    assert kept[0] == model.config.vocab_size and kept == sorted(kept, reverse=True)
    if "top_k" in settings:
        assert next(s for s in out["stages"] if s["name"] == "top-k")["kept"] == settings["top_k"]
    for stage in out["stages"]:
        assert stage["probs"].sum().item() == pytest.approx(1.0, abs=1e-5)
    ids = tokenizer(tokenizer.bos_token + "Once upon a time", add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():  # the oracle: the scores generate() really samples from
        gen = model.generate(ids, do_sample=True, max_new_tokens=1, output_scores=True, return_dict_in_generate=True,
                             pad_token_id=tokenizer.pad_token_id, **{"temperature": 1.0, "top_k": 0, "top_p": 1.0,
                                                                      **settings})
    assert torch.allclose(out["stages"][-1]["probs"], gen.scores[0][0].float().softmax(-1), atol=1e-6)


def test_attention_weights_are_causal_distributions(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    out = xray.attention(model, tokenizer, TEXT)
    w = out["weights"]
    c = model.config
    assert w.shape == (c.num_hidden_layers, c.num_attention_heads, len(out["tokens"]), len(out["tokens"]))
    assert torch.allclose(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-5) and w.triu(1).abs().max() == 0


def test_the_logit_lens_ends_at_the_models_own_prediction(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    out = xray.logit_lens(model, tokenizer, TEXT)
    assert len(out["layers"]) == model.config.num_hidden_layers
    ids = tokenizer(tokenizer.bos_token + TEXT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = model(ids).logits[0].float().softmax(-1)
    last = out["layers"][-1]
    for t, position in enumerate(last):
        assert position["top"][0]["id"] == int(probs[t].argmax())
        assert position["p_final"] == pytest.approx(float(probs[t].max()), rel=1e-5)
    assert all(0 <= p["p_final"] <= 1 for layer in out["layers"] for p in layer)


def test_snapshots_of_the_run_show_the_model_learn(tiny_model_dir):
    steps = xray.snapshots(tiny_model_dir)
    assert steps == [20, 40]  # one at each evaluation
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    early, late = (xray.load_snapshot(tiny_model_dir, s) for s in steps)
    text = "Once upon a time, there was a little dog."
    assert xray.surprisal(late, tokenizer, text)["loss"] < xray.surprisal(early, tokenizer, text)["loss"]
    assert not any(f.startswith(xray.SNAPSHOTS) for f in files_to_push(str(tiny_model_dir)))  # never on the Hub


@pytest.mark.slow
def test_the_terminal_view_prints_the_tokens_their_surprisal_and_the_next_token(model_and_tokenizer, tiny_model_dir):
    model, tokenizer = model_and_tokenizer
    text = "Once upon a time, there was a dog."
    proc = run_script("-m", "tinylm_hf.xray", tiny_model_dir, text, "--colour", "never", "--top", "3", check=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = "".join(f"[{xray.visible(tokenizer.decode([i]))}]" for i in ids)
    assert f"{len(ids)} tokens" in proc.stdout and pieces in proc.stdout
    assert f"mean {xray.surprisal(model, tokenizer, text)['mean_bits']:.2f} bits" in proc.stdout
    greedy = xray.next_token(model, tokenizer, text)["stages"][0]["top"][0]["text"]
    assert proc.stdout.split("the next token:\n")[1].split("\n")[0].strip().startswith(repr(greedy))
    steps = xray.snapshots(tiny_model_dir)
    early = run_script("-m", "tinylm_hf.xray", tiny_model_dir, text, "--step", steps[0], "--colour", "never",
                       check=True)
    assert early.stdout != proc.stdout
    bad = run_script("-m", "tinylm_hf.xray", tiny_model_dir, text, "--step", "3")
    assert bad.returncode == 2 and f"(snapshots: {', '.join(map(str, steps))})" in bad.stderr.strip().splitlines()[-1]
