"""The steps `run_pretrain.py` and `run_instruct.py` share: output folder checks, the model, the Trainer with our
callbacks, training with resume / NaN guard / interrupt handling, and the final Hub-format folder."""

import contextlib
import errno
import importlib.util
import json
import os
import shutil
import signal

import torch
from transformers import AutoModelForCausalLM, GenerationConfig
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .. import hub
from ..configuration_megabyte import BYTES, MegabyteConfig
from ..configuration_tinylm import TinyLMConfig
from ..errors import UserError
from ..files import written_whole
from ..hardware import default_attention, matmul_peak_flops
from ..loading import load_model
from ..presets import get_preset, is_megabyte
from ..tokenizer import SPECIAL_TOKENS
from . import callbacks as cb
from .budget import BudgetProgressCallback, TimeBudgetCallback
from .dropout import use_byte_dropout
from .trainer import TinyLMTrainer

RUN_MARKER = ".tinylm-run"


def prepare_output_dir(args) -> None:
    """Refuse an output folder that holds something other than one of our runs, unless told to write there."""
    folder = args.output_dir
    if os.path.isdir(folder) and os.listdir(folder) and not os.path.exists(os.path.join(folder, RUN_MARKER)) \
            and not args.overwrite_output_dir:
        raise UserError(f"the output folder {folder} already holds other files: choose another --output_dir, "
                        f"or pass --overwrite_output_dir to write into it anyway")
    if args.process_index == 0:
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, RUN_MARKER), "a").close()


def parse_overrides(text: str | None, config_class=TinyLMConfig) -> dict:
    """'hidden_size=192,family=llama' -> {'hidden_size': 192, 'family': 'llama'}; a MEGABYTE stack's field by its
    sub-config: 'global_config.num_hidden_layers=6' -> {'global_config': {'num_hidden_layers': 6}}"""
    out = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--config_overrides: {item!r} is not name=value")
        *outer, key = key.strip().split(".", 1)
        fields = config_class.__dataclass_fields__ if not outer or outer[0] not in config_class.sub_configs \
            else config_class.sub_configs[outer[0]].__dataclass_fields__
        if key not in fields or (outer and outer[0] not in config_class.sub_configs):
            raise UserError(f"--config_overrides: {'.'.join([*outer, key])!r} is not a {config_class.__name__} field")
        try:
            value = json.loads(value)
        except ValueError:
            value = value.strip()
        if outer:
            out.setdefault(outer[0], {})[key] = value
        else:
            out[key] = value
    return out


def attention_for(model_args, args) -> str:
    if model_args.attn_implementation == "auto":
        return default_attention(args.torch_compile)
    return model_args.attn_implementation


