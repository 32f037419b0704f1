"""Instruction tuning and fine-tuning on narrow data: chats -> chat template -> response-only labels -> Trainer ->
a Hub-format folder, evaluated against the base model on held-out prompts.

With no `--dataset`, it tunes on instruct records from the embedded corpus, continuing the quickstart's
`outputs/quickstart` model, so `python run_pretrain.py && python run_instruct.py` runs offline end to end.
"""

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import ClassVar

import evaluate
from transformers import DataCollatorForSeq2Seq, set_seed

from ..data import instruct, sources
from ..data.records import prompt_text
from ..ensemble import is_ensemble, read_config, resolve_members
from ..errors import UserError
from ..loading import load_model
from ..metrics import metric_path
from ..tokenizer import load_tokenizer
from . import ensemble, optimizer, run
from .arguments import TinyLMTrainingArguments, parse_args
from .card import model_card
from .generation import complete


@dataclass
class InstructModelArguments:
    model_name_or_path: str = field(default="outputs/quickstart", metadata={
        "help": "the pretrained model to tune: a folder or Hub id (default: the quickstart's output)"})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) to pin"})
    attn_implementation: str = field(default="auto", metadata={
        "help": "auto (tinylm_causal_blocks on a CPU under torch.compile, else sdpa) | sdpa | eager | ..."})


@dataclass
class InstructDataArguments:
    dataset: str | None = field(default=None, metadata={
        "help": "embedded (default), roneneldan/TinyStoriesInstruct or its .txt files, a plain story corpus, or "
                "a jsonl/json/parquet/csv/Hub data set of prompt/response, instruction/input/output or messages"})
    dataset_revision: str | None = field(default=None, metadata={
        "help": "Hub revision (branch, tag or commit) of --dataset to pin (--revision pins the model)"})
    data_files: str | None = field(default=None, metadata={"help": "training files inside the dataset"})
    validation_files: str | None = field(default=None, metadata={"help": "validation files"})
    derive_from_stories: bool = field(default=False, metadata={
        "help": "treat `text` as plain stories and derive Words / Random sentence / Dialogue prompts from them"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N training chats"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "use only the first N validation chats"})
    validation_split_percentage: float = field(default=5.0, metadata={"help": "held out when there is no split"})
    embedded_stories: int = field(default=8000, metadata={"help": "stories to generate for the embedded data"})
    block_size: int | None = field(default=None, metadata={
        "help": "longest chat in tokens (default: the model's context); longer chats are cut at the end, and "
                "chats whose prompt alone fills it are dropped (reported)"})
    eval_prompts: int = field(default=64, metadata={
        "help": "held-out prompts the base and the tuned model answer, scored by Words/Features asked for (story "
                "records) or against the reference answers by chrF and ROUGE-L (other data) (0: skip it)"})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "processes for tokenizing"})


@dataclass
class InstructTrainingArguments(TinyLMTrainingArguments):
    output_dir: str = field(default="outputs/quickstart-instruct", metadata={"help": "the model folder to write"})
    compile: str = field(default="off", metadata={
        "help": "torch.compile: off by default here (chats are padded to many lengths: each one recompiles) | on"})
    train_sampling_strategy: str = field(default="group_by_length", metadata={
        "help": "group_by_length (default: batches of chats of similar length, 2%% padding instead of 21%% on the "
                "embedded records, ~1.2x the steps per minute) | random | sequential | batch_rebalance"})
    weight_decay: float | None = field(default=0.1, metadata={
        "help": "decoupled weight decay (fine-tuning keeps the pretrained weights' scale: no choice by passes here)"})
    default_time_budget: ClassVar[float] = 7.0


def held_out_prompts(chats, n: int) -> list[dict]:
    """The first n validation chats as prompts to generate for, with what scores the answers.

    Story records (chats that ask for Words): a short prompt with just the fields the metrics score (Words and
    Features, the chats' own columns), so the comparison is about following them. Any other chats (your own data):
    the chat up to its last turn as the prompt, the last turn as the reference answer."""
    out = []
    if not any(chats["words"]):
        for messages in chats["messages"][:n]:
            out.append({"prompt": messages[:-1], "reference": messages[-1]["content"]})
        return out
    for words, features in zip(chats["words"], chats["features"]):
        if words:
            record = {"words": words, "features": features}
            out.append({"prompt": [{"role": "user", "content": prompt_text(record)}], **record})
        if len(out) == n:
            break
    return out


