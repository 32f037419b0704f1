"""What a run does when you do not say: the steps, compilation, precision, model shape and weight decay that follow
from the time budget, --max_steps and the machine. One function, `choose`, decides all of them from plain values
(the machine's facts passed in), so it is read and tested as a table; `TinyLMTrainingArguments` applies it, and
`tinylm pretrain` takes the shape. docs/defaults.md is `table()` (a test keeps them the same).
"""

from dataclasses import dataclass

from ..presets import for_budget
from .budget import UNPLANNED_STEPS
from .optimizer import weight_decay_for_passes

COMPILE_PAYS_MINUTES = 3  # torch.compile's 10-60 s pay back in runs of 500+ steps or budgets of 3+ minutes
COMPILE_PAYS_STEPS = 500


@dataclass(frozen=True)
class Choices:
    time_budget: float | None  # minutes, or None: --max_steps decides
    max_steps: int  # the Trainer's bound: --max_steps, or a placeholder until the budget plans
    step_cap: int | None  # under a budget, the most steps it may plan (--max_steps)
    compile: bool
    bf16: bool  # bf16 autocast, else fp32
    preset: str  # the model shape of a fresh `tinylm pretrain` with no --preset
    weight_decay: float  # until the steps are known, when chosen by the passes
    weight_decay_by_passes: bool  # no --weight_decay: PassWeightDecayCallback chooses it once the steps are known


def choose(*, time_budget: float | None, max_steps: int, compile: str, precision: str, weight_decay: float | None,
           default_budget: float, can_compile: bool, bf16_is_fast: bool, fp16: bool = False) -> Choices:
    """time_budget / max_steps / compile / precision / weight_decay: as given (None / -1 / "auto" / "auto" / None
    when not); default_budget: the command's budget when neither steps nor a budget is given; can_compile: a C
    compiler (or a GPU) is there; bf16_is_fast: the CPU has AMX / AVX512-BF16 units, or the GPU bf16."""
    if time_budget is None and max_steps <= 0:
        time_budget = default_budget
    long_run = (max_steps if max_steps > 0 else UNPLANNED_STEPS) >= COMPILE_PAYS_STEPS \
        and (time_budget or COMPILE_PAYS_MINUTES) >= COMPILE_PAYS_MINUTES
    return Choices(
        time_budget=time_budget,
        max_steps=max_steps if max_steps > 0 else UNPLANNED_STEPS,
        step_cap=max_steps if max_steps > 0 and time_budget is not None else None,
        compile=compile == "on" or (compile == "auto" and long_run and can_compile),
        bf16=precision == "bf16" or (precision == "auto" and not fp16 and bf16_is_fast),
        preset=for_budget(time_budget),
        weight_decay=weight_decay if weight_decay is not None else weight_decay_for_passes(0),
        weight_decay_by_passes=weight_decay is None,
    )


CASES = [  # (what is given, on what machine): the rows of docs/defaults.md
    ({}, "AVX512-BF16 or AMX CPU"),
    ({}, "AVX2-only CPU"),
    ({}, "no C compiler"),
    ({"time_budget": 10}, "AVX512-BF16 or AMX CPU"),
    ({"time_budget": 2}, "AVX512-BF16 or AMX CPU"),
    ({"max_steps": 200}, "AVX512-BF16 or AMX CPU"),
    ({"max_steps": 2000}, "AVX2-only CPU"),
    ({"time_budget": 10, "max_steps": 300}, "AVX512-BF16 or AMX CPU"),
    ({"compile": "off", "precision": "fp32", "weight_decay": 0.1}, "AVX512-BF16 or AMX CPU"),
]
MACHINES = {"AVX512-BF16 or AMX CPU": dict(can_compile=True, bf16_is_fast=True),
            "AVX2-only CPU": dict(can_compile=True, bf16_is_fast=False),
            "no C compiler": dict(can_compile=False, bf16_is_fast=True)}


def table(default_budget: float = 7.0) -> str:
    """The choices of `tinylm pretrain` for the CASES, as a Markdown table."""
    rows = ["| you give | machine | time budget | steps | compiled | precision | shape | weight decay |",
            "|---|---|---|---|---|---|---|---|"]
    for given, machine in CASES:
        c = choose(**{"time_budget": None, "max_steps": -1, "compile": "auto", "precision": "auto",
                      "weight_decay": None, **given}, default_budget=default_budget, **MACHINES[machine])
        said = " ".join(f"--{k} {v}" for k, v in given.items()) or "nothing"
        steps = ("planned" + (f", at most {c.step_cap}" if c.step_cap else "")) if c.time_budget else str(c.max_steps)
        rows.append(f"| {said} | {machine} | {f'{c.time_budget:g} min' if c.time_budget else '-'} | {steps} | "
                    f"{'yes' if c.compile else 'no'} | {'bf16 autocast' if c.bf16 else 'fp32'} | {c.preset} | "
                    f"{'by passes' if c.weight_decay_by_passes else c.weight_decay} |")
    return "\n".join(rows) + "\n"
