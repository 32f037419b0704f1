"""The ensemble (tinylm_hf/ensemble.py) against its oracle, its members: the probabilities are their weighted mean,
the loss is that mean's and never above the members' mean loss (Jensen), generate() with the members' caches equals
a greedy loop written out over full forwards, and the folder that names the members loads back the same model."""

import json
import math
import re
import shutil

import pytest
import torch
from transformers import TextIteratorStreamer

from tinylm_hf.ensemble import Ensemble, is_ensemble
from tinylm_hf.errors import UserError
from tinylm_hf.loading import load_model

WEIGHTS = [0.3, 0.7]


@pytest.fixture(scope="module")
def members(random_model_dirs):
    return [str(random_model_dirs["llama"]), str(random_model_dirs["gpt"])]  # two families, one tokenizer


@pytest.fixture(scope="module")
def ensemble(members):
    return Ensemble.from_pretrained(members, weights=WEIGHTS)


def prompt(ensemble, text="Once upon a time, Tom"):
    tok = ensemble.tokenizer
    return tok(tok.bos_token + text, add_special_tokens=False, return_tensors="pt")["input_ids"]


@torch.no_grad()
def test_its_probabilities_are_the_weighted_mean_and_its_loss_never_above_the_members_mean(ensemble, members):
    ids = prompt(ensemble, "Lily had a red ball. She played with it in the park every day.")
    singles = [load_model(m).eval()(ids, labels=ids) for m in members]
    mean = sum(w * out.logits.float().softmax(-1) for w, out in zip(WEIGHTS, singles))
    out = ensemble(ids, labels=ids)
    assert torch.allclose(out.logits.exp(), mean, atol=1e-6)
    assert torch.allclose(out.logits.exp().sum(-1), torch.ones(ids.shape), atol=1e-5)  # normalised: log-probs
    by_hand = torch.nn.functional.cross_entropy(mean[0, :-1].log(), ids[0, 1:])
    assert abs(out.loss.item() - by_hand.item()) < 1e-5
    members_mean = sum(w * s.loss.item() for w, s in zip(WEIGHTS, singles))
    assert out.loss.item() <= members_mean and abs(singles[0].loss.item() - singles[1].loss.item()) > 0.1
    one = Ensemble.from_pretrained(members, weights=[1, 0])  # all the weight on one member: that member
    assert torch.allclose(one(ids, labels=ids).loss, singles[0].loss, atol=1e-5)


@torch.no_grad()
def test_generate_with_each_members_cache_equals_greedy_decoding_written_out(ensemble):
    ids = prompt(ensemble)
    cached = ensemble.generate(ids, max_new_tokens=12, do_sample=False, output_scores=True,
                               return_dict_in_generate=True)
    uncached = ensemble.generate(ids, max_new_tokens=12, do_sample=False, use_cache=False)
    by_hand = ids
    for _ in range(12):  # greedy over full forwards: argmax of the mean of the members' probabilities
        probs = sum(w * m(by_hand).logits[:, -1].float().softmax(-1) for w, m in zip(WEIGHTS, ensemble.members))
        by_hand = torch.cat([by_hand, probs.argmax(-1, keepdim=True)], dim=1)
    assert cached.sequences.tolist() == uncached.tolist() == by_hand.tolist()
    assert len(set(by_hand[0, ids.shape[1]:].tolist())) > 3  # it says something, not one token again and again
    assert len(cached.scores) == 12 and cached.scores[0].shape == (1, ensemble.config.vocab_size)


@torch.no_grad()
def test_sampling_and_streaming_go_through_generate(ensemble):
    ids = prompt(ensemble)
    settings = dict(max_new_tokens=16, do_sample=True, temperature=0.9, top_k=20, top_p=0.9)
    torch.manual_seed(3)
    a = ensemble.generate(ids, **settings)
    torch.manual_seed(3)
    b = ensemble.generate(ids, use_cache=False, **settings)
    assert a.tolist() == b.tolist()  # the cache changes nothing, sampling included
    streamer = TextIteratorStreamer(ensemble.tokenizer, skip_prompt=True)
    torch.manual_seed(3)
    c = ensemble.generate(ids, streamer=streamer, **settings)
    assert "".join(streamer) == ensemble.tokenizer.decode(c[0, ids.shape[1]:])