def generate_answers(model, tokenizer, prompts: list[dict]) -> list[str]:
    """Sampled answers to the held-out prompts (the model's generation defaults at temperature 0.7, fixed seed)."""
    return complete(model, tokenizer, [p["prompt"] for p in prompts], chat=True, max_new_tokens=200, sample=True)


def score(answers: list[str], prompts: list[dict]) -> dict:
    """Story records: the share of asked-for Words used and of Features followed. Other chats: the answers against
    the references by chrF (character n-grams, 0-100) and ROUGE-L (longest common word subsequence, 0-1). Both:
    how repetitive the answers are."""
    if "reference" in prompts[0]:
        references = [p["reference"] for p in prompts]
        chrf = evaluate.load(metric_path("chrf")).compute(predictions=answers, references=references)
        rouge = evaluate.load(metric_path("rouge_l")).compute(predictions=answers, references=references)
        scores = {"chrf": round(chrf["chrf"], 2), "rouge_l": round(rouge["rouge_l"], 4)}
    else:
        words = evaluate.load(metric_path("word_inclusion")).compute(
            predictions=answers, references=[p["words"] for p in prompts])
        features = evaluate.load(metric_path("feature_adherence")).compute(
            predictions=answers, references=[p["features"] for p in prompts])
        scores = {"word_inclusion": round(words["word_inclusion"], 4),
                  "feature_adherence": round(features["feature_adherence"], 4)}
    repetition = evaluate.load(metric_path("repetition")).compute(predictions=answers)
    return {**scores, **{k: round(v, 4) for k, v in repetition.items()}}


