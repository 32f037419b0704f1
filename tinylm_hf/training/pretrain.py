"""Pretraining: corpus -> tokenizer -> token files -> Trainer -> a Hub-format model folder.

With no arguments this is the quickstart: the embedded corpus, a tokenizer trained on it, the `quickstart`
preset, a few minutes on a laptop CPU.
"""

import contextlib
import json
import math
import os
import time

from transformers import default_data_collator, set_seed

from ..data import sources
from ..data.tokens import TokenWindows, build_token_files
from ..files import write_json, written_whole
from ..presets import format_count
from ..tokenizer import describe_kind, load_tokenizer, train_tokenizer
from . import ensemble, optimizer, run
from .arguments import DataArguments, ModelArguments, TinyLMTrainingArguments, parse_args
from .card import model_card

SAMPLE_PROMPTS = ["Once upon a time", "One day, a little dog", "Lily and Tom wanted to"]
TOKENIZER_SOURCE = "tinylm_source.json"


def get_tokenizer(model_args, source: str, corpus, args):
    """A named tokenizer, else the model's own, else one trained on the corpus (--tokenizer_type, a byte-level BPE
    by default; kept in OUTPUT_DIR/tokenizer and reused while the corpus, type and vocabulary size stay the same)."""
    if model_args.tokenizer_name:
        return load_tokenizer(model_args.tokenizer_name)
    if model_args.model_name_or_path:
        return load_tokenizer(model_args.model_name_or_path, model_args.revision)
    folder = os.path.join(args.output_dir, "tokenizer")
    kind = describe_kind(model_args.tokenizer_type, model_args.vocab_size)  # names all that decides the tokenizer
    trained_on = {"source": source, "tokenizer": kind}
    try:
        with open(os.path.join(folder, TOKENIZER_SOURCE)) as f:
            if json.load(f) == trained_on:
                return load_tokenizer(folder)
    except (OSError, ValueError):
        pass
    with args.main_process_first(desc="tokenizer"):
        if args.process_index == 0:
            with contextlib.suppress(FileNotFoundError):  # from here on, the folder is not a complete tokenizer
                os.remove(os.path.join(folder, TOKENIZER_SOURCE))
            print(f"training a {kind} on the training corpus")
            tokenizer = train_tokenizer(sources.texts(corpus["train"]), model_args.tokenizer_type,
                                        model_args.vocab_size)
            with written_whole(folder, folder=True) as tmp:
                tokenizer.save_pretrained(tmp)
            write_json(os.path.join(folder, TOKENIZER_SOURCE), trained_on)  # last: the folder is complete
    return load_tokenizer(folder)


