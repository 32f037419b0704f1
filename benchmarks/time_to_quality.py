#!/usr/bin/env python
"""Time to quality: how good a model each recipe trains in the same wall time, on the same data with the same
tokenizer, measured the same way (validation loss and bits per byte on held-out stories).

    python benchmarks/time_to_quality.py                   # 10 minutes a run (5 runs: about 55 minutes)
    python benchmarks/time_to_quality.py --minutes 3       # shorter runs
    python benchmarks/time_to_quality.py --quick           # a smoke run (the suite's)
    python benchmarks/time_to_quality.py --minutes 4 --lever "--optimizer adamw" --peers LlamaForCausalLM --eager_peers
                                                           # a lever: ours as well with other flags, fewer peers
    python benchmarks/time_to_quality.py --minutes 4 --lever "--tokenizer_type bytes" --lever "--vocab_size 2048" ...
                                                           # a tokenizer lever: that run trains its own, in its time
    python benchmarks/time_to_quality.py --minutes 10 --peers --lever "--preset megabyte-quickstart" \
        --lever "--tokenizer_type bytes"                   # MEGABYTE, the plain byte transformer and the BPE
                                                           # default in one run, no stock peers

Data: the TinyStories sample shipped in the package (`--dataset tinystories-sample`: the first 2 MiB of
`TinyStories-train.txt`, validated on the first 1,000 stories of `TinyStories-valid.txt`; `--train` / `--valid` for
others), one 4,096-token byte-level BPE trained on the training file and one set of token
files, shared by every run (but a lever run that changes the tokenizer: it trains its own within its budget and is
scored on its own tokens of the same validation text; bits per byte make the two comparable). The runs, one process
each, one after the other (never two at once):

- `tinylm`: `python run_pretrain.py --time_budget MINUTES` on those files with every default of this project for
  that budget (the shape: `quickstart`, from 10 minutes `quickstart-deep`; optimizer, schedule, precision, compile,
  attention);
- `LlamaForCausalLM` and `GPT2LMHeadModel` of about the same parameter count, through the `Trainer` with the standard
  small-model recipe (AdamW betas 0.9 / 0.95, weight decay 0.1, learning rate 3e-3, cosine to 10% after a 5%
  warm-up, clipping 1.0, bf16 autocast where the CPU has bf16 units), each with and without `torch_compile`. They
  get the same time budget as ours (`TimeBudgetCallback`: the steps set so that the schedule ends with the
  budget), so the comparison is about the model and the recipe, not about who guessed the step count better; their
  evaluations during training score the same 256 spread validation windows as ours (`--eval_windows`).

Each run's budget counts from the start of its process (imports, loading the token files, compiling, training,
evaluation, saving). Before a compiled run, the same command runs 4 steps untimed, so that every compiled run finds
torch.compile's cache warm, as a second run on a machine does (`--cold` leaves that out: on a fresh machine the first
compiled run then spends 1-2 minutes of its budget compiling, the runs after it seconds). Every final model is then
scored here by one function over the whole validation file.
Prints the table and writes `time_to_quality.json`: a list of rows with `model`, `compiled`, `params`, `steps`,
`tokens`, `eval_loss`, `bpb` (and `ratio`, the row's bits per byte over the better stock Llama's).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import add_results_argument, report  # noqa: E402
from tinylm_hf.data.sources import SAMPLE_FILES  # noqa: E402
from tinylm_hf.presets import is_megabyte  # noqa: E402

STOCK = ("LlamaForCausalLM", "GPT2LMHeadModel")
STOCK_RECIPE = ["--optimizer", "adamw", "--learning_rate", "3e-3", "--adam_beta2", "0.95", "--weight_decay", "0.1",
                "--warmup_steps", "0.05", "--lr_scheduler_type", "cosine_with_min_lr", "--max_grad_norm", "1.0"]
BLOCK, BATCH = 256, 16


def prepare(work: str, data_args) -> tuple[str, str]:
    """The tokenizer and the token files every run shares, described as run_pretrain.py describes them (so its run
    reuses them)."""
    from tinylm_hf.data import sources
    from tinylm_hf.data.tokens import build_token_files
    from tinylm_hf.tokenizer import load_tokenizer, train_tokenizer

    kwargs = data_args.corpus_kwargs(seed=42)  # the Trainer's default seed, which run_pretrain.py keeps
    corpus = sources.load_corpus(data_args.dataset, **kwargs)
    tokenizer_dir, token_dir = os.path.join(work, "tokenizer"), os.path.join(work, "tokens")
    train_tokenizer(sources.texts(corpus["train"]), vocab_size=4096).save_pretrained(tokenizer_dir)
    build_token_files(corpus, load_tokenizer(tokenizer_dir), token_dir, sources.describe(data_args.dataset, **kwargs))
    return tokenizer_dir, token_dir


def stock_model(name: str, vocab: int, tokenizer, minutes: float):
    """A stock model of the shape run_pretrain.py chooses for the budget (`presets.for_budget`: hidden 128, 4 heads,
    4 layers or 6 from 10 minutes), context 256, tied embeddings: the same parameter count as ours, or GPT-2's."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from tinylm_hf.presets import for_budget, get_preset

    ours = get_preset(for_budget(minutes), vocab_size=vocab)
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    if name == "LlamaForCausalLM":
        return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=ours.hidden_size,
                                            intermediate_size=ours.intermediate_size,
                                            num_hidden_layers=ours.num_hidden_layers,
                                            num_attention_heads=ours.num_attention_heads,
                                            max_position_embeddings=BLOCK, tie_word_embeddings=True, **ids))
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=ours.hidden_size, n_layer=ours.num_hidden_layers,
                                      n_head=ours.num_attention_heads, n_positions=BLOCK, **ids))


