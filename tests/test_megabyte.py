"""MEGABYTE: the byte model in patches. Its predictions are causal and the same however a text is cut into calls
(the patches padded, never dropped), generation with its two-level cache equals recomputing, it trains through
run_pretrain.py and run_instruct.py, loads as remote code, shows in the X-ray, and every bad input is one line."""

import json
import math

import pytest
import torch

from tinylm_hf import MegabyteConfig, MegabyteForCausalLM, UserError
from tinylm_hf.presets import get_preset
from tinylm_hf.tokenizer import load_tokenizer
from tinylm_hf.xray import attention, surprisal, tokens

from .conftest import run_script

CONFIG = dict(patch_size=4, max_position_embeddings=64, eos_token_id=0, pad_token_id=1,
              global_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4),
              local_config=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2))
# a tiny pretraining run of the MEGABYTE debug preset (its bytes tokenizer trained on the embedded corpus)
TINY_MEGABYTE = ["--preset", "megabyte-debug", "--embedded_stories", "300", "--max_steps", "30", "--eval_steps", "15",
                 "--save_steps", "15", "--logging_steps", "10", "--per_device_train_batch_size", "8",
                 "--learning_rate", "3e-3"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = MegabyteForCausalLM(MegabyteConfig(**CONFIG)).eval()
    with torch.no_grad():  # weights drawn wide, so that every difference shows in the logits
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


@pytest.fixture(scope="module")
def megabyte_dir(tmp_path_factory):
    from tinylm_hf.training.pretrain import main

    out = tmp_path_factory.mktemp("megabyte") / "model"
    main([*TINY_MEGABYTE, "--output_dir", str(out)])
    return out


@torch.no_grad()
def test_a_prediction_sees_only_the_bytes_before_it(model):
    x = torch.randint(5, 261, (2, 31))
    logits = model(x).logits  # (2, 31, V): position t predicts byte t + 1
    for j in (0, 3, 4, 5, 17, 30):  # inside a patch, at its first and last byte, the last byte
        y = x.clone()
        y[:, j] = (y[:, j] + 1 - 5) % 256 + 5
        changed = (model(y).logits - logits).abs().amax(dim=(0, 2)) > 1e-5
        assert not changed[:j].any(), f"byte {j} changed a prediction before it"
        assert changed[j:].all() if j < 30 else changed[30], f"byte {j} left a later prediction unchanged"


@torch.no_grad()
def test_any_length_is_padded_not_dropped_and_cut_anywhere_the_same(model):
    """Texts of every length modulo the patch size: the prefix's logits are the whole text's, and the loss counts
    every byte (it equals the mean cross-entropy over all T - 1 predictions)."""
    x = torch.randint(5, 261, (1, 29))
    whole = model(x).logits
    for n in (1, 2, 3, 4, 5, 8, 13, 28):
        assert torch.allclose(model(x[:, :n]).logits, whole[:, :n], atol=1e-5), n
    loss = model(x, labels=x).loss
    manual = torch.nn.functional.cross_entropy(whole[0, :-1], x[0, 1:])
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("prompt_length", [1, 4, 6])
def test_generation_with_the_cache_equals_recomputing(model, prompt_length):
    x = torch.randint(5, 261, (1, prompt_length))
    cached = model.generate(x, max_new_tokens=40, do_sample=False, use_cache=True)
    recomputed = model.generate(x, max_new_tokens=40, do_sample=False, use_cache=False)
    assert cached.shape[1] == prompt_length + 40
    assert cached.tolist() == recomputed.tolist()
    # and the cache's logits are the whole text's, byte by byte, across several patches
    out = model(x, use_cache=True)
    steps = [out.logits]
    for t in range(prompt_length, cached.shape[1] - 1):
        steps.append(model(cached[:, t:t + 1], cache=out.cache).logits)
    assert torch.allclose(torch.cat(steps, dim=1), model(cached[:, :-1]).logits, atol=1e-4)


@torch.no_grad()
def test_sampling_and_scores_work_as_for_any_causal_lm(model):
    torch.manual_seed(1)
    out = model.generate(torch.tensor([[7, 8, 9]]), max_new_tokens=10, do_sample=True, temperature=0.8, top_k=20,
                         top_p=0.9, output_scores=True, return_dict_in_generate=True)
    assert out.sequences.shape == (1, 13) and len(out.scores) == 10


@torch.no_grad()
def test_right_padding_leaves_the_text_alone_and_left_padding_is_refused(model):
    x = torch.randint(5, 261, (2, 10))
    mask = torch.ones_like(x)
    mask[1, 7:] = 0  # the second text is 7 bytes, padded on the right
    padded = model(x, attention_mask=mask).logits
    assert torch.allclose(padded[1, :7], model(x[1:, :7]).logits[0], atol=1e-5)
    with pytest.raises(ValueError, match="right-padded batches only"):
        model(x, attention_mask=mask.flip(1))


@pytest.mark.parametrize("fields, needle", [
    (dict(max_position_embeddings=30), "must be a multiple of patch_size=4"),
    (dict(vocab_size=100), "needs the 256 bytes"),
    (dict(global_config=dict(hidden_size=30, num_attention_heads=3)), "not divisible by patch_size=4"),
    (dict(patch_size=0), "patch_size=0 must be a positive integer"),
])
def test_impossible_shapes_are_one_line(fields, needle):
    with pytest.raises(ValueError, match=needle):
        MegabyteConfig(**{**CONFIG, **fields})


@torch.no_grad()
def test_a_context_too_long_is_one_line(model):
    with pytest.raises(ValueError, match="past the context length"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_presets_are_megabyte_models_with_the_bytes_vocabulary():
    config = get_preset("megabyte-quickstart", global_config={"num_hidden_layers": 6})
    assert isinstance(config, MegabyteConfig) and config.vocab_size == 261
    assert config.global_config.num_hidden_layers == 6 and config.global_config.hidden_size == 192  # merged
    assert config.global_config.max_position_embeddings == config.max_position_embeddings // 4 + 1


@pytest.mark.slow
def test_pretraining_writes_a_folder_that_loads_as_remote_code_and_scores_bits_per_byte(megabyte_dir):
    results = json.loads((megabyte_dir / "eval_results.json").read_text())
    # a token is a byte (but the end-of-story tokens, which are no bytes of the text: a few per thousand)
    assert results["eval_bpb"] == pytest.approx(results["eval_loss"] / math.log(2), rel=5e-3)
    card = (megabyte_dir / "README.md").read_text()
    assert "MEGABYTE" in card and "Not exportable" in card
    assert len(load_tokenizer(str(megabyte_dir))) == 261  # the bytes tokenizer, implied by the preset
    check = ("import sys, torch\nfrom transformers import AutoModelForCausalLM\n"
             "m = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
             "ids = torch.tensor([[0, 50, 60, 70, 80, 90, 100]])\n"
             "print(type(m).__module__.startswith('transformers_modules'), 'tinylm_hf' in sys.modules)\n"
             "print(m.generate(ids, max_new_tokens=12, do_sample=False)[0].tolist())")
    proc = run_script("-c", check, megabyte_dir, check=True)
    remote, ours_imported = proc.stdout.split("\n")[0].split()
    assert remote == "True" and ours_imported == "False"
    from tinylm_hf.loading import load_model

    ours = load_model(str(megabyte_dir)).eval()
    expected = ours.generate(torch.tensor([[0, 50, 60, 70, 80, 90, 100]]), max_new_tokens=12, do_sample=False)
    assert proc.stdout.split("\n")[1] == str(expected[0].tolist())


@pytest.mark.slow
def test_the_hub_round_trip_carries_its_four_code_files(megabyte_dir, hub, tmp_path):
    run_script("-m", "tinylm_hf.hub", "push", megabyte_dir, "alice/bytes", env=hub.env, check=True)
    pushed = set(hub.state.repos["alice/bytes"].branches["main"])
    assert {"configuration_megabyte.py", "modeling_megabyte.py", "configuration_tinylm.py", "modeling_tinylm.py"} \
        <= pushed
    load = ("import sys, torch\nfrom transformers import AutoModelForCausalLM\n"
            "m = AutoModelForCausalLM.from_pretrained('alice/bytes', trust_remote_code=True)\n"
            "print(m.generate(torch.tensor([[0, 50, 60]]), max_new_tokens=9, do_sample=False)[0].tolist())")
    env = {**hub.env, "HF_HOME": str(tmp_path / "cache"), "HF_TOKEN": ""}
    remote = run_script("-c", load, env=env, check=True, cwd=tmp_path).stdout.strip().splitlines()[-1]
    from tinylm_hf.loading import load_model

    ours = load_model(str(megabyte_dir)).eval()
    assert remote == str(ours.generate(torch.tensor([[0, 50, 60]]), max_new_tokens=9, do_sample=False)[0].tolist())


@pytest.mark.slow
def test_the_xray_shows_bytes_patches_and_both_attentions(megabyte_dir):
    from tinylm_hf.loading import load_model

    model, tokenizer = load_model(str(megabyte_dir)).eval(), load_tokenizer(str(megabyte_dir))
    text = "Café 🙂!"  # accents and an emoji: one token a byte
    cut = tokens(tokenizer, text, patch_size=4)
    assert cut["count"] == len(text.encode()) and [t["patch"] for t in cut["tokens"]][:5] == [0, 0, 0, 1, 1]
    assert len(surprisal(model, tokenizer, text)["tokens"]) == len(text.encode())
    att = attention(model, tokenizer, text)
    T = len(text.encode()) + 1  # and the beginning-of-text token
    assert [w.shape[-1] for w in att["weights"]] == [T // 4 + 1] * 2 + [T] * 1  # 2 global layers, 1 local one
    local = att["weights"][-1]
    sums = local.sum(-1)  # rows are distributions, but the first patch's: its place 0 (before any byte) is not drawn
    assert torch.allclose(sums[:, 3:], torch.ones_like(sums[:, 3:]), atol=1e-4) and (sums[:, :3] < 1).all()
    assert local[:, 5, :3].abs().max() == 0  # position 5 (patch 1's place 2) sees only its own patch


@pytest.mark.slow
def test_instruction_tuning_a_megabyte_model(megabyte_dir, tmp_path):
    """Chats of many lengths, so that every batch is padded (on the right: padding on the left is refused)."""
    chats = [{"prompt": f"Count to {n}.", "response": " ".join(map(str, range(1, n + 1)))} for n in range(1, 41)]
    (tmp_path / "chats.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    out = tmp_path / "tuned"
    run_script("run_instruct.py", "--model_name_or_path", megabyte_dir, "--dataset", tmp_path / "chats.jsonl",
               "--output_dir", out, "--max_steps", "10", "--eval_steps", "10", "--save_steps", "10",
               "--validation_split_percentage", "20", "--eval_prompts", "4", "--per_device_train_batch_size", "4",
               check=True)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["held_out_prompts"] == 4 and "chrf" in results["tuned"]
    assert load_tokenizer(str(out)).chat_template  # the chat template, over bytes


@pytest.mark.slow
@pytest.mark.parametrize("command", [["export", "onnx"], ["export", "gguf"], ["convert", "--to", "llama"]])
def test_the_exports_and_the_conversion_refuse_it_in_one_line(megabyte_dir, tmp_path, command):
    proc = run_script("-m", "tinylm_hf", *command, megabyte_dir, tmp_path / "out")
    assert proc.returncode != 0
    assert "is a MEGABYTE model, which has no stock architecture" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, needle", [
    (["--tokenizer_type", "bpe"], "is a byte model: it reads raw bytes"),
    (["--config_overrides", "global_config.no_such_field=3"], "'global_config.no_such_field' is not a MegabyteConfig"),
])
def test_bad_flags_for_a_megabyte_run_are_one_line(tmp_path, flags, needle):
    from tinylm_hf.training.pretrain import main

    with pytest.raises(UserError, match=needle):
        main([*TINY_MEGABYTE, *flags, "--output_dir", str(tmp_path / "run")])


def test_a_bpe_tokenizer_for_a_megabyte_run_is_one_line(tmp_path, gpt2_dir):
    from tinylm_hf.training.pretrain import main

    with pytest.raises(UserError, match="is a byte model but the tokenizer has 1,00"):
        main([*TINY_MEGABYTE, "--tokenizer_name", str(gpt2_dir), "--output_dir", str(tmp_path / "run")])


def test_invalid_utf8_sampled_decodes_with_replacement():
    """A byte model may sample half of a character: decoding gives U+FFFD there, never an error."""
    from tinylm_hf.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["héllo"], kind="bytes")
    ids = tokenizer("é", add_special_tokens=False)["input_ids"]
    assert len(ids) == 2  # two bytes
    assert tokenizer.decode(ids[:1] + tokenizer("llo", add_special_tokens=False)["input_ids"]) == "\ufffdllo"