@torch.no_grad()
def test_the_folder_names_its_members_and_loads_back_wherever_it_moves(ensemble, members, tmp_path):
    folder = tmp_path / "ens"
    for i, member in enumerate(members, 1):  # the layout run_pretrain.py --ensemble writes: members inside
        shutil.copytree(member, folder / f"member-{i}")
    inside = Ensemble.from_pretrained([str(folder / "member-1"), str(folder / "member-2")], weights=WEIGHTS)
    inside.save_pretrained(str(folder))
    config = json.loads((folder / "config.json").read_text())
    assert [m["path"] for m in config["members"]] == ["member-1", "member-2"] and config["weights"] == WEIGHTS
    assert is_ensemble(str(folder)) and "`member-2`" in (folder / "README.md").read_text()
    moved = shutil.move(str(folder), str(tmp_path / "moved"))
    again = Ensemble.from_pretrained(moved)
    ids = prompt(ensemble)
    assert torch.equal(again(ids).logits, ensemble(ids).logits)
    with pytest.raises(UserError, match="is an ensemble of models, not one: load it with"):
        load_model(moved)  # the commands that take one model say so in one line
    outside = tmp_path / "outside"
    ensemble.save_pretrained(str(outside))  # members elsewhere: named by their paths
    assert torch.equal(Ensemble.from_pretrained(str(outside))(ids).logits, ensemble(ids).logits)


@torch.no_grad()
def test_the_xray_shows_each_member_beside_the_ensemble_and_where_they_disagree(ensemble, members):
    from tinylm_hf import xray
    from tinylm_hf.xray_html import members_html

    text = "Lily had a red ball. She played with it in the park."
    view = xray.members(ensemble, ensemble.tokenizer, text)
    for row, path in zip(view["members"], members):  # each member's row is that model's own surprisal
        alone = xray.surprisal(load_model(path).eval(), ensemble.tokenizer, text)
        assert [t["bits"] for t in row["tokens"]] == pytest.approx([t["bits"] for t in alone["tokens"]], abs=1e-4)
    assert view["ensemble"]["loss"] == pytest.approx(xray.surprisal(ensemble, ensemble.tokenizer, text)["loss"],
                                                     abs=1e-5)
    ids = prompt(ensemble, text)
    p = torch.stack([m(ids).logits[0, :-1].softmax(-1) for m in ensemble.members])  # (K, T - 1, V)
    mean = sum(w * pk for w, pk in zip(WEIGHTS, p))
    kl = sum(w * (pk * (pk / mean).log()).sum(-1) for w, pk in zip(WEIGHTS, p)) / math.log(2)  # the definition
    assert view["divergence"] == pytest.approx(kl.tolist(), abs=1e-4) and max(view["divergence"]) > 0.05
    assert view["most"] == kl.argsort(descending=True)[:3].tolist()
    page = members_html(view, ["member 1", "member 2"])
    assert page.count("class='xray-member'") == 3 and page.count("class='xray-disagrees'") == 3
    assert page.count("class='xray-member-token'") == 3 * (ids.shape[1] - 1)
    twice = Ensemble.from_pretrained([members[0], members[0]])  # a model with itself: nothing to disagree on
    alike = xray.members(twice, twice.tokenizer, text)
    assert max(alike["divergence"]) < 1e-4 and alike["most"] == []


def test_bad_members_and_weights_get_one_line_errors(members, random_model_dirs, tiny_tokenizer, tmp_path):
    from tinylm_hf.data.embedded import generate_stories
    from tinylm_hf.tokenizer import train_tokenizer

    other = tmp_path / "other"
    shutil.copytree(random_model_dirs["llama"], other)
    train_tokenizer((s.story for s in generate_stories(200, seed=5)), vocab_size=400).save_pretrained(str(other))
    cases = [
        ([members[0], str(other)], None, "different tokenizers: token"),
        ([members[0], str(tmp_path / "missing")], None, "is not there"),
        (members, [1.0], "1 weights for 2 members"),
        (members, [1.0, -1.0], "must be non-negative"),
        ([], None, "at least one member"),
        (str(random_model_dirs["llama"]), None, "not an ensemble"),
    ]
    for given, weights, message in cases:
        with pytest.raises(UserError, match=message) as err:
            Ensemble.from_pretrained(given, weights=weights)
        assert "\n" not in str(err.value)


