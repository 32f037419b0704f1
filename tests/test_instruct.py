"""Instruction tuning: response-only labels for every data shape, narrow fine-tuning, metrics, bad data."""

import json
import random

import evaluate
import pytest
from datasets import Dataset

from tinylm_hf import UserError
from tinylm_hf.data import instruct
from tinylm_hf.data.records import record_messages
from tinylm_hf.metrics import metric_path

from .conftest import run_script

SHAPES = {
    "messages": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
                              {"role": "assistant", "content": "Hello friend."}]},
    "prompt/response": {"prompt": "Hi there", "response": "Hello friend."},
    "instruction/input/output": {"instruction": "Greet", "input": "Hi there", "output": "Hello friend."},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_prompt_tokens_are_masked_and_response_tokens_kept(tiny_tokenizer, shape):
    chat = instruct.to_chat_dataset(Dataset.from_list([SHAPES[shape]]), random.Random(0))[0]["messages"]
    example = instruct.encode_chat(chat, tiny_tokenizer, max_length=256)
    ids, labels = example["input_ids"], example["labels"]
    learned = [t for t, label in zip(ids, labels) if label != -100]
    assert all(label in (-100, t) for t, label in zip(ids, labels))
    assert learned == tiny_tokenizer("Hello friend.", add_special_tokens=False)["input_ids"] + \
        [tiny_tokenizer.eos_token_id]  # exactly the response and its end-of-text
    first_learned = labels.index(learned[0])
    assert tiny_tokenizer.decode(ids[:first_learned]).endswith("<|assistant|>\n")  # the prompt is all -100


def test_instruct_text_records_are_masked_the_same_way(tiny_tokenizer):
    record = {"features": ["Dialogue"], "words": ["cat", "mat"], "summary": "", "random_sentence": "",
              "story": "A cat sat on a mat."}
    example = instruct.encode_chat(record_messages(record), tiny_tokenizer, 256)
    learned = [t for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
    assert tiny_tokenizer.decode(learned) == "A cat sat on a mat.<|endoftext|>"
    prompt = tiny_tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label == -100])
    assert "Words: cat, mat" in prompt and "Features: Dialogue" in prompt


def test_long_prompts_are_cut_or_dropped_never_left_without_a_response(tiny_tokenizer):
    long_prompt = [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"}]
    assert instruct.encode_chat(long_prompt, tiny_tokenizer, 64) is None
    long_answer = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "story " * 300}]
    cut = instruct.encode_chat(long_answer, tiny_tokenizer, 64)
    assert len(cut["input_ids"]) == 64 and sum(label != -100 for label in cut["labels"]) > 40
    chats = instruct.DatasetDict({"train": Dataset.from_dict({"messages": [long_prompt, long_answer]}),
                                  "validation": Dataset.from_dict({"messages": [long_answer]})})
    notes = []
    encoded = instruct.encode_chats(chats, tiny_tokenizer, 64, log=notes.append)
    assert len(encoded["train"]) == 1 and "dropped 1 of 2" in notes[0]
    only_long = instruct.DatasetDict({"train": Dataset.from_dict({"messages": [long_prompt]}),
                                      "validation": Dataset.from_dict({"messages": [long_answer]})})
    with pytest.raises(UserError, match="longer than the context"):
        instruct.encode_chats(only_long, tiny_tokenizer, 64)


