"""The model: causality, KV cache, padding, conversion oracle, remote code, presets, learning, sampling."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import tinylm_hf
from tinylm_hf import TinyLMConfig, TinyLMForCausalLM
from tinylm_hf.convert import CONVERTERS, from_gpt2, from_llama, to_gpt2, to_llama, to_qwen3
from tinylm_hf.presets import PRESETS, count_parameters, get_preset, table
from tinylm_hf.training.card import model_card

from .conftest import run_script

FAMILIES = {
    "gpt": dict(family="gpt", vocab_size=97, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=64, eos_token_id=1, pad_token_id=2),
    "llama": dict(family="llama", vocab_size=97, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, eos_token_id=1, pad_token_id=2),
}

CONVERSIONS = {  # stock architecture: (our family, config fields, to it, back, its class)
    "gpt2": ("gpt", {}, to_gpt2, from_gpt2, "GPT2LMHeadModel"),
    "llama": ("llama", {}, to_llama, from_llama, "LlamaForCausalLM"),
    "qwen3": ("llama", {"qk_norm": True}, to_qwen3, from_llama, "Qwen3ForCausalLM"),
}


def make(family: str, **kw) -> TinyLMForCausalLM:
    torch.manual_seed(0)
    model = TinyLMForCausalLM(TinyLMConfig(**{**FAMILIES[family], **kw})).eval()
    with torch.no_grad():  # make the weights matter: the default init leaves logits nearly flat
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attn", ["sdpa", "eager", "tinylm_causal_blocks"])
def test_causal_changing_a_token_never_changes_earlier_logits(family, attn):
    model = make(family)
    model.config._attn_implementation = attn
    x = torch.randint(3, 97, (2, 20))
    y = x.clone()
    y[:, 12] = (y[:, 12] + 1) % 97
    with torch.set_grad_enabled(attn == "tinylm_causal_blocks"):  # without gradients it hands over to SDPA
        a, b = model(x).logits.detach(), model(y).logits.detach()
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:], atol=1e-3)  # ...and does change it from t on


@pytest.mark.parametrize("family", FAMILIES)
def test_blocked_causal_attention_equals_sdpa_with_padding_gradients_and_a_cache(family):
    model = make(family, max_position_embeddings=256)
    x = torch.randint(3, 97, (2, 150))  # 150 queries: blocks of 64, 64 and 22 rows
    mask = torch.ones_like(x)
    mask[0, :7] = 0  # left padding
    labels = x.masked_fill(mask == 0, -100)
    labels[0, 7] = -100  # (predicted from the last padding row: padding rows see nothing, their outputs are arbitrary)
    logits, grads = {}, {}
    for attn in ("sdpa", "eager", "tinylm_causal_blocks"):
        model.config._attn_implementation = attn
        model.zero_grad()
        out = model(x, attention_mask=mask, labels=labels)
        out.loss.backward()
        logits[attn] = out.logits[mask.bool()]
        grads[attn] = model.model.layers[0].attn.qkv_proj.weight.grad.clone()
    for attn in ("eager", "tinylm_causal_blocks"):
        assert (logits[attn] - logits["sdpa"]).abs().max() < 1e-4
        assert (grads[attn] - grads["sdpa"]).abs().max() < 1e-4 * grads["sdpa"].abs().max()
    with torch.no_grad():  # without gradients (evaluation) the blocked attention hands over to SDPA's kernel
        assert (model(x, attention_mask=mask).logits[mask.bool()] - logits["sdpa"]).abs().max() < 1e-4
    # a prompt of 140 tokens after 10 cached ones, gradients on (the blocks, not SDPA): blocks offset by the cache
    full = model(x).logits.detach()
    cache = model(x[:, :10], use_cache=True).cache
    rest = model(x[:, 10:], cache=cache, use_cache=True).logits.detach()
    assert (rest - full[:, 10:]).abs().max() < 1e-4


def test_blocked_attention_without_a_mask_is_causal():
    """attention_mask None (a caller that builds none): the causal mask, for a whole sequence and for queries after
    cached keys, with gradients on (the blocks, not the SDPA hand-over), against SDPA given the same mask."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from tinylm_hf.attention import causal_blocks_attention

    module = SimpleNamespace(num_key_value_groups=1, training=False)
    torch.manual_seed(0)
    for T, S in ((150, 150), (20, 30)):  # 150 queries: blocks of 64, 64 and 22 rows; 20 queries after 10 cached
        q = torch.randn(2, 4, T, 8, requires_grad=True)
        k, v = torch.randn(2, 4, S, 8), torch.randn(2, 4, S, 8)
        out, _ = causal_blocks_attention(module, q, k, v, None, scaling=8 ** -0.5)
        allowed = torch.ones(T, S, dtype=torch.bool).tril(S - T)  # query t is position S - T + t
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed).transpose(1, 2)
        assert (out - expected).abs().max() < 1e-5, (T, S)


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_decoding_equals_full_forward(family):
    model = make(family)
    x = torch.randint(3, 97, (2, 24))
    with torch.no_grad():
        full = model(x, use_cache=False).logits
        out = model(x[:, :10], use_cache=True)
        steps = [out.logits]
        cache = out.cache
        for t in range(10, 24):
            out = model(x[:, t:t + 1], cache=cache, use_cache=True)
            cache = out.cache
            steps.append(out.logits)
    assert (torch.cat(steps, 1) - full).abs().max() < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_on_a_cpu_caches_bf16_and_decodes_like_the_full_forward(family):
    model = make(family).to(torch.bfloat16)
    x = torch.randint(3, 97, (2, 24))
    with torch.no_grad():
        full = model(x, use_cache=False).logits
        out = model(x[:, :10], use_cache=True)
        steps = [out.logits]
        for t in range(10, 24):
            out = model(x[:, t:t + 1], cache=out.cache, use_cache=True)
            steps.append(out.logits)
    layer = out.cache.layers[0]
    assert layer.keys.dtype == layer.values.dtype == torch.bfloat16 and layer.keys.shape[2] == 24  # as it comes
    cached = torch.cat(steps, 1)
    assert cached.dtype == torch.bfloat16
    assert (cached.float() - full.float()).abs().max() < 0.05 * full.float().abs().max()


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generate_same_with_and_without_cache(family):
    model = make(family)
    x = torch.randint(3, 97, (1, 6))
    a = model.generate(x, max_new_tokens=20, do_sample=False, use_cache=True, eos_token_id=None)
    b = model.generate(x, max_new_tokens=20, do_sample=False, use_cache=False, eos_token_id=None)
    assert a.shape == (1, 26) and torch.equal(a, b)