def train_stock(name: str, compiled: bool, minutes: float, tokenizer_dir: str, token_dir: str, out: str,
                max_steps: int | None = None) -> None:
    """One stock run (in its own process): the Trainer, the standard recipe, the same time budget as ours
    (max_steps: a cap, for the untimed warm-up)."""
    from transformers import default_data_collator

    from tinylm_hf.data.tokens import TokenWindows
    from tinylm_hf.tokenizer import load_tokenizer
    from tinylm_hf.training import run
    from tinylm_hf.training.arguments import DataArguments, TinyLMTrainingArguments, parse_args

    (args,) = parse_args((TinyLMTrainingArguments,), [
        "--output_dir", out, "--time_budget", str(minutes), "--compile", "on" if compiled else "off",
        "--per_device_train_batch_size", str(BATCH), "--disable_tqdm", "true", *STOCK_RECIPE,
        *(["--max_steps", str(max_steps)] if max_steps else [])])
    tokenizer = load_tokenizer(tokenizer_dir)
    model = stock_model(name, len(tokenizer), tokenizer, minutes)
    train, valid = TokenWindows(token_dir, "train", BLOCK), TokenWindows(token_dir, "validation", BLOCK)
    # evaluations during training on the same spread part of the windows as ours (run_pretrain.py's --eval_windows
    # default); the final model is scored by `score` outside the budget, so no final evaluation here
    trainer = run.make_trainer(model, args, train, valid.spread(DataArguments.eval_windows), tokenizer,
                               default_data_collator, bytes_per_token=valid.bytes_per_token, sample_prompts=[],
                               chat=False, seq_len=BLOCK)
    run.train(trainer, args)
    trainer.save_model(out)
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump({"steps": trainer.state.global_step}, f)


def score(folder: str, token_dir: str) -> tuple[float, float, int, int]:
    """Validation loss (nats per token) over every full window of the validation file (windows of the model's
    context: 256 tokens, or a MEGABYTE model's 1,024 bytes), bits per byte, the model's number of parameters and its
    context."""
    from transformers import AutoModelForCausalLM

    import tinylm_hf  # noqa: F401 (our classes, no remote code)
    from tinylm_hf.data.tokens import TokenWindows
    from tinylm_hf.training.ensemble import score as score_windows

    model = AutoModelForCausalLM.from_pretrained(folder)
    context = model.config.max_position_embeddings
    return *score_windows(model, TokenWindows(token_dir, "validation", context)), model.num_parameters(), context