@pytest.mark.parametrize("rows,needle", [
    ([{"question": "q", "answer": "a"}], "unknown data shape (columns: answer, question)"),
    ([{"prompt": "q", "response": ""}], "the response is empty"),
    ([{"prompt": "q", "response": 42}], "response must be text, got int"),
    ([{"messages": [{"role": "user", "content": "hi"}]}], "the last message must be the assistant's"),
    ([{"messages": [{"role": "robot", "content": "hi"}]}], "unknown role 'robot'"),
])
def test_bad_data_fails_with_one_line_naming_the_problem(rows, needle):
    with pytest.raises(UserError) as err:
        instruct.to_chat_dataset(Dataset.from_list(rows * 3), random.Random(0))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_metrics():
    words = evaluate.load(metric_path("word_inclusion"))
    assert words.compute(predictions=["He jumped, hopping with bunnies and baking."],
                         references=[["jump", "hop", "bunny", "bake", "ran"]])["word_inclusion"] == 0.8
    features = evaluate.load(metric_path("feature_adherence"))
    out = features.compute(predictions=['"Hi," said Sam. Sam learned to share.', "No talking here."],
                           references=[["Dialogue", "MoralValue", "BadEnding"], ["Dialogue"]])
    assert out["feature_adherence"] == pytest.approx(2 / 3) and out["Dialogue"] == 0.5 and out["checked"] == 3
    rep = evaluate.load(metric_path("repetition")).compute(predictions=["the dog ran " * 10, "a b c d e f g h"])
    assert rep["distinct_1"] == pytest.approx((3 / 30 + 1) / 2) and rep["repeated_4gram"] > 0.4


PERSONA = {  # a GuppyLM-like persona: a goldfish who answers a handful of topics in its own words
    "food": (["What do you eat?", "What is your favourite food?", "Are you hungry?"],
             "I eat tiny flakes and little worms. Food time is the best time in my bowl."),
    "water": (["Is your water warm?", "Do you like your water?", "How is the water today?"],
              "My water is cool and clean. I swim round and round in it all day."),
    "bubbles": (["Why do you blow bubbles?", "Do you like bubbles?", "Can you make a bubble?"],
                "Blub! I blow small bubbles when I am happy. Each bubble goes pop at the top."),
    "friends": (["Do you have friends?", "Who is your best friend?", "Are you lonely?"],
                "My best friend is the snail on the glass. We watch the castle together."),
    "sleep": (["When do you sleep?", "Are you tired?", "Do fish sleep?"],
              "I sleep when the light goes off. I float still near the green plant."),
}


def persona_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        questions, answer = PERSONA[rng.choice(sorted(PERSONA))]
        rows.append({"prompt": rng.choice(["", "Hi Finn! ", "Hello little fish. "]) + rng.choice(questions),
                     "response": answer})
    return rows


@pytest.mark.slow
def test_own_narrow_data_is_scored_and_the_tuned_model_beats_the_base(tiny_model_dir, tmp_path):
    """Your own prompt/response rows: held-out rows answered by the base and the tuned model, scored against their
    references by chrF and ROUGE-L, in eval_results.json and the card; the samples use the held-out prompts."""
    (tmp_path / "persona.jsonl").write_text("\n".join(json.dumps(r) for r in persona_rows(300, seed=0)))
    out = tmp_path / "tuned"
    run_script("run_instruct.py", "--model_name_or_path", tiny_model_dir, "--dataset", tmp_path / "persona.jsonl",
               "--output_dir", out, "--max_steps", "200", "--eval_steps", "100", "--save_steps", "100",
               "--per_device_train_batch_size", "8", "--learning_rate", "1e-2", "--logging_steps", "10",
               "--eval_prompts", "12", "--validation_split_percentage", "5", check=True)
    results = json.loads((out / "eval_results.json").read_text())
    base, tuned = results["base"], results["tuned"]
    assert results["held_out_prompts"] == 12 and "word_inclusion" not in tuned
    assert tuned["chrf"] > base["chrf"] + 20 and tuned["rouge_l"] > base["rouge_l"] + 0.2, (base, tuned)
    assert tuned["eval_loss"] < 0.7 * base["eval_loss"]
    card = (out / "README.md").read_text()
    assert f"| chrf | {base['chrf']} | {tuned['chrf']} |" in card and "against their reference answers" in card
    assert "| optimizer | Muon (hidden matrices) + AdamW, betas (0.9, 0.95) |" in card
    assert "chat_template.jinja" in {p.name for p in out.iterdir()}
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    questions = {q for qs, _ in PERSONA.values() for q in qs}
    assert samples and all(s["prompt"].split("! ")[-1].split(". ")[-1] in questions for s in samples)