@pytest.mark.parametrize("family", FAMILIES)
def test_left_padded_batch_matches_each_prompt_alone(family):
    model = make(family)
    prompts = [torch.randint(3, 97, (n,)) for n in (4, 9, 7)]
    width = max(len(p) for p in prompts)
    ids = torch.full((3, width), 2)
    mask = torch.zeros((3, width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = p, 1
    batch = model.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, eos_token_id=None)
    for i, p in enumerate(prompts):
        alone = model.generate(p[None], max_new_tokens=12, do_sample=False, eos_token_id=None)
        assert torch.equal(batch[i, width:], alone[0, len(p):])


@pytest.mark.parametrize("stock_name", CONVERSIONS)
def test_logits_equal_stock_model_and_round_trip_is_exact(stock_name):
    family, fields, to, back, cls = CONVERSIONS[stock_name]
    model = make(family, **fields)
    stock = to(model)
    assert type(stock).__name__ == cls
    x = torch.randint(3, 97, (2, 30))
    with torch.no_grad():
        assert (model(x).logits - stock(x).logits).abs().max() < 1e-4
        restored = back(stock)
        ours, theirs = model.state_dict(), restored.state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
        assert torch.equal(model(x).logits, restored(x).logits)


@pytest.mark.parametrize("stock_name", CONVERSIONS)
@pytest.mark.parametrize("attn", ["sdpa", "tinylm_causal_blocks"])
def test_hidden_states_and_attention_weights_equal_the_stock_models(stock_name, attn):
    family, fields, to, _, _ = CONVERSIONS[stock_name]
    model = make(family, **fields)
    model.config._attn_implementation = attn  # neither returns weights: asking for them switches to the plain one
    stock = to(model)
    stock.config._attn_implementation = "eager"
    x = torch.randint(3, 97, (2, 30))
    mask = torch.ones_like(x)
    mask[1, :4] = 0  # left padding
    with torch.no_grad():
        ours = model(x, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        theirs = stock(x, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        plain = model(x, attention_mask=mask)
    assert len(ours.hidden_states) == len(theirs.hidden_states) == 3  # the embeddings, then each layer's output
    for a, b in zip(ours.hidden_states, theirs.hidden_states):
        assert (a - b)[mask.bool()].abs().max() < 1e-5
    assert len(ours.attentions) == 2 and ours.attentions[0].shape == (2, 4, 30, 30)
    for a, b in zip(ours.attentions, theirs.attentions):
        assert (a - b).abs().max() < 1e-5
        assert torch.allclose(a.sum(-1), torch.ones(2, 4, 30))  # every row a distribution
        a = a * mask[:, None, :, None]  # (padding rows attend to nothing: their weights are arbitrary)
        assert a.triu(1).abs().max() == 0 and a[1, :, :, :4].abs().max() == 0  # no future, no padding
    assert (ours.logits - plain.logits)[mask.bool()].abs().max() < 1e-5  # the same model either way
    assert model(x).hidden_states is None and model(x).attentions is None  # only when asked for


@pytest.mark.parametrize("family,to,back", [("gpt", to_gpt2, from_gpt2), ("llama", to_llama, from_llama)])
def test_dropout_on_the_residual_branches_and_on_the_attention_weights_apart(family, to, back):
    """`dropout` masks the embeddings and the residual branches, `attention_dropout` the attention weights (rows no
    longer sum to 1); each only in training, each carried to the stock config's field where it has one."""
    x = torch.randint(3, 97, (2, 30))
    for dropout, attention_dropout in [(0.3, 0.0), (0.0, 0.3)]:
        model = make(family, dropout=dropout, attention_dropout=attention_dropout)
        model.config._attn_implementation = "eager"
        with torch.no_grad():
            plain = model(x, output_attentions=True)
            masked = model.train()(x, output_attentions=True)
        assert not torch.allclose(plain.logits, masked.logits)  # each kind of dropout acts in training
        sums = torch.stack([a.sum(-1) for a in masked.attentions])
        assert torch.allclose(sums, torch.ones_like(sums)) == (attention_dropout == 0)
        restored = back(to(model.eval())).config
        assert restored.attention_dropout == attention_dropout  # GPT-2's attn_pdrop, Llama's attention_dropout
        assert restored.dropout == (dropout if family == "gpt" else 0.0)  # Llama has no residual dropout
    with pytest.raises(ValueError, match="attention_dropout=1.0 must be in"):
        TinyLMConfig(attention_dropout=1.0)


@pytest.mark.slow
def test_stock_gpt2_with_the_default_special_ids_beyond_a_small_vocabulary_converts(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=300, n_embd=32, n_layer=2, n_head=4, n_positions=64)  # bos/eos stay 50256
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    proc = run_script("-m", "tinylm_hf.convert", "--from", tmp_path / "gpt2", tmp_path / "ours", check=True)
    assert "bos_token_id=50256" in proc.stderr and "outside the vocabulary" in proc.stderr
    ours = AutoModelForCausalLM.from_pretrained(tmp_path / "ours")
    assert ours.config.bos_token_id is None and ours.config.eos_token_id is None
    stock = GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2")
    x = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        assert (ours(x).logits - stock(x).logits).abs().max() < 1e-4


def test_convert_refuses_the_wrong_family():
    with pytest.raises(tinylm_hf.UserError, match="position_embedding"):
        to_llama(make("gpt"))


def test_importing_a_qwen3_whose_head_size_is_not_derived_refuses_in_one_line():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    stock = Qwen3ForCausalLM(Qwen3Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, head_dim=8))  # as Qwen3's own
    with pytest.raises(tinylm_hf.UserError, match="head_dim=8 is not hidden_size / num_attention_heads"):
        from_llama(stock)


@pytest.mark.slow
@pytest.mark.parametrize("stock_name", ["llama", "qwen3"])
def test_convert_cli_both_ways(tmp_path, stock_name):
    family, fields, *_ = CONVERSIONS[stock_name]
    model = make(family, **fields)
    model.save_pretrained(tmp_path / "ours")
    run_script("-m", "tinylm_hf.convert", "--to", stock_name, tmp_path / "ours", tmp_path / "stock", check=True)
    assert json.loads((tmp_path / "stock" / "config.json").read_text())["model_type"] == stock_name
    run_script("-m", "tinylm_hf.convert", "--from", tmp_path / "stock", tmp_path / "back", check=True)
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "back")
    x = torch.randint(3, 97, (1, 10))
    with torch.no_grad():
        assert torch.equal(model(x).logits, back(x).logits)


LOAD_AND_PRINT = """
import sys, json, torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code={trust})
x = torch.tensor([[5, 9, 11, 40, 3, 7]])
with torch.no_grad():
    logits = model(x).logits
print(json.dumps({{"class": type(model).__module__, "logits": logits.flatten()[:50].tolist(),
                  "tinylm_imported": "tinylm_hf" in sys.modules}}))
"""


@pytest.mark.slow
def test_saved_folder_loads_with_remote_code_in_a_process_without_the_package(tmp_path):
    model = make("llama")
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_tinylm.TinyLMConfig",
                                  "AutoModelForCausalLM": "modeling_tinylm.TinyLMForCausalLM"}
    assert (tmp_path / "modeling_tinylm.py").exists() and (tmp_path / "configuration_tinylm.py").exists()
    assert (tmp_path / "model.safetensors").exists()
    # a fresh process that never imports tinylm_hf, from a folder where the package is not importable
    proc = run_script("-c", LOAD_AND_PRINT.format(trust=True), tmp_path, check=True, cwd=tmp_path,
                      env={"PYTHONPATH": ""})
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["tinylm_imported"] and "tinylm_hf" not in out["class"]
    with torch.no_grad():
        expected = model(torch.tensor([[5, 9, 11, 40, 3, 7]])).logits.flatten()[:50]
    assert torch.allclose(torch.tensor(out["logits"]), expected, atol=1e-5)


