"""feature_adherence: the share of requested features a generated story shows, for the features a program
can check:

- Dialogue: quoted speech ("..." or “...”) is present;
- MoralValue: the story states a lesson (learned / lesson / moral);
- Twist: a surprise marker (suddenly / surprise / but then / to everyone's).

BadEnding, Conflict and Foreshadowing need understanding, not pattern matching: they are not scored.
Returns the overall share and one figure per checkable feature.
"""

import re

import datasets
import evaluate

CHECKS = {
    "Dialogue": re.compile(r"\"[^\"]+\"|“[^”]+”"),
    "MoralValue": re.compile(r"\b(learned|learnt|lesson|moral)\b", re.I),
    "Twist": re.compile(r"\b(suddenly|surprise|surprising|but then|to everyone's)\b", re.I),
}


class FeatureAdherence(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="predictions: stories; references: feature lists",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}))

    def _compute(self, predictions, references):
        hits = {name: [] for name in CHECKS}
        for story, features in zip(predictions, references):
            for name in features:
                if name in CHECKS:
                    hits[name].append(bool(CHECKS[name].search(story)))
        scored = [h for values in hits.values() for h in values]
        out = {"feature_adherence": sum(scored) / len(scored) if scored else 0.0, "checked": len(scored)}
        out.update({name: sum(v) / len(v) for name, v in hits.items() if v})
        return out