@pytest.mark.slow
def test_pretrain_trains_members_side_by_side_and_writes_the_ensemble(tmp_path):
    from tinylm_hf.data.tokens import TokenWindows
    from tinylm_hf.training.ensemble import score

    from .conftest import ROOT, TINY_RUN, run_script

    out = tmp_path / "ens"
    proc = run_script(ROOT / "run_pretrain.py", *TINY_RUN, "--max_steps", "12", "--ensemble", "2", "--output_dir",
                      out, check=True)
    log = proc.stdout
    assert re.search(r"ensemble: 2 members side by side, \d+ threads? each", log)
    assert "[member 1] trained 12 steps" in log and "[member 2] trained 12 steps" in log
    results = json.loads((out / "eval_results.json").read_text())
    assert [m["folder"] for m in results["members"]] == ["member-1", "member-2"]
    ensemble = Ensemble.from_pretrained(str(out))
    windows = TokenWindows(str(out / "tokens"), "validation", 128)
    loss, _ = score(ensemble, windows)
    members = [score(member, windows)[0] for member in ensemble.members]
    assert abs(results["eval_loss"] - loss) < 1e-4  # the ensemble scored on every validation window
    assert loss <= sum(members) / 2 and members[0] != members[1]  # Jensen; two different models
    for i in (1, 2):  # each member a complete model folder of its own, on the tokenizer trained once
        assert (out / f"member-{i}" / "model.safetensors").is_file()
        assert not (out / f"member-{i}" / "tokenizer").exists()
    assert [m["path"] for m in json.loads((out / "config.json").read_text())["members"]] == ["member-1", "member-2"]
    first, second = (dict(m.named_parameters()) for m in ensemble.members)
    assert not torch.equal(first["model.embed_tokens.weight"], second["model.embed_tokens.weight"])  # other seeds
    tok = ensemble.tokenizer
    ids = tok(tok.bos_token + "Once upon a time", add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert ensemble.generate(ids, max_new_tokens=5, do_sample=False).shape == (1, ids.shape[1] + 5)

    tuned = tmp_path / "tuned"  # instruction tuning an ensemble tunes each member from its own
    proc = run_script(ROOT / "run_instruct.py", "--model_name_or_path", out, "--output_dir", tuned, "--max_steps", "6",
                      "--embedded_stories", "200", "--eval_prompts", "0", "--per_device_train_batch_size", "8",
                      check=True)
    assert "[member 2] " in proc.stdout and "validation loss" in proc.stdout
    chat = Ensemble.from_pretrained(str(tuned))
    assert chat.tokenizer.chat_template and [m["path"] for m in chat.config.members] == [
        str(tuned / "member-1"), str(tuned / "member-2")]
    for i in (1, 2):  # each tuned from its own pretrained member
        assert (tuned / f"member-{i}" / "model.safetensors").is_file()
        assert str(out / f"member-{i}") in (tuned / f"member-{i}" / "README.md").read_text()
    refused = run_script(ROOT / "run_instruct.py", "--model_name_or_path", out / "member-1", "--output_dir",
                         tmp_path / "x", "--ensemble", "2")
    assert refused.returncode == 2 and "give its folder as --model_name_or_path" in refused.stderr


def test_an_ensemble_run_refuses_what_cannot_work_in_one_line():
    from tinylm_hf.presets import get_preset
    from tinylm_hf.training.arguments import TinyLMTrainingArguments
    from tinylm_hf.training.ensemble import check_members

    with pytest.raises(UserError, match="--ensemble 0: give the number of members"):
        TinyLMTrainingArguments(output_dir="unused", ensemble=0)
    config = get_preset("stories110m")
    with pytest.raises(UserError, match=r"need about [\d.]+ GiB, this machine has [\d.]+ GiB free"):
        check_members(1000, 1, 110_000_000, 32, 1024, config)
    with pytest.raises(UserError, match="without torchrun"):
        check_members(2, 2, 1000, 8, 128, get_preset("debug"))
