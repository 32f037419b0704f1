"""Our Trainer callbacks: throughput and MFU, sample generations, bits per byte, the loss plot, a NaN guard,
a time budget that sets the number of steps.

Callbacks that add figures to the logs derive from `LogMetricsCallback`: `TinyLMTrainer.log` calls their
`update_logs` before the logs are recorded and shown, so the figures reach log_history, the progress bar
and every reporter like the Trainer's own.
"""

import json
import math
import os
import time

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import RandomSampler
from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback, get_scheduler
from transformers.trainer_callback import ProgressCallback

from ..errors import UserError
from ..files import written_whole
from .optimizer import MuonAdamW, muon_groups, weight_decay_for_passes


class LogMetricsCallback(TrainerCallback):
    def update_logs(self, logs: dict, state, control) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class TinyLMTrainer(Trainer):
    """The Trainer, with our callbacks' figures merged into each log entry before it is recorded, and, under a
    `TimeBudgetCallback` (`budget`), a learning-rate schedule that follows the budget's number of steps.

    `make_trainer` sets the callbacks the scripts read back as attributes: `samples`, `nan_guard`, `budget`."""

    samples: "SamplesCallback | None" = None
    nan_guard: "NaNGuardCallback | None" = None
    budget: "TimeBudgetCallback | None" = None

    def create_optimizer(self, model=None):
        if self.args.optimizer != "muon" or self.optimizer is not None:
            return super().create_optimizer(model)
        args = self.args
        self.optimizer = MuonAdamW(muon_groups(model or self.model, args.weight_decay), lr=args.learning_rate,
                                   betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon, fused=True)
        return self.optimizer

    def _get_train_sampler(self, train_dataset=None):
        """The Trainer's sampler; a random one draws a whole number of batches per pass: the last, partial batch of a
        pass is left out (other windows each pass), as nanoGPT's fixed-size batches never have one. A batch of another
        shape would make a compiled model compile again, for one step: 54 s on a 2-core EPYC at the end of the
        first pass over the TinyStories sample."""
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is not RandomSampler:
            return sampler
        batch = self.args.per_device_train_batch_size * max(1, self.args.world_size)
        whole = len(sampler.data_source) // batch * batch
        if whole in (0, len(sampler.data_source)):
            return sampler
        return RandomSampler(sampler.data_source, num_samples=whole, generator=sampler.generator)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.budget is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = LambdaLR(optimizer or self.optimizer, self.budget.learning_rate_schedule(self.args))
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def add_figures(self, logs: dict[str, float]) -> dict[str, float]:
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, LogMetricsCallback):
                callback.update_logs(logs, self.state, self.control)
        return logs

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        super().log(self.add_figures(logs), start_time)


def flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward), counted from the model: 6 per weight a token is multiplied by
    (every parameter outside the embeddings, plus the output head, which a tied model shares with the embedding),
    plus attention's score and value products, 12 * layers * hidden * seq_len (the PaLM paper's accounting). Any
    causal LM of transformers: ours or a stock one."""
    config = model.config
    head = model.get_output_embeddings().weight
    tied = head is model.get_input_embeddings().weight
    weights = model.num_parameters(exclude_embeddings=True) + (head.numel() if tied else 0)
    return 6 * weights + 12 * config.num_hidden_layers * config.hidden_size * seq_len


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


UNPLANNED_STEPS = 10**9  # a step count no run reaches: the Trainer's bound, and the marks, until the budget plans


class TimeBudgetCallback(TrainerCallback):
    """--time_budget: the run ends when its budget does, with its learning-rate schedule complete.

    The budget is wall time from `start` (time.time() when the script began: data, tokenizer, compiling, training,
    evaluation and saving all count). From the measured time of a step (the first `skip` steps, which compile, left
    out; the median of the last 50, so a slow step does not swing it), of an evaluation with its checkpoint (until
    one is measured: a guess from the evaluation set's size), and of the work the script still has to do after
    training (`after_training` seconds, and the final model's evaluation when one follows training:
    `final_eval_share` times an evaluation's measured runtime), it sets the number of steps: `total_steps`, which the
    schedule of `TinyLMTrainer` follows, so warm-up and decay end when the budget does. It plans again every `every`
    steps, so a change of speed (a recompilation, another job on the machine) moves the end, not the deadline. `cap`
    (--max_steps) bounds the steps. Under torchrun every rank follows rank 0's plan, so all stop at the same step.
    """

    def __init__(self, start: float, minutes: float, *, eval_guess_steps: float, after_training: float = 0.0,
                 final_eval_share: float = 0.0, cap: int | None = None, skip: int = 2, every: int = 10):
        self.deadline = start + minutes * 60
        self.margin = 3.0 + 0.02 * minutes * 60  # seconds kept free: saving the final folder, the clock's noise
        self.eval_guess_steps, self.after_training, self.cap = eval_guess_steps, after_training, cap
        self.final_eval_share = final_eval_share
        self.eval_runtime: float | None = None  # seconds of the last evaluation's forward passes alone
        self.skip, self.every = skip, every
        self.total_steps = cap or UNPLANNED_STEPS  # until the first plan: only the first, compiling steps run under it
        self.step_times: list[float] = []
        self.eval_cost: float | None = None  # seconds from the end of a step with an evaluation to the next step
        self.step_start = self.step_end = None
        self.evaluated = False
        self.done = {"eval": 0, "save": 0}  # evaluations and checkpoints made at this budget's marks
        self.progress: ProgressCallback | None = None
        self.train_start, self.first_step, self.planned = time.time(), None, False

    def on_train_begin(self, args, state, control, **kwargs):
        state.eval_steps = state.save_steps = UNPLANNED_STEPS  # the marks below, which move with the plan, decide instead
        self.train_start = time.time()

    def on_step_begin(self, args, state, control, **kwargs):
        now = time.time()
        if self.evaluated and self.step_end is not None:
            self.eval_cost = now - self.step_end  # evaluation, samples, checkpoint
        self.evaluated = False
        self.step_start = now

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.evaluated = True
        if metrics and "eval_runtime" in metrics:
            self.eval_runtime = metrics["eval_runtime"]

    def on_step_end(self, args, state, control, **kwargs):
        self.step_end = time.time()
        if self.first_step is None:
            self.first_step = self.step_end - self.train_start  # compiling, for a compiled model
        if state.global_step > self.skip:
            self.step_times = (self.step_times + [self.step_end - self.step_start])[-50:]
        if self.step_times and (len(self.step_times) == 1 or state.global_step % self.every == 0):
            self.plan(args, state)
        if state.global_step >= self.total_steps:
            control.should_training_stop = control.should_evaluate = control.should_save = True
        # evaluate (and save) every --eval_steps (--save_steps) steps, or share of the run: the k-th time at k shares
        # of the planned total, so a plan that moves neither skips a mark nor doubles one
        marks = (("eval", args.eval_steps, "should_evaluate", args.eval_strategy),
                 ("save", args.save_steps, "should_save", args.save_strategy))
        for kind, steps, flag, strategy in marks:
            if strategy != "steps":
                continue
            spacing = self.interval(steps, self.total_steps)
            if state.global_step >= (self.done[kind] + 1) * spacing:
                self.done[kind] = state.global_step // spacing  # (a resumed run catches up at once)
                setattr(control, flag, True)

    def plan(self, args, state) -> None:
        step, now = state.global_step, time.time()
        step_time = sorted(self.step_times)[len(self.step_times) // 2]
        eval_cost = self.eval_cost if self.eval_cost is not None else 2.0 + step_time * self.eval_guess_steps
        eval_runtime = self.eval_runtime if self.eval_runtime is not None else step_time * self.eval_guess_steps
        after = self.after_training + self.final_eval_share * eval_runtime
        left = self.deadline - now - self.margin - after - eval_cost  # the last evaluation included
        per_step, on_the_way = step_time, 0.0  # the evaluations before the last one cost time too:
        if args.eval_strategy == "steps" and args.eval_steps < 1:  # every share of the run: a number of them
            on_the_way = max(0, math.ceil(1 / args.eval_steps - 1e-9) - 1 - self.done["eval"]) * eval_cost
        elif args.eval_strategy == "steps":  # every N steps: a share of each step
            per_step += eval_cost / args.eval_steps
        total = step + max(0, int((left - on_the_way) / per_step))
        total = min(total, self.cap or total)
        if args.world_size > 1:  # every rank follows rank 0's plan
            import torch.distributed as dist

            plan = torch.tensor([total], dtype=torch.int64)
            dist.broadcast(plan, src=0)
            total = int(plan.item())
        self.total_steps = state.max_steps = max(total, step)
        bar = self.progress.training_bar if self.progress is not None else None
        if bar is not None and bar.total != self.total_steps:
            bar.total = self.total_steps
            bar.set_description("")
            bar.refresh()
        if not self.planned and args.process_index == 0:
            tqdm.write(f"time budget: {self.total_steps:,} steps planned ({step_time:.2f} s a step; the first step took "
                  f"{self.first_step:.1f} s{', compiling' if args.torch_compile else ''})")
        self.planned = True

    @staticmethod
    def interval(steps: float, total: int) -> int:
        """eval_steps / save_steps in steps: a number below 1 is a share of the run (as the Trainer reads it)."""
        return max(1, math.ceil(total * steps)) if steps < 1 else int(steps)

    def learning_rate_schedule(self, args):
        """args.lr_scheduler_type's shape stretched over `total_steps`, read at every step: a function of the step for
        `LambdaLR`. The shape comes from transformers' own schedule (built on a throwaway optimizer over a long
        reference run), so warm-up ratio and kwargs mean what they always do."""
        reference = 1_000_000
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        shape = get_scheduler(args.lr_scheduler_type, optimizer=probe,
                              num_warmup_steps=args.get_warmup_steps(reference), num_training_steps=reference,
                              scheduler_specific_kwargs=args.lr_scheduler_kwargs)
        if not isinstance(shape, LambdaLR):
            raise UserError(f"--lr_scheduler_type {args.lr_scheduler_type} cannot follow a --time_budget: use cosine, "
                            f"cosine_with_min_lr, linear, constant_with_warmup or wsd")
        factor = shape.lr_lambdas[0]
        return lambda step: factor(min(reference, round(step * reference / max(self.total_steps, 1))))


class BudgetProgressCallback(ProgressCallback):
    """The Trainer's progress bar, with no total until a time budget has planned the steps (the Trainer's step
    bound is a placeholder until then): it says what the first steps do instead. `TimeBudgetCallback.plan` sets the
    total."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps < UNPLANNED_STEPS:
            return super().on_train_begin(args, state, control, **kwargs)
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=None, dynamic_ncols=True,
                                     desc="first steps (compiling, measuring the step time)")
        self.current_step = 0


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
    training set. Set before every step on the decayed parameter groups (norms and biases stay at 0) and on
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
            if group["weight_decay"]:
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
