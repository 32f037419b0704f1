"""The time budget as numbers: the planner (a pure function), the learning-rate stretch, and the callback driven by
a fake clock through simulated runs. No Trainer, no real time: these run in well under a second."""

from types import SimpleNamespace

import pytest

from tinylm_hf.training.budget import UNPLANNED_STEPS, Costs, Plan, TimeBudgetCallback, plan_steps, stretch


def test_the_plan_fills_the_time_left_after_the_evaluations_and_the_work_after_training():
    # 600 s left; 10 s after training; evaluations of 20 s every fifth of the run: the last one and 4 on the way
    plan = plan_steps(done=10, seconds_left=600, costs=Costs(step=1.0, evaluation=20, after_training=10),
                      eval_every=0.2, save_every=0.2)
    assert plan == Plan(steps=10 + (600 - 10 - 20 - 4 * 20), eval_every=100, save_every=100)
    # evaluations already made are not paid for again
    later = plan_steps(done=300, seconds_left=300, costs=Costs(step=1.0, evaluation=20, after_training=10),
                       eval_every=0.2, evals_done=3)
    assert later.steps == 300 + (300 - 10 - 20 - 1 * 20) and later.save_every is None


def test_evaluations_every_n_steps_are_a_share_of_each_step():
    plan = plan_steps(done=0, seconds_left=1000, costs=Costs(step=0.5, evaluation=10), eval_every=100)
    # 990 s for steps of 0.5 s plus a tenth of an evaluation each: 0.6 s
    assert plan == Plan(steps=int(990 / 0.6), eval_every=100, save_every=None)


def test_the_plan_never_goes_back_and_keeps_to_the_cap():
    assert plan_steps(done=50, seconds_left=-30, costs=Costs(step=1.0, evaluation=5)).steps == 50
    assert plan_steps(done=0, seconds_left=10**6, costs=Costs(step=1.0, evaluation=5), cap=400).steps == 400


def test_a_share_of_the_run_in_steps_is_at_least_one():
    assert Plan.of(7, 0.2, 3) == Plan(7, 2, 3)
    assert Plan.of(2, 0.2, None) == Plan(2, 1, None)


def test_the_stretched_schedule_follows_the_plan_as_it_moves():
    shape = lambda step: 1 - step / 1000  # noqa: E731 - a linear decay over a reference run of 1000 steps
    total = [100]
    factor = stretch(shape, 1000, lambda: total[0])
    assert [factor(0), factor(50), factor(100)] == [1.0, 0.5, 0.0]
    total[0] = 200  # the plan moved: the same step is now earlier in the run
    assert factor(50) == 0.75 and factor(300) == 0.0  # and past the end, the schedule's last value


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def simulate(minutes: float, step_time, *, first_step: float, eval_seconds: float, after_training: float,
             cap: int | None = None):
    """A run under a time budget, as the Trainer drives the callback: `step_time(step)` seconds a step (the first
    one `first_step`: compiling), `eval_seconds` per evaluation and checkpoint. Returns the callback, the clock at
    the end of training, the steps made and the steps evaluated at."""
    clock = FakeClock()
    budget = TimeBudgetCallback(0.0, minutes, eval_guess_steps=10, after_training=after_training, cap=cap,
                                clock=clock)
    args = SimpleNamespace(eval_strategy="steps", eval_steps=0.2, save_strategy="steps", save_steps=0.2,
                           world_size=1, process_index=0, torch_compile=True)
    state = SimpleNamespace(global_step=0, max_steps=cap or UNPLANNED_STEPS, eval_steps=0.2, save_steps=0.2)
    budget.on_train_begin(args, state, None)
    evaluated = []
    while True:
        control = SimpleNamespace(should_training_stop=False, should_evaluate=False, should_save=False)
        budget.on_step_begin(args, state, control)
        clock.now += first_step if state.global_step == 0 else step_time(state.global_step)
        state.global_step += 1
        budget.on_step_end(args, state, control)
        if control.should_evaluate:
            evaluated.append(state.global_step)
            budget.on_evaluate(args, state, control, metrics={"eval_runtime": eval_seconds / 2})
            clock.now += eval_seconds
        if control.should_training_stop:
            return budget, clock.now, state.global_step, evaluated