def build_model(model_args, tokenizer, block_size: int | None, attention: str = "sdpa"):
    """A fresh model from a preset (vocabulary and special ids from the tokenizer), or a saved one."""
    if model_args.model_name_or_path:
        model = load_model(model_args.model_name_or_path, model_args.revision, attention,
                           model_args.allow_pickle_weights)
        if len(tokenizer) > model.config.vocab_size:
            raise UserError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary is "
                            f"{model.config.vocab_size}: use the tokenizer the model was trained with")
    else:
        megabyte = is_megabyte(model_args.preset)
        if megabyte and len(tokenizer) != BYTES + len(SPECIAL_TOKENS):
            raise UserError(f"--preset {model_args.preset} is a byte model but the tokenizer has {len(tokenizer):,} "
                            f"tokens (the bytes tokenizer: {BYTES + len(SPECIAL_TOKENS)}): drop --tokenizer_name, "
                            f"the run then trains the bytes tokenizer")
        overrides = parse_overrides(model_args.config_overrides, MegabyteConfig if megabyte else TinyLMConfig)
        try:
            config = get_preset(model_args.preset, vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                                bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                                **({"max_position_embeddings": block_size} if block_size else {}), **overrides)
        except ValueError as err:
            raise UserError(f"impossible model shape: {err}") from err
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attention)
    context_length(model.config, block_size)
    model.generation_config = GenerationConfig(
        do_sample=True, temperature=0.8, top_k=40, top_p=0.95, max_new_tokens=200, repetition_penalty=1.0,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    return model


def context_length(config, block_size: int | None) -> int:
    """--block_size, or the model's context when it is not given; longer than the context is a clear error."""
    if block_size and block_size > config.max_position_embeddings:
        raise UserError(f"--block_size {block_size} is larger than the model's context "
                        f"({config.max_position_embeddings}): lower --block_size")
    return block_size or config.max_position_embeddings


def make_trainer(model, args, train_dataset, eval_dataset, tokenizer, data_collator, *, bytes_per_token,
                 sample_prompts: list[str], chat: bool, seq_len: int, after_training: float = 0.0,
                 final_eval_dataset=None):
    """The Trainer with our callbacks; `trainer.samples`, `trainer.nan_guard` and `trainer.budget` (None without a
    --time_budget) are the ones the scripts read back. after_training: seconds the script needs once training is
    over (the time budget keeps them free). final_eval_dataset: where the evaluations during training score a part
    of the validation set (eval_dataset), the whole of it, for the model the run ends with (`final_metrics`).
    The model's nn.Dropout modules become ByteDropout (`training/dropout.py`), in place."""
    if "trackio" in args.report_to and importlib.util.find_spec("trackio") is None:
        raise UserError("--report_to trackio needs the trackio package: pip install trackio")
    peak = matmul_peak_flops(torch.bfloat16 if args.bf16 else torch.float32)
    batch = global_batch_size(args)
    throughput = cb.ThroughputCallback(batch * seq_len, cb.flops_per_token(model, seq_len), peak)
    samples = cb.SamplesCallback(tokenizer, sample_prompts, chat=chat)
    nan_guard = cb.NaNGuardCallback()
    budget = None
    if args.time_budget:
        budget = TimeBudgetCallback(args.started, args.time_budget, after_training=after_training,
                                       eval_guess_steps=len(eval_dataset) / batch / 3,
                                       final_eval_share=len(final_eval_dataset) / len(eval_dataset)
                                       if final_eval_dataset is not None else 0.0,
                                       cap=args.step_cap)
    callbacks = [throughput, cb.BitsPerByteCallback(bytes_per_token), nan_guard, samples, cb.LossPlotCallback(),
                 cb.DataEpochCallback()]
    if args.snapshots:
        callbacks.append(cb.SnapshotCallback())
    if args.auto_weight_decay:
        callbacks.append(cb.PassWeightDecayCallback(len(train_dataset), batch))
    use_byte_dropout(model)  # the same dropout, its masks drawn faster (training/dropout.py)
    trainer = TinyLMTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                               processing_class=tokenizer, data_collator=data_collator,
                               callbacks=callbacks + ([budget] if budget else []))
    trainer.samples, trainer.nan_guard, trainer.budget = samples, nan_guard, budget
    trainer.final_eval_dataset = final_eval_dataset
    handler = trainer.callback_handler.callbacks
    for i, callback in enumerate(handler):
        if budget and type(callback) is ProgressCallback:  # no placeholder total before the budget has planned
            handler[i] = BudgetProgressCallback()
    progress = next((c for c in handler if isinstance(c, ProgressCallback)), None)
    throughput.progress = progress
    if budget:
        budget.progress = progress
    return trainer


def final_metrics(trainer) -> dict:
    """The validation figures of the model that training ended with (the best checkpoint with
    --load_best_model_at_end, else the last step), read from the log rather than evaluated again; evaluated only
    when no evaluation saw that model, or when the evaluations scored a part of the validation set: then on
    `trainer.final_eval_dataset`, the whole of it, as `Trainer.predict` runs (no evaluation callbacks: no second
    sample or snapshot of the same step). Floats rounded to 4 decimals."""
    if trainer.final_eval_dataset is not None:
        output = trainer.evaluation_loop(trainer.get_eval_dataloader(trainer.final_eval_dataset),
                                         description="Final evaluation", prediction_loss_only=True,
                                         metric_key_prefix="eval")
        trainer.callback_handler.on_predict(trainer.args, trainer.state, trainer.control, output.metrics)
        return round_metrics(trainer.add_figures(output.metrics))
    state = trainer.state
    best = trainer.args.load_best_model_at_end and state.best_model_checkpoint is not None
    step = state.best_global_step if best else state.global_step
    logged = [e for e in state.log_history if "eval_loss" in e and e.get("step") == step]
    metrics = {k: v for k, v in logged[-1].items() if k != "step"} if logged else trainer.evaluate()
    return round_metrics(metrics)


