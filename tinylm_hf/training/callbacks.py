"""Our Trainer callbacks: throughput and MFU, sample generations, bits per byte, the loss plot, a NaN guard,
a time budget.

Callbacks that add figures to the logs derive from `LogMetricsCallback`: `TinyLMTrainer.log` calls their
`update_logs` before the logs are recorded and shown, so the figures reach log_history, the progress bar
and every reporter like the Trainer's own.
"""

import json
import math
import os
import time

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ProgressCallback


class LogMetricsCallback(TrainerCallback):
    def update_logs(self, logs: dict, state, control) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class TinyLMTrainer(Trainer):
    """The Trainer, with our callbacks' figures merged into each log entry before it is recorded."""

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, LogMetricsCallback):
                callback.update_logs(logs, self.state, self.control)
        super().log(logs, start_time)


def flops_per_token(config, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward): 6 per matmul weight, plus attention's score and value
    products, 12 * layers * hidden * seq_len (the PaLM paper's accounting)."""
    C, L = config.hidden_size, config.num_hidden_layers
    kv = config.num_key_value_heads * config.head_dim
    mlp_in = 2 * config.intermediate_size if config.mlp == "swiglu" else config.intermediate_size
    matmul_weights = L * (C * (C + 2 * kv) + C * C + C * mlp_in + config.intermediate_size * C) + C * config.vocab_size
    return 6 * matmul_weights + 12 * L * C * seq_len


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


class TimeBudgetCallback(TrainerCallback):
    """Stop after `minutes` of training, evaluating and saving first, so a run fits a time box."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.start > self.seconds:
            control.should_training_stop = control.should_evaluate = control.should_save = True


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
        was_training = model.training
        model.eval()
        out = []
        for prompt in self.prompts:
            if self.chat:
                ids = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                         add_generation_prompt=True, return_tensors="pt",
                                                         return_dict=True)["input_ids"]
            else:
                ids = self.tokenizer(self.tokenizer.bos_token + prompt, return_tensors="pt",
                                     add_special_tokens=False)["input_ids"]
            room = model.config.max_position_embeddings - ids.shape[1]  # never past the context
            with torch.no_grad():
                generated = model.generate(ids.to(model.device), max_new_tokens=min(self.max_new_tokens, room),
                                           do_sample=False, pad_token_id=self.tokenizer.pad_token_id,
                                           eos_token_id=self.tokenizer.eos_token_id)
            text = self.tokenizer.decode(generated[0, ids.shape[1]:], skip_special_tokens=True)
            out.append({"prompt": prompt, "completion": text})
        model.train(was_training)
        return out

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if model is None or not state.is_world_process_zero:
            return
        self.latest = self.generate(model)
        with open(os.path.join(args.output_dir, "samples.jsonl"), "a") as f:
            for sample in self.latest:
                f.write(json.dumps({"step": state.global_step, **sample}) + "\n")
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
        tmp = f"{path}.tmp-{os.getpid()}.png"
        fig.savefig(tmp)
        plt.close(fig)
        os.replace(tmp, path)
        return path

    def on_evaluate(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.plot(state.log_history, os.path.join(args.output_dir, self.filename))

    on_train_end = on_evaluate
