"""Local `evaluate` metric modules (Hub metrics cannot be downloaded offline): load them by path.

    import evaluate
    from tinylm_hf.metrics import metric_path
    word_inclusion = evaluate.load(metric_path("word_inclusion"))
"""

import os

from ..files import shipped

METRICS = ("word_inclusion", "feature_adherence", "repetition", "chrf", "rouge_l")


def metric_path(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}: one of {METRICS}")
    return shipped(os.path.join(os.path.dirname(__file__), name, f"{name}.py"))