def test_a_simulated_run_ends_on_time_with_its_evaluations_at_each_fifth():
    budget, end, steps, evaluated = simulate(10, lambda step: 0.5, first_step=60, eval_seconds=15,
                                             after_training=20)
    assert end + 20 <= budget.deadline  # the work after training fits too
    assert end + 20 >= budget.deadline - budget.margin - 2  # and the budget is used, not wasted
    assert len(evaluated) == 5 and evaluated[-1] == steps  # about every fifth (the plan was still moving at first)
    assert all(abs(at - steps * k / 5) < steps / 20 for k, at in enumerate(evaluated[1:], 2))
    assert budget.first_step == 60 and budget.plan.steps == steps


def test_a_machine_that_slows_down_moves_the_end_not_the_deadline():
    steady = simulate(10, lambda step: 0.5, first_step=60, eval_seconds=15, after_training=20)
    budget, end, steps, evaluated = simulate(10, lambda step: 0.5 if step < 300 else 1.0, first_step=60,
                                             eval_seconds=15, after_training=20)
    assert end + 20 <= budget.deadline
    assert steps < steady[2] - 100  # fewer steps: the slower ones were planned for
    assert len(evaluated) == 5 and evaluated[-1] == steps  # still five marks, the last one at the end


def test_a_cap_stops_the_run_early_and_a_spent_budget_at_the_first_plan():
    budget, end, steps, _ = simulate(10, lambda step: 0.5, first_step=60, eval_seconds=15, after_training=20, cap=40)
    assert steps == 40 and end < budget.deadline / 2
    _, _, steps, evaluated = simulate(0.5, lambda step: 0.5, first_step=60, eval_seconds=15, after_training=20)
    assert steps == 3 and evaluated == [3]  # two compiling steps, then a plan with no time left: evaluate and stop


def test_one_slow_step_at_the_start_does_not_end_a_short_run():
    # measured in course chapter 5: a 1-minute run of a 5.9M model whose first measured step took 2.8 s (then 1.0 s)
    # planned 3 steps from it and stopped there, at 0.4 minutes of its minute
    budget, end, steps, evaluated = simulate(1, lambda step: 2.8 if step == 2 else 1.0, first_step=1.1,
                                             eval_seconds=1.5, after_training=2)
    assert steps > 20 and end + 2 <= budget.deadline and len(evaluated) >= 3


@pytest.mark.parametrize("minutes", [3, 10, 30])
def test_budgets_of_any_length_end_on_time(minutes):
    budget, end, steps, evaluated = simulate(minutes, lambda step: 0.3 + 0.1 * (step % 3 == 0), first_step=40,
                                             eval_seconds=8, after_training=5)
    assert budget.deadline - budget.margin - 5 <= end + 5 <= budget.deadline and len(evaluated) == 5



def test_the_defaults_table_in_the_docs_is_what_the_policy_chooses():
    from tinylm_hf.training.arguments import TinyLMTrainingArguments
    from tinylm_hf.training.policy import table

    from .conftest import ROOT

    assert table(TinyLMTrainingArguments.default_time_budget) in (ROOT / "docs" / "defaults.md").read_text()


@pytest.mark.parametrize("given, compiled, bf16, cap", [
    ({}, True, True, None),
    ({"time_budget": 2.0}, False, True, None),  # compiling does not pay back in 2 minutes
    ({"max_steps": 499}, False, True, None),  # nor in 499 steps
    ({"max_steps": 500, "time_budget": 3.0}, True, True, 500),
    ({"precision": "fp32", "compile": "off"}, False, False, None),
])
def test_the_policy_compiles_where_it_pays_and_caps_a_budget_by_the_steps_given(given, compiled, bf16, cap):
    from tinylm_hf.training.policy import choose

    c = choose(**{"time_budget": None, "max_steps": -1, "compile": "auto", "precision": "auto", "weight_decay": None,
                  **given}, default_budget=7.0, can_compile=True, bf16_is_fast=True)
    assert (c.compile, c.bf16, c.step_cap) == (compiled, bf16, cap)
    assert c.max_steps == (given["max_steps"] if "max_steps" in given else UNPLANNED_STEPS)
