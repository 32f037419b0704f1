"""The time budget (--time_budget): how many steps fit in the minutes a run has, so that warm-up and decay end when
the budget does.

Two parts: `plan_steps`, a pure function from what was measured (the time of a step, of an evaluation, of what
follows training) and the time left to the number of steps and the evaluation and checkpoint marks (unit tests
give it numbers, no Trainer, no clock: tests/test_budget.py); and `TimeBudgetCallback`, the glue that measures
those times in a Trainer run and applies the plan. `stretch` reads a learning-rate schedule built for a long
reference run at the planned length (`TinyLMTrainer.create_scheduler`).
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

UNPLANNED_STEPS = 10**9  # a step count no run reaches: the Trainer's bound, and the marks, until the budget plans


@dataclass(frozen=True)
class Costs:
    """Seconds, as measured in the run (or guessed until measured)."""

    step: float  # a training step (the median of the recent ones)
    evaluation: float  # an evaluation with its samples and checkpoint, from the end of its step to the next step
    after_training: float = 0.0  # the script's work once training is over: the final evaluation, saving the folder


@dataclass(frozen=True)
class Plan:
    steps: int  # the run's steps in all (the done ones included)
    eval_every: int | None  # steps between evaluations (None: not by steps)
    save_every: int | None  # steps between checkpoints (None: not by steps)

    @classmethod
    def of(cls, steps: int, eval_every: float | None, save_every: float | None) -> "Plan":
        """`steps` with --eval_steps / --save_steps (N steps, or a share of the run if < 1; None: not by steps)."""
        return cls(steps, *(interval(every, steps) if every is not None else None
                            for every in (eval_every, save_every)))


def interval(every: float, total: int) -> int:
    """--eval_steps / --save_steps in steps: a number below 1 is a share of the run (as the Trainer reads it)."""
    return max(1, math.ceil(total * every)) if every < 1 else int(every)


def plan_steps(*, done: int, seconds_left: float, costs: Costs, eval_every: float | None = None,
               save_every: float | None = None, evals_done: int = 0, cap: int | None = None) -> Plan:
    """The steps that fit in `seconds_left` after the `done` ones, keeping time for the evaluations still to come
    (`eval_every` N steps, or every share of the run if < 1; None for none by steps; `evals_done` already made), the
    last one included, and for the work after training; at most `cap`, never fewer than `done`."""
    left = seconds_left - costs.after_training - costs.evaluation  # the last evaluation included
    per_step, on_the_way = costs.step, 0.0  # the evaluations before the last one cost time too:
    if eval_every is not None and eval_every < 1:  # every share of the run: a number of them
        on_the_way = max(0, math.ceil(1 / eval_every - 1e-9) - 1 - evals_done) * costs.evaluation
    elif eval_every is not None:  # every N steps: a share of each step
        per_step += costs.evaluation / eval_every
    total = done + max(0, int((left - on_the_way) / per_step))
    return Plan.of(max(done, min(total, cap or total)), eval_every, save_every)


def stretch(shape: Callable[[int], float], reference: int, total_steps: Callable[[], int]) -> Callable[[int], float]:
    """A learning-rate factor for `LambdaLR`: `shape` (a schedule over `reference` steps) read at the same share of
    the run, for a run of `total_steps()` steps, asked at every step (a plan may move it)."""
    return lambda step: shape(min(reference, round(step * reference / max(total_steps(), 1))))


class TimeBudgetCallback(TrainerCallback):
    """Measures a run and applies `plan_steps` to it.

    The budget is wall time from `start` (when the script began: data, tokenizer, compiling, training, evaluation
    and saving all count). It measures a step (the median of the last 50, the first `skip` ones left out: they
    compile), an evaluation with its checkpoint (until one is measured: `eval_guess_steps` steps' time), and keeps
    `after_training` seconds plus the final evaluation (`final_eval_share` times an evaluation's runtime) free. It
    plans after the first measured step, the third and every `every` steps, so a change of speed moves the end, not
    the deadline; a plan from fewer than three measured steps is a guess (one slow step can be a hiccup) and ends the
    run only once the time is spent; `cap` (--max_steps) bounds the steps. The plan sets `total_steps` (the Trainer's `max_steps`, the
    schedule's length, the progress bar's total) and the evaluation and checkpoint marks: the k-th at k shares of
    the planned total, so a plan that moves neither skips a mark nor doubles one. Under torchrun every rank follows
    rank 0's plan. `clock` is time.time, or a fake one in tests."""

    def __init__(self, start: float, minutes: float, *, eval_guess_steps: float, after_training: float = 0.0,
                 final_eval_share: float = 0.0, cap: int | None = None, skip: int = 2, every: int = 10,
                 clock: Callable[[], float] = time.time):
        self.deadline = start + minutes * 60
        self.margin = 3.0 + 0.02 * minutes * 60  # seconds kept free: saving the final folder, the clock's noise
        self.eval_guess_steps, self.after_training, self.cap = eval_guess_steps, after_training, cap
        self.final_eval_share, self.skip, self.every, self.clock = final_eval_share, skip, every, clock
        self.step_times: list[float] = []
        self.eval_cost: float | None = None  # seconds from the end of a step with an evaluation to the next step
        self.eval_runtime: float | None = None  # seconds of the last evaluation's forward passes alone
        self.step_start = self.step_end = None
        self.evaluated = False
        self.done = {"eval": 0, "save": 0}  # evaluations and checkpoints made at this budget's marks
        self.plan: Plan | None = None
        self.progress: ProgressCallback | None = None
        self.train_start, self.first_step = clock(), None

    @property
    def total_steps(self) -> int:
        """The planned steps; until the first plan, the cap or a placeholder (only the first, compiling steps run)."""
        return self.plan.steps if self.plan is not None else self.cap or UNPLANNED_STEPS

    def on_train_begin(self, args, state, control, **kwargs):
        state.eval_steps = state.save_steps = UNPLANNED_STEPS  # the Trainer's own marks off: the plan's decide
        self.train_start = self.clock()

    def on_step_begin(self, args, state, control, **kwargs):
        now = self.clock()
        if self.evaluated and self.step_end is not None:
            self.eval_cost = now - self.step_end  # evaluation, samples, checkpoint
        self.evaluated = False
        self.step_start = now

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.evaluated = True
        if metrics and "eval_runtime" in metrics:
            self.eval_runtime = metrics["eval_runtime"]

    def on_step_end(self, args, state, control, **kwargs):
        self.step_end = self.clock()
        if self.first_step is None:
            self.first_step = self.step_end - self.train_start  # compiling, for a compiled model
        if state.global_step > self.skip:
            self.step_times = (self.step_times + [self.step_end - self.step_start])[-50:]
        if self.step_times and (len(self.step_times) in (1, 3) or state.global_step % self.every == 0):
            self.replan(args, state)
        trusted = len(self.step_times) >= 3 or self.clock() >= self.deadline - self.margin
        if state.global_step >= self.total_steps and (trusted or self.cap == state.global_step):
            control.should_training_stop = control.should_evaluate = control.should_save = True
        if self.plan is None:
            return
        for kind, spacing, flag in (("eval", self.plan.eval_every, "should_evaluate"),
                                    ("save", self.plan.save_every, "should_save")):
            if spacing and state.global_step >= (self.done[kind] + 1) * spacing:
                self.done[kind] = state.global_step // spacing  # (a resumed run catches up at once)
                setattr(control, flag, True)

    def costs(self) -> Costs:
        step = sorted(self.step_times)[len(self.step_times) // 2]
        guess = step * self.eval_guess_steps
        evaluation = self.eval_cost if self.eval_cost is not None else 2.0 + guess
        final_eval = self.final_eval_share * (self.eval_runtime if self.eval_runtime is not None else guess)
        return Costs(step=step, evaluation=evaluation, after_training=self.after_training + final_eval)

    def replan(self, args, state) -> None:
        eval_every = args.eval_steps if args.eval_strategy == "steps" else None
        save_every = args.save_steps if args.save_strategy == "steps" else None
        costs = self.costs()
        plan = plan_steps(done=state.global_step, seconds_left=self.deadline - self.clock() - self.margin,
                          costs=costs, eval_every=eval_every, save_every=save_every,
                          evals_done=self.done["eval"], cap=self.cap)
        if args.world_size > 1:  # every rank follows rank 0's plan
            import torch.distributed as dist

            steps = torch.tensor([plan.steps], dtype=torch.int64)
            dist.broadcast(steps, src=0)
            plan = Plan.of(int(steps.item()), eval_every, save_every)
        first = self.plan is None
        self.plan = plan
        state.max_steps = plan.steps
        bar = self.progress.training_bar if self.progress is not None else None
        if bar is not None and bar.total != self.total_steps:
            bar.total = self.total_steps
            bar.set_description("")
            bar.refresh()
        if first and args.process_index == 0:
            tqdm.write(f"time budget: {self.total_steps:,} steps planned ({costs.step:.2f} s a step; the first "
                       f"step took {self.first_step:.1f} s{', compiling' if args.torch_compile else ''})")


class BudgetProgressCallback(ProgressCallback):
    """The Trainer's progress bar, with no total until a time budget has planned the steps (the Trainer's step
    bound is a placeholder until then): it says what the first steps do instead. `TimeBudgetCallback` sets the
    total."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps < UNPLANNED_STEPS:
            return super().on_train_begin(args, state, control, **kwargs)
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=None, dynamic_ncols=True,
                                     desc="first steps (compiling, measuring the step time)")
        self.current_step = 0