def test_after_import_loading_needs_no_remote_code(tmp_path):
    model = make("gpt")
    model.save_pretrained(tmp_path)
    # plant code that would fail if the repository's code were executed
    (tmp_path / "modeling_tinylm.py").write_text("raise RuntimeError('remote code was executed')\n")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is TinyLMForCausalLM
    x = torch.randint(3, 97, (1, 8))
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)


def parameters_by_hand(c: TinyLMConfig) -> int:
    """The parameter count of a config from the architecture's description alone (the oracle for count_parameters)."""
    h, i, d, bias = c.hidden_size, c.intermediate_size, c.head_dim, int(c.bias)
    q, kv = c.num_attention_heads * d, c.num_key_value_heads * d
    attention = h * (q + 2 * kv) + bias * (q + 2 * kv) + q * h + bias * h
    mlp_in = 2 * i if c.mlp == "swiglu" else i  # SwiGLU: gate and up
    mlp = h * mlp_in + bias * mlp_in + i * h + bias * h
    norm = h * (2 if c.family == "gpt" else 1)  # LayerNorm: weight and bias; RMSNorm: weight
    layer = attention + mlp + 2 * norm + (2 * d if c.qk_norm else 0)
    embeddings = c.vocab_size * h + (c.max_position_embeddings * h if c.family == "gpt" else 0)
    head = 0 if c.tie_word_embeddings else c.vocab_size * h
    return embeddings + c.num_hidden_layers * layer + norm + head


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_builds_and_matches_the_table(name):
    config = get_preset(name)
    assert count_parameters(config) == parameters_by_hand(config)
    for untied in ({"tie_word_embeddings": False}, {"qk_norm": True} if config.family == "llama" else {}):
        variant = TinyLMConfig(**{**config.to_dict(), **untied})
        assert count_parameters(variant) == parameters_by_hand(variant), untied
    assert name in table()


