"""Our Trainer callbacks: throughput and MFU, sample generations, bits per byte, the loss plot, a NaN guard,
weight decay by passes, snapshots. (The time budget's are in `budget.py`.)

Callbacks that add figures to the logs derive from `LogMetricsCallback`: `TinyLMTrainer.log` calls their
`update_logs` before the logs are recorded and shown, so the figures reach log_history, the progress bar
and every reporter like the Trainer's own.
"""

import json
import math
import os
import time

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from ..configuration_megabyte import MegabyteConfig
from ..files import written_whole
from .budget import UNPLANNED_STEPS
from .generation import complete
from .optimizer import weight_decay_for_passes


class LogMetricsCallback(TrainerCallback):
    def update_logs(self, logs: dict, state, control) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward), counted from the model: 6 per weight a token is multiplied by
    (every parameter outside the embeddings, plus the output head, which a tied model shares with the embedding),
    plus attention's score and value products, 12 * layers * hidden * seq_len (the PaLM paper's accounting). Any
    causal LM of transformers: ours or a stock one."""
    config = model.config
    if isinstance(config, MegabyteConfig):
        return megabyte_flops_per_byte(model, seq_len)
    head = model.get_output_embeddings().weight
    tied = head is model.get_input_embeddings().weight
    weights = model.num_parameters(exclude_embeddings=True) + (head.numel() if tied else 0)
    return 6 * weights + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def megabyte_flops_per_byte(model, seq_len: int) -> float:
    """The same accounting for MEGABYTE: the global model's weights and attention (over seq_len / P patches) once
    per patch of P bytes, the local model's (over P places) and the head once per byte."""
    P, g, l = model.config.patch_size, model.config.global_config, model.config.local_config
    per_patch = model.global_model.num_parameters() + model.global_to_local.weight.numel()
    per_byte = model.local_model.num_parameters(exclude_embeddings=True) + model.lm_head.weight.numel()
    attention = 12 * (g.num_hidden_layers * g.hidden_size * seq_len / P / P + l.num_hidden_layers * l.hidden_size * P)
    return 6 * (per_patch / P + per_byte) + attention