def round_metrics(metrics: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def global_batch_size(args) -> int:
    """Sequences per optimizer step, over every process."""
    return args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size


def last_complete_checkpoint(folder: str) -> str | None:
    """The newest checkpoint-N folder that was saved to the end (the Trainer writes trainer_state.json last;
    a checkpoint cut short by a crash lacks it and is skipped)."""
    if not os.path.isdir(folder):
        return None
    steps = sorted((int(name.split("-")[1]) for name in os.listdir(folder)
                    if name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and name.split("-")[1].isdigit()), reverse=True)
    for step in steps:
        path = os.path.join(folder, f"{PREFIX_CHECKPOINT_DIR}-{step}")
        if os.path.exists(os.path.join(path, "trainer_state.json")):
            return path
    return None


def resolve_resume(args) -> str | None:
    value = args.resume_from_checkpoint
    if value is None or value.lower() in ("false", "no", "0", ""):
        return None
    if value.lower() in ("true", "yes", "1", "last"):
        last = last_complete_checkpoint(args.output_dir)
        if last is None:
            raise UserError(f"--resume_from_checkpoint: no checkpoint-* folder in {args.output_dir} to resume from")
        return last
    if not os.path.isdir(value):
        raise UserError(f"--resume_from_checkpoint: {value} is not a checkpoint folder")
    return value


def train(trainer, args) -> None:
    """trainer.train() with resume, the NaN guard's verdict, Ctrl-C (saving first if --save_on_interrupt) and a
    full disk turned into one clear line."""
    resume = resolve_resume(args)
    previous = signal.getsignal(signal.SIGINT)
    interrupt = cb.SaveOnInterruptCallback()
    if args.save_on_interrupt:
        trainer.add_callback(interrupt)

        def on_interrupt(signum, frame):  # finish the current step, then save and stop
            print("\ninterrupted: saving a checkpoint before exiting (Ctrl-C again to exit at once)", flush=True)
            interrupt.requested = True
            signal.signal(signal.SIGINT, previous)

        signal.signal(signal.SIGINT, on_interrupt)
    try:
        with full_disk_in_one_line(args.output_dir, f"writing to {args.output_dir}", "free some space (or lower "
                                   "--save_total_limit) and resume with --resume_from_checkpoint; earlier "
                                   "checkpoints are intact"):
            trainer.train(resume_from_checkpoint=resume)
    finally:
        signal.signal(signal.SIGINT, previous)
    if trainer.nan_guard.tripped:
        step, value = trainer.nan_guard.tripped
        last = last_complete_checkpoint(args.output_dir)
        raise UserError(f"the training loss became {value} at step {step}: stopped without saving; the last good "
                        f"checkpoint is {last or 'none (no checkpoint was saved yet)'}; lower --learning_rate "
                        f"or check the data")
    if interrupt.requested:
        print(f"saved {last_complete_checkpoint(args.output_dir)}; continue with --resume_from_checkpoint true")
        raise KeyboardInterrupt


@contextlib.contextmanager
def full_disk_in_one_line(folder: str, doing: str, fix: str):
    """A full disk under `folder` while `doing` becomes one line saying so and what to do (`fix`)."""
    try:
        yield
    except Exception as err:  # OSError, RuntimeError, safetensors' own error type: whichever writer hit the disk
        if disk_is_full(err, folder):
            raise UserError(f"the disk is full while {doing}: {fix}") from err
        raise


def disk_is_full(err: Exception, folder: str) -> bool:
    """ENOSPC, or an I/O error while the disk has no room left (torch's zip writer hides the errno)."""
    if getattr(err, "errno", None) == errno.ENOSPC or "No space left" in str(err):
        return True
    try:
        return shutil.disk_usage(folder).free < 4 * 2**20
    except OSError:
        return False


def push_if_asked(trainer, args) -> None:
    """--push_to_hub: upload the final folder (the documented Hub files only) to --hub_model_id."""
    if args.push_final_folder and trainer.is_world_process_zero():
        url = hub.push_folder(args.output_dir, args.hub_model_id, revision=args.hub_revision,
                              private=bool(args.hub_private_repo))
        print(f"pushed to the Hub: {url}")


def save_final(trainer, tokenizer, output_dir: str, card, metrics: dict) -> None:
    """The Hub-format folder: weights, config (with auto_map), code files, tokenizer, generation config, model card,
    plot, eval_results.json. Written whole (`files.written_whole`): a crash never leaves a half-written file."""
    if not trainer.is_world_process_zero():
        return
    with full_disk_in_one_line(output_dir, f"saving the model to {output_dir}",
                               "free some space; the checkpoints are intact"):
        with written_whole(output_dir, folder=True) as tmp:
            trainer.model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            card.save(os.path.join(tmp, "README.md"))
            with open(os.path.join(tmp, "eval_results.json"), "w") as f:
                json.dump(metrics, f, indent=2)