@pytest.mark.slow
def test_presets_cli_prints_the_table():
    proc = run_script("-m", "tinylm_hf.presets", check=True)
    assert "quickstart" in proc.stdout and "stories110m" in proc.stdout and "109.53M" in proc.stdout


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(tinylm_hf.UserError, match="quickstart"):
        get_preset("nope")


@pytest.mark.parametrize("kw,names", [
    ({"hidden_size": 50, "num_attention_heads": 4}, ["hidden_size", "num_attention_heads"]),
    ({"num_attention_heads": 4, "num_key_value_heads": 3}, ["num_attention_heads", "num_key_value_heads"]),
    ({"norm": "batchnorm"}, ["norm"]),
    ({"eos_token_id": 5000}, ["eos_token_id", "vocab_size"]),
])
def test_impossible_shapes_raise_naming_the_fields(kw, names):
    with pytest.raises(ValueError) as err:
        TinyLMConfig(**{"hidden_size": 64, **kw})
    assert all(n in str(err.value) for n in names)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_model_can_learn_one_batch(family):
    torch.manual_seed(0)
    model = TinyLMForCausalLM(TinyLMConfig(**FAMILIES[family])).train()
    x = torch.randint(3, 97, (4, 32))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


def test_loss_honours_num_items_in_batch():
    """The Trainer passes num_items_in_batch for gradient accumulation: the loss is a sum divided by it."""
    model = make("gpt")
    x = torch.randint(3, 97, (2, 16))
    mean = model(x, labels=x).loss
    total = model(x, labels=x, num_items_in_batch=torch.tensor(2 * 15 * 2)).loss
    assert torch.allclose(total * 2, mean, atol=1e-5)