class ThroughputCallback(LogMetricsCallback):
    """tokens/s and model FLOPs utilisation (against a measured matmul peak) in the logs and the progress bar."""

    def __init__(self, tokens_per_step: int, flops_per_token: float, peak_flops: float | None):
        self.tokens_per_step, self.flops_per_token, self.peak_flops = tokens_per_step, flops_per_token, peak_flops
        self.window_start = self.window_steps = None
        self.progress: ProgressCallback | None = None
        self.last = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.window_start, self.window_steps = time.perf_counter(), state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        steps = state.global_step - self.window_steps
        if steps and (state.global_step % max(1, args.logging_steps // 5 or 1) == 0):
            seconds = time.perf_counter() - self.window_start
            self.last = {"tokens_per_sec": round(self.tokens_per_step * steps / seconds, 1)}
            if self.peak_flops:
                self.last["mfu"] = round(self.last["tokens_per_sec"] * self.flops_per_token / self.peak_flops, 4)
            if self.progress is not None and self.progress.training_bar is not None:
                self.progress.training_bar.set_postfix({"tok/s": f"{self.last['tokens_per_sec']:,.0f}",
                                                        **({"mfu": f"{self.last['mfu']:.1%}"} if "mfu" in self.last
                                                           else {})}, refresh=False)

    def on_evaluate(self, args, state, control, **kwargs):
        # evaluation time is not training time: restart the window
        self.window_start, self.window_steps = time.perf_counter(), state.global_step

    on_save = on_evaluate

    def update_logs(self, logs, state, control):
        if "loss" in logs and self.last:
            logs.update(self.last)


class BitsPerByteCallback(LogMetricsCallback):
    """Validation perplexity and bits per byte: loss / ln 2 * tokens / bytes, comparable across tokenizers."""

    def __init__(self, bytes_per_token: float | None):
        self.bytes_per_token = bytes_per_token

    def update_logs(self, logs, state, control):
        if "eval_loss" in logs:
            logs["eval_perplexity"] = round(math.exp(min(logs["eval_loss"], 50)), 3)
            if self.bytes_per_token:
                logs["eval_bpb"] = round(logs["eval_loss"] / math.log(2) / self.bytes_per_token, 4)


class NaNGuardCallback(LogMetricsCallback):
    """A NaN or infinite training loss stops training at once, without saving or evaluating the broken weights:
    the last checkpoint stays the last good one. `tripped` tells the script what happened."""

    def __init__(self):
        self.tripped: tuple[int, float] | None = None

    def update_logs(self, logs, state, control):
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(loss):
            self.tripped = (state.global_step, loss)
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False


class DataEpochCallback(TrainerCallback):
    """The training set's epoch, set at the start of every pass over it, for a dataset that draws by epoch
    (`TokenWindows(random=True)`: other windows at every pass). accelerate's data loader sets it in one process only;
    under torchrun it sets its sampler's, and every pass would draw the first one's windows again."""

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        dataset = getattr(train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(math.floor(state.epoch + 1e-6))  # the whole passes made: 0 at the start, k after k


class PassWeightDecayCallback(TrainerCallback):
    """No --weight_decay given: the weight decay that suits the number of passes the run makes over its training data
    (`optimizer.weight_decay_for_passes`): the planned steps times the windows a step takes, over the windows in the
    training set. Set before every step on the parameter groups whose role is "muon" or "decay" (norms and biases,
    "no_decay", stay at 0; `TinyLMTrainer.create_optimizer` gives every group its role) and on
    `args.weight_decay` (the model card's figure), so a time budget's plan, which moves the steps, moves it too."""

    def __init__(self, windows: int, windows_per_step: int):
        self.windows, self.windows_per_step = windows, windows_per_step
        self.passes: float | None = None  # None until the number of steps is known

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if state.max_steps >= UNPLANNED_STEPS:  # a time budget that has not planned yet: the first, compiling steps
            return
        self.passes = state.max_steps * self.windows_per_step / max(self.windows, 1)
        decay = weight_decay_for_passes(self.passes)
        for group in optimizer.param_groups:
            if group["role"] in ("muon", "decay"):
                group["weight_decay"] = decay
        args.weight_decay = decay


class SnapshotCallback(TrainerCallback):
    """At each evaluation, the weights alone (no optimizer state) in OUTPUT_DIR/snapshots/step-N, so that the X-ray
    (`tinylm_hf.xray`) can show the model as it was at every evaluation of the run. Never pushed to the Hub."""

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if model is None or not state.is_world_process_zero:
            return
        from ..xray import SNAPSHOTS

        with written_whole(os.path.join(args.output_dir, SNAPSHOTS, f"step-{state.global_step}"), folder=True) as tmp:
            model.save_pretrained(tmp)


class SaveOnInterruptCallback(TrainerCallback):
    """--save_on_interrupt: after Ctrl-C (`requested` set by the signal handler), finish the current step,
    save a checkpoint and stop."""

    def __init__(self):
        self.requested = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = control.should_training_stop = True


class SamplesCallback(TrainerCallback):
    """At each evaluation, complete a few fixed prompts; print them and append them to samples.jsonl."""

    def __init__(self, tokenizer, prompts: list[str], max_new_tokens: int = 60, chat: bool = False):
        self.tokenizer, self.prompts, self.max_new_tokens, self.chat = tokenizer, prompts, max_new_tokens, chat
        self.latest: list[dict] = []

    def generate(self, model) -> list[dict]:
        completions = complete(model, self.tokenizer, self.prompts, chat=self.chat, max_new_tokens=self.max_new_tokens)
        return [{"prompt": p, "completion": c} for p, c in zip(self.prompts, completions)]

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if model is None or not state.is_world_process_zero:
            return
        self.latest = self.generate(model)
        with open(os.path.join(args.output_dir, "samples.jsonl"), "a") as f:
            for sample in self.latest:
                f.write(json.dumps({"step": state.global_step, **sample}) + "\n")
        if "trackio" in args.report_to:  # beside the curves in its dashboard (the Trainer's callback started the run)
            import trackio

            trackio.log({"samples": trackio.Table(columns=["step", "prompt", "completion"], data=[
                [state.global_step, sample["prompt"], sample["completion"]] for sample in self.latest])})
        for sample in self.latest:
            print(f"[sample @ step {state.global_step}] {sample['prompt']}|{sample['completion']!r}")


class LossPlotCallback(TrainerCallback):
    """loss_curve.png in the output folder: training and validation loss against steps."""

    def __init__(self, filename: str = "loss_curve.png"):
        self.filename = filename

    def plot(self, log_history: list[dict], path: str) -> str | None:
        train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and math.isfinite(e["loss"])]
        evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
        if not train and not evals:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        if train:
            ax.plot(*zip(*train), label="training loss")
        if evals:
            ax.plot(*zip(*evals), "o-", label="validation loss")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with written_whole(path) as tmp:
            fig.savefig(tmp)
        plt.close(fig)
        return path

    def on_evaluate(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.plot(state.log_history, os.path.join(args.output_dir, self.filename))

    on_train_end = on_evaluate