def main(argv: list[str]) -> dict:
    model_args, data_args, args = parse_args((InstructModelArguments, InstructDataArguments,
                                              InstructTrainingArguments), argv)
    if not os.path.exists(model_args.model_name_or_path) and model_args.model_name_or_path == "outputs/quickstart":
        raise UserError("no pretrained model at outputs/quickstart: run `tinylm pretrain` first, or pass "
                        "--model_name_or_path")
    run.prepare_output_dir(args)
    if is_ensemble(model_args.model_name_or_path):  # each member tuned from its own, side by side
        bases = [path for path, _ in resolve_members(read_config(model_args.model_name_or_path)["members"],
                                                      model_args.model_name_or_path)]
        args.ensemble = len(bases)
        return ensemble.train_members(argv, args, command="instruct", bases=bases)
    if args.ensemble > 1:
        raise UserError(f"--ensemble {args.ensemble}: instruction tuning tunes the members of an ensemble: give its "
                        f"folder as --model_name_or_path (tinylm pretrain --ensemble K makes one)")
    set_seed(args.seed)
    tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.revision)
    # training batches padded on the right: each chat starts at position 0 as in pretraining (and MEGABYTE's patches
    # stay in place); the answers generated for scoring are padded on the left by `complete` itself
    tokenizer.padding_side = "right"
    if not tokenizer.chat_template:
        raise UserError(f"the tokenizer of {model_args.model_name_or_path} has no chat template")
    model = load_model(model_args.model_name_or_path, model_args.revision, run.attention_for(model_args, args))
    max_length = run.context_length(model.config, data_args.block_size)
    chats = instruct.load_chat(
        data_args.dataset, data_files=data_args.data_files, validation_files=data_args.validation_files,
        revision=data_args.dataset_revision, derive_from_stories=data_args.derive_from_stories,
        max_train_samples=data_args.max_train_samples, max_eval_samples=data_args.max_eval_samples,
        validation_split_percentage=data_args.validation_split_percentage, seed=args.seed,
        embedded_stories=data_args.embedded_stories)
    with args.main_process_first(desc="encoding"):
        encoded = instruct.encode_chats(chats, tokenizer, max_length, data_args.preprocessing_num_workers)
    if len(encoded["validation"]) == 0:
        raise UserError(f"the held-out part of {data_args.dataset or 'embedded'} is empty ({len(chats['validation'])} "
                        f"chats that fit the context): give --validation_files, or raise --validation_split_percentage "
                        f"(now {data_args.validation_split_percentage:g}) or --max_eval_samples")
    prompts = held_out_prompts(chats["validation"], data_args.eval_prompts) if data_args.eval_prompts else []
    generation_start = time.time()
    base_scores = score(generate_answers(model, tokenizer, prompts), prompts) if prompts else {}
    generation_seconds = time.time() - generation_start  # the tuned model's turn comes after training

    mean_length = sum(map(len, encoded["train"]["input_ids"])) / len(encoded["train"])
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, pad_to_multiple_of=8)
    sample_prompts = [p["prompt"][-1]["content"] for p in prompts[:2]] or ["Write a story."]
    trainer = run.make_trainer(model, args, encoded["train"], encoded["validation"], tokenizer, collator,
                               bytes_per_token=None, sample_prompts=sample_prompts, chat=True,
                               seq_len=int(mean_length), after_training=generation_seconds)
    print(f"instruction tuning on {len(encoded['train']):,} chats (mean {mean_length:.0f} tokens), "
          f"loss on the response tokens only")
    base_scores["eval_loss"] = round(trainer.evaluate()["eval_loss"], 4)  # the base model's loss on the responses
    run.train(trainer, args)
    metrics = run.final_metrics(trainer)
    tuned_scores = score(generate_answers(trainer.model, tokenizer, prompts), prompts) if prompts else {}
    tuned_scores["eval_loss"] = metrics["eval_loss"]
    results = {**metrics, "held_out_prompts": len(prompts), "base": base_scores, "tuned": tuned_scores}
    rows = "\n".join(f"| {k} | {base_scores[k]} | {tuned_scores[k]} |" for k in tuned_scores)
    scored = ("against their reference answers (chrf: character n-gram F-score, 0-100; rouge_l: 0-1)"
              if prompts and "reference" in prompts[0] else "for the Words and Features they ask for")
    comparison = (f"## Base model and tuned model, side by side\n\n{len(prompts)} held-out prompts answered by "
                  f"both and scored {scored}; eval_loss is on the validation responses.\n\n"
                  f"| metric | base model | tuned |\n|---|---|---|\n{rows}")
    card = model_card(
        name=os.path.basename(os.path.abspath(args.output_dir)),
        summary=f"{model_args.model_name_or_path} instruction-tuned on {data_args.dataset or 'embedded'} with "
                f"tinylm-hf: prompts go through the tokenizer's chat template, the loss is on the responses only.",
        config=trainer.model.config, n_params=trainer.model.num_parameters(),
        datasets=[d for d in [sources.hub_id(data_args.dataset or "embedded")] if d],
        license="apache-2.0", metrics=metrics, samples=[], base_model=model_args.model_name_or_path,
        hyperparameters={"steps": trainer.state.global_step,
                         "chats seen": trainer.state.global_step * run.global_batch_size(args),
                         **({"time budget": f"{args.time_budget:g} minutes"} if args.time_budget else {}),
                         "optimizer": optimizer.describe(args), "learning rate": args.learning_rate,
                         "batch size": run.global_batch_size(args),
                         "max length": max_length, "seed": args.seed},
        plot="loss_curve.png" if os.path.exists(os.path.join(args.output_dir, "loss_curve.png")) else None,
        tags=["instruction-tuned", "chat"], extra_sections=comparison)
    run.save_final(trainer, tokenizer, args.output_dir, card, results)
    run.push_if_asked(trainer, args)
    if trainer.is_world_process_zero():
        print(json.dumps({"base": base_scores, "tuned": tuned_scores}, indent=1))
        print(f"response loss {metrics['eval_loss']:.3f} (perplexity {math.exp(metrics['eval_loss']):.2f}); "
              f"the model is in {args.output_dir}")
    return results