def test_forward_in_training_mode_with_labels_returns_the_logits_and_their_loss():
    """The reference model's forward is every transformers model's: logits and the loss from them, in training too."""
    model = make("llama").train()
    x = torch.randint(3, 97, (2, 16))
    out = model(x, labels=x)
    assert out.logits is not None and out.logits.shape == (2, 16, 97)
    assert torch.allclose(out.loss, model.loss_function(logits=out.logits, labels=x, vocab_size=97))


@pytest.mark.parametrize("family,cap", [("gpt", 0.0), ("llama", 0.0), ("llama", 1.0)])
@pytest.mark.parametrize("num_items", [None, 50])
def test_the_fused_training_loss_equals_the_models_own_loss_and_its_gradients(family, cap, num_items):
    """The Trainer's loss (training/loss.py) runs a chunk of rows at a time with its gradients in the same pass (no
    (N, V) logits): same value and gradients as the model's forward with labels (logits -> transformers'
    loss_function), ignored labels included, and through the soft cap c * tanh(logits / c) where the model has one."""
    from tinylm_hf.training.loss import fused_causal_lm_loss

    x = torch.randint(3, 97, (2, 16))
    labels = x.clone()
    labels[0, :5] = -100
    kw = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    model = make(family, logit_softcap=cap).train()
    hidden = model(x, output_hidden_states=True, logits_to_keep=1).hidden_states[-1]
    fused = fused_causal_lm_loss(hidden, model.lm_head.weight, labels, softcap=cap,
                                 chunk_logits=97 * 7, **kw)  # 7 rows a chunk: 5 chunks for 32 rows, the last short
    fused.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    plain = model(x, labels=labels, **kw).loss
    plain.backward()
    assert torch.allclose(fused, plain, atol=1e-6)
    for name, p in model.named_parameters():
        assert torch.allclose(grads[name], p.grad, atol=1e-6, rtol=1e-4), name


OPTIONS = {"qk_norm": dict(qk_norm=True), "logit_softcap": dict(logit_softcap=3.0), "relu2": dict(mlp="relu2")}


def card_of(config) -> str:
    return str(model_card(name="m", summary="", config=config, n_params=1, datasets=[], license="mit",
                          hyperparameters={}, metrics={}, samples=[], plot=None, base_model=None, tags=[]))


@pytest.mark.parametrize("option", OPTIONS)
def test_architecture_options_stay_causal_and_decode_with_a_cache(option):
    model = make("llama", **OPTIONS[option])
    x = torch.randint(3, 97, (2, 20))
    y = x.clone()
    y[:, 12] = (y[:, 12] + 1) % 97
    with torch.no_grad():
        full, changed = model(x, use_cache=False).logits, model(y, use_cache=False).logits
        out = model(x[:, :10], use_cache=True)
        steps = [out.logits]
        for t in range(10, 20):
            out = model(x[:, t:t + 1], cache=out.cache, use_cache=True)
            steps.append(out.logits)
    assert torch.allclose(full[:, :12], changed[:, :12], atol=1e-6)
    assert (torch.cat(steps, 1) - full).abs().max() < 1e-4