@pytest.mark.slow
def test_own_data_with_an_empty_held_out_part_is_one_line(tiny_model_dir, tmp_path):
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in persona_rows(20, seed=1)))
    proc = run_script("run_instruct.py", "--model_name_or_path", tiny_model_dir, "--dataset", tmp_path / "train.jsonl",
                      "--max_eval_samples", "0", "--output_dir", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "held-out part" in proc.stderr.strip().splitlines()[-1]


def test_chrf_and_rouge_l_modules_agree_with_their_libraries():
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import CHRF

    answers, references = ["I eat flakes and worms.", "Blub blub.", ""], ["I eat tiny flakes.", "Blub!", "Hi."]
    chrf = evaluate.load(metric_path("chrf")).compute(predictions=answers, references=references)
    assert chrf["chrf"] == pytest.approx(CHRF().corpus_score(answers, [references]).score) and 0 < chrf["chrf"] < 100
    assert evaluate.load(metric_path("chrf")).compute(predictions=references, references=references)["chrf"] == 100
    rouge = evaluate.load(metric_path("rouge_l")).compute(predictions=answers, references=references)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    assert rouge["rouge_l"] == pytest.approx(sum(scorer.score(r, a)["rougeL"].fmeasure
                                                 for a, r in zip(answers, references)) / 3)
    f1 = 2 * (3 / 5 * 3 / 4) / (3 / 5 + 3 / 4)  # i eat flakes: 3 of 5 words, 3 of 4
    assert rouge["rouge_l"] == pytest.approx((f1 + 2 / 3 + 0) / 3)  # blub: 1 of 2, 1 of 1; nothing: 0


@pytest.mark.slow
def test_run_instruct_embedded_reports_base_and_tuned(tiny_model_dir, tmp_path):
    out = tmp_path / "instruct"
    run_script("run_instruct.py", "--model_name_or_path", tiny_model_dir, "--output_dir", out, "--max_steps", "20",
               "--eval_steps", "10", "--save_steps", "10", "--embedded_stories", "300", "--eval_prompts", "8",
               "--per_device_train_batch_size", "4", check=True)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["held_out_prompts"] == 8
    for side in ("base", "tuned"):
        assert {"word_inclusion", "feature_adherence", "distinct_1", "distinct_2", "repeated_4gram", "eval_loss"} \
            <= results[side].keys()


@pytest.mark.slow
def test_run_instruct_bad_data_is_one_line(tiny_model_dir, tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"question": "q", "answer": "a"}\n' * 5)
    proc = run_script("run_instruct.py", "--model_name_or_path", tiny_model_dir, "--dataset", tmp_path / "bad.jsonl",
                      "--output_dir", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "accepted shapes are messages" in proc.stderr.strip().splitlines()[-1]


class Stop(Exception):
    pass


@pytest.mark.parametrize("flags,dataset_revision", [(["--revision", "v1"], None),
                                                     (["--revision", "v1", "--dataset_revision", "d2"], "d2")])
def test_the_model_revision_does_not_pin_the_dataset(tiny_model_dir, tmp_path, monkeypatch, flags, dataset_revision):
    from tinylm_hf.data import sources
    from tinylm_hf.training.instruct import main

    seen = {}

    def load_raw(dataset, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(sources, "load_raw", load_raw)
    (tmp_path / "chats.jsonl").write_text('{"prompt": "p", "response": "r"}\n' * 4)
    with pytest.raises(Stop):
        main(["--model_name_or_path", str(tiny_model_dir), "--dataset", str(tmp_path / "chats.jsonl"),
              "--output_dir", str(tmp_path / "out"), *flags])
    assert seen["revision"] == dataset_revision