def main(argv: list[str]) -> dict:
    model_args, data_args, args = parse_args((ModelArguments, DataArguments, TinyLMTrainingArguments), argv)
    model_args.preset = model_args.preset or args.choices.preset
    run.prepare_output_dir(args)
    args.data_seed = args.member_seed if args.data_seed is None else args.data_seed
    set_seed(args.member_seed)
    corpus = sources.load_corpus(data_args.dataset, **data_args.corpus_kwargs(args.seed))
    source = sources.describe(data_args.dataset, **data_args.corpus_kwargs(args.seed))  # decides what is reused
    tokenizer = get_tokenizer(model_args, source, corpus, args)
    model = run.build_model(model_args, tokenizer, data_args.block_size, run.attention_for(model_args, args))
    block_size = run.context_length(model.config, data_args.block_size)

    token_dir = data_args.token_dir or os.path.join(args.output_dir, "tokens")
    with args.main_process_first(desc="token files"):
        meta = build_token_files(corpus, tokenizer, token_dir, source, num_proc=data_args.preprocessing_num_workers,
                                 rebuild=data_args.rebuild_tokens, owned=data_args.token_dir is None)
    eval_set = TokenWindows(token_dir, "validation", block_size)
    if args.ensemble > 1:  # the members train in processes of their own, on these token files
        ensemble.check_members(args.ensemble, args.world_size, model.num_parameters(),
                               args.per_device_train_batch_size, block_size, model.config)
        shared = ["--token_dir", token_dir, "--compile", "on" if args.torch_compile else "off"]  # as decided here
        if not model_args.model_name_or_path:  # the shape this budget chose, not the one a member's share would
            shared += ["--preset", model_args.preset]
        if not (model_args.tokenizer_name or model_args.model_name_or_path):
            shared += ["--tokenizer_name", os.path.join(args.output_dir, "tokenizer")]
        return ensemble.train_members(argv + shared, args, eval_set=eval_set)
    train_set = TokenWindows(token_dir, "train", block_size, random=data_args.random_windows, seed=args.member_seed)
    eval_during = eval_set.spread(data_args.eval_windows)  # the evaluations during training: a cheaper, even part
    n_params = model.num_parameters()
    length = f"a {args.time_budget:g}-minute budget" if args.time_budget else f"{args.max_steps:,} steps"
    shape = "" if model_args.model_name_or_path else f"the {model_args.preset} preset, "
    print(f"model: {shape}{model.config.family} family, {format_count(n_params)} parameters; {len(train_set):,} "
          f"training windows of {block_size} tokens; precision {'bf16 autocast' if args.bf16 else 'fp32'}"
          f"{', compiled' if args.torch_compile else ''}; {args.world_size} "
          f"process{'es' if args.world_size > 1 else ''}; {length}")

    trainer = run.make_trainer(model, args, train_set, eval_during, tokenizer, default_data_collator,
                               bytes_per_token=eval_set.bytes_per_token, sample_prompts=SAMPLE_PROMPTS, chat=False,
                               seq_len=block_size, final_eval_dataset=None if eval_during is eval_set else eval_set)
    run.train(trainer, args)
    metrics = run.final_metrics(trainer)
    samples = trainer.samples.generate(trainer.model)
    source = sources.hub_id(data_args.dataset)
    card = model_card(
        name=os.path.basename(os.path.abspath(args.output_dir)),
        summary=f"A small language model pretrained from scratch on {data_args.dataset} with tinylm-hf.",
        config=model.config, n_params=n_params, datasets=[source] if source else [],
        license="cdla-sharing-1.0" if "tinystories" in (source or data_args.dataset).lower() else "apache-2.0",
        hyperparameters=hyperparameters(args, block_size, meta, trainer.state.global_step), metrics=metrics,
        samples=samples,
        plot="loss_curve.png" if os.path.exists(os.path.join(args.output_dir, "loss_curve.png")) else None,
        base_model=model_args.model_name_or_path, tags=["tinystories", "pretraining"])
    tokenizer.chat_template = None  # a pretrained model cannot follow chats yet: run_instruct.py adds the template
    run.save_final(trainer, tokenizer, args.output_dir, card, metrics)
    run.push_if_asked(trainer, args)
    if trainer.is_world_process_zero():
        steps = trainer.state.global_step
        budget = f" of a {args.time_budget:g}-minute budget" if args.time_budget else ""
        print(f"\ntrained {steps:,} steps ({steps * run.global_batch_size(args) * block_size:,} tokens) in "
              f"{(time.time() - args.started) / 60:.1f} minutes{budget}")
        print(f"validation loss {metrics['eval_loss']:.3f}, perplexity {math.exp(metrics['eval_loss']):.2f}, "
              f"{metrics.get('eval_bpb', float('nan')):.3f} bits per byte")
        print(f"sample: {SAMPLE_PROMPTS[0]}{samples[0]['completion']}")
        print(f"\nthe model is in {args.output_dir}: load it with "
              f"AutoModelForCausalLM.from_pretrained({args.output_dir!r}, trust_remote_code=True)")
    return metrics


def hyperparameters(args, block_size: int, meta: dict | None, steps: int) -> dict:
    """The card's table: the steps actually run and the tokens they saw (a --time_budget sets the steps)."""
    batch = run.global_batch_size(args)
    out = {"steps": steps, "tokens seen": steps * batch * block_size,
           **({"time budget": f"{args.time_budget:g} minutes"} if args.time_budget else {}),
           "batch size": batch, "block size": block_size, "learning rate": args.learning_rate,
           "schedule": f"{args.lr_scheduler_type} {args.lr_scheduler_kwargs or ''}", "warmup": args.warmup_steps,
           "optimizer": optimizer.describe(args),
           "weight decay": args.weight_decay, "gradient clipping": args.max_grad_norm,
           "precision": "bf16 autocast" if args.bf16 else "fp32", "seed": args.member_seed}
    if meta:
        out["training tokens in corpus"] = meta["splits"]["train"]["tokens"]
        if args.auto_weight_decay:  # chosen by the run (PassWeightDecayCallback): say from what
            passes = out["tokens seen"] / max(out["training tokens in corpus"], 1)
            out["weight decay"] = f"{args.weight_decay:g} (for {passes:.1f} passes over the training tokens)"
    return out