@pytest.mark.parametrize("option", ["logit_softcap", "relu2"])
def test_options_without_a_stock_equivalent_refuse_every_conversion_and_the_card_says_so(option):
    model = make("llama", **OPTIONS[option])
    named = option if option != "relu2" else "mlp='relu2'"
    for convert in CONVERTERS.values():
        with pytest.raises(tinylm_hf.UserError, match=named):
            convert(model)
    card = card_of(model.config)
    assert "Not exportable" in card and named in card and "export gguf" not in card


def test_qk_norm_converts_to_qwen3_not_llama_and_the_card_lists_the_exports():
    model = make("llama", qk_norm=True)
    with pytest.raises(tinylm_hf.UserError, match=r"qk_norm=True \(needs False\) \(--to qwen3 takes it\)"):
        to_llama(model)
    with pytest.raises(tinylm_hf.UserError, match="qk_norm=False"):
        to_qwen3(make("llama"))
    card = card_of(model.config)
    assert "Not exportable" not in card and "export gguf" in card and "stock qwen3" in card


def test_qk_norm_makes_attention_blind_to_the_scale_of_each_heads_queries_and_keys():
    """Each head's q and k are RMS-normed before they meet: scaling a head's query (or key) rows of the projection
    leaves the logits as they were, where the model without QK-norm changes."""
    x = torch.randint(3, 97, (2, 16))
    for qk_norm in (True, False):
        model = make("llama", qk_norm=qk_norm, norm_eps=1e-12)  # (the eps would blur the invariance by ~1e-4)
        with torch.no_grad():
            before = model(x).logits
            D = model.config.head_dim
            qkv = model.model.layers[0].attn.qkv_proj.weight
            qkv[:D] *= 5.0  # head 0's queries
            qkv[4 * D:5 * D] *= 0.3  # k/v head 0's keys (4 query heads come first)
            after = model(x).logits
        assert torch.allclose(before, after, atol=1e-4) == qk_norm


def test_logit_softcap_bounds_the_logits_as_c_tanh_of_the_uncapped_ones():
    cap = 1.0
    capped, plain = make("llama", logit_softcap=cap), make("llama")  # same seed: same weights
    x = torch.randint(3, 97, (2, 16))
    with torch.no_grad():
        a, b = capped(x).logits, plain(x).logits
    assert b.abs().max() > cap  # the cap bites
    assert a.abs().max() < cap
    assert torch.allclose(a, cap * torch.tanh(b / cap), atol=1e-5)


def test_sampling_respects_its_arguments_and_stops_at_eos():
    model = make("llama")
    x = torch.randint(3, 97, (1, 5))
    greedy = model.generate(x, do_sample=False, max_new_tokens=15, eos_token_id=None)
    assert greedy.shape[1] == 20  # max_new_tokens
    for kw in ({"top_k": 1}, {"top_p": 1e-6}, {"temperature": 1e-4}):
        sampled = model.generate(x, do_sample=True, max_new_tokens=15, eos_token_id=None, **kw)
        assert torch.equal(sampled, greedy), kw
    torch.manual_seed(0)
    hot = [model.generate(x, do_sample=True, temperature=5.0, top_k=0, max_new_tokens=15, eos_token_id=None)
           for _ in range(3)]
    assert any(not torch.equal(h, greedy) for h in hot)  # high temperature really samples
    # top_k=3: every sampled token is among the 3 most likely at its step
    torch.manual_seed(1)
    out = model.generate(x, do_sample=True, top_k=3, temperature=3.0, max_new_tokens=10, eos_token_id=None,
                         output_scores=True, output_logits=True, return_dict_in_generate=True)
    for step, logits in enumerate(out.logits):
        token = out.sequences[0, 5 + step]
        assert token in logits[0].topk(3).indices
    # stops at EOS: make the first greedy token the EOS token
    eos = int(greedy[0, 5])
    stopped = model.generate(x, do_sample=False, max_new_tokens=15, eos_token_id=eos, pad_token_id=2)
    assert stopped.shape[1] == 6 and stopped[0, -1] == eos


@pytest.mark.parametrize("family", FAMILIES)
def test_activation_checkpointing_gives_the_same_gradients(family):
    x = torch.randint(3, 97, (2, 16))
    grads = []
    for checkpointing in (False, True):
        model = make(family).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.model.layers[0].gradient_checkpointing
        model(x, labels=x).loss.backward()
        grads.append(model.model.layers[0].attn.qkv_proj.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