def compiles(name: str, command: list[str]) -> bool:
    """Whether a run (its command line) compiles: a stock run given --compiled, or ours where run_pretrain.py's own
    arguments turn compile on (`--compile auto`: a budget of 3+ minutes, a C++ compiler at hand)."""
    from tinylm_hf.training.arguments import DataArguments, ModelArguments, TinyLMTrainingArguments, parse_args

    if name != "tinylm":
        return "--compiled" in command
    return parse_args((ModelArguments, DataArguments, TinyLMTrainingArguments), command[1:])[2].torch_compile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="the wall time of each run")
    parser.add_argument("--train", default=SAMPLE_FILES[0], help="training text (default: the package's sample)")
    parser.add_argument("--valid", default=SAMPLE_FILES[1], help="validation text (default: the package's sample)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 300 stories, 0.4-minute runs, the compiled stock runs left out")
    parser.add_argument("--lever", action="append", default=[], metavar="FLAGS",
                        help="also run ours with these run_pretrain.py flags (repeatable), to measure a lever; "
                             "one flag alone as --lever=--random_windows")
    parser.add_argument("--peers", nargs="*", choices=STOCK, default=list(STOCK),
                        help="the stock models to run (none: ours and the levers only, ratios to ours)")
    parser.add_argument("--eager_peers", action="store_true", help="leave out the compiled stock runs")
    parser.add_argument("--cold", action="store_true",
                        help="no untimed warm-up before the compiled runs: each finds torch.compile's cache as the "
                             "runs before it left it (a fresh machine: cold)")
    parser.add_argument("--stock", choices=STOCK, help=argparse.SUPPRESS)  # one stock run, in its own process
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max_steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    add_results_argument(parser)
    a = parser.parse_args()
    if a.peers and "LlamaForCausalLM" not in a.peers:
        parser.error("--peers: keep LlamaForCausalLM, the model every ratio is taken against (or name none)")
    if a.stock:
        train_stock(a.stock, a.compiled, a.minutes, os.path.join(a.work, "tokenizer"), os.path.join(a.work, "tokens"),
                    a.out, a.max_steps)
        return
    for path in (a.train, a.valid):
        if not os.path.isfile(path):
            parser.error(f"{path} not found: name existing files with --train / --valid (or leave them out: the "
                         f"TinyStories sample shipped in the package)")
    minutes = 0.4 if a.quick else a.minutes
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    from tinylm_hf.training.arguments import DataArguments

    limit = 300 if a.quick else None
    data_args = DataArguments(dataset=a.train, validation_files=a.valid, max_train_samples=limit,
                              max_eval_samples=limit)
    with tempfile.TemporaryDirectory() as work:
        tokenizer_dir, token_dir = prepare(work, data_args)
        runs = [("tinylm", flags) for flags in ["", *a.lever]] + [
            (name, compiled) for name in a.peers for compiled in (False, True)
            if not ((a.quick or a.eager_peers) and compiled)]
        rows = []
        for number, (name, compiled) in enumerate(runs):
            out = os.path.join(work, f"run-{number}")
            start = time.time()
            flags = compiled if name == "tinylm" else ""
            # a lever that changes the tokenizer trains its own (in the budget), with its own token files
            own_tokenizer = any(flag in flags.split() for flag in ("--tokenizer_type", "--vocab_size")) \
                or any(is_megabyte(word) for word in flags.split())  # a byte model: the bytes tokenizer
            run_tokens = os.path.join(out, "tokens") if own_tokenizer else token_dir
            if name == "tinylm":
                command = [os.path.join(ROOT, "run_pretrain.py"), "--dataset", a.train, "--validation_files", a.valid,
                           *([] if own_tokenizer else ["--tokenizer_name", tokenizer_dir, "--token_dir", token_dir]),
                           "--time_budget", str(minutes), "--output_dir", out, "--disable_tqdm", "true", *flags.split(),
                           *(["--max_train_samples", str(limit), "--max_eval_samples", str(limit)] if limit else [])]
            else:
                command = [os.path.abspath(__file__), "--stock", name, "--minutes", str(minutes), "--work", work,
                           "--out", out, *(["--compiled"] if compiled else [])]
            if not a.cold and compiles(name, command):  # the same run, 4 steps, untimed: a warm cache
                warm = [*command, "--max_steps", "4"] + (["--compile", "on"] if name == "tinylm" else [])
                warm[warm.index("--out" if name != "tinylm" else "--output_dir") + 1] = out + "-warm-up"
                subprocess.run([sys.executable, *warm], cwd=ROOT, env=env, capture_output=True, text=True)
                start = time.time()
            proc = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
            seconds = time.time() - start
            if name == "tinylm":  # the run saves a checkpoint at its last step; its model line says if it compiled
                steps = max(int(p.split("-")[1]) for p in os.listdir(out) if p.startswith("checkpoint-"))
                compiled = ", compiled;" in next(line for line in proc.stdout.splitlines() if line.startswith("model:"))
            else:
                steps = json.load(open(os.path.join(out, "run.json")))["steps"]
            loss, bpb, params, context = score(out, run_tokens)
            rows.append({"model": name, "flags": flags, "compiled": bool(compiled), "params": params, "steps": steps,
                         "tokens": steps * BATCH * context, "seconds": round(seconds), "eval_loss": round(loss, 4),
                         "bpb": round(bpb, 4)})
            print(f"{name} {flags}{' (compiled)' if compiled else ''}: {steps} steps in {seconds:.0f} s, "
                  f"bits per byte {bpb:.4f}", flush=True)
    ours = rows[0]  # with this project's defaults
    llama = min((r["bpb"] for r in rows if r["model"] == "LlamaForCausalLM"), default=None)
    for r in rows:
        r["ratio"] = round(r["bpb"] / (llama or ours["bpb"]), 3)
    extra = {"minutes": minutes, "train": os.path.basename(a.train), "valid": os.path.basename(a.valid)}
    if llama:
        extra |= {"tinylm / best LlamaForCausalLM (bits per byte)": ours["ratio"], "target": 0.90}
    else:
        extra |= {"ratio": "bits per byte over ours with this project's defaults (no stock peers run)"}
    report("time_to_quality", rows, results_dir=a.results_dir, extra=extra)


if __name__ == "__main__":
    main()
