"""chrf: how close generated answers come to reference answers, by character n-grams (Popović, 2015).

The corpus-level chrF of sacrebleu (the reference implementation, which the Hub's `chrf` metric also wraps) with its
defaults: character n-grams of 1 to 6, recall weighted twice as much as precision (beta 2), no word n-grams,
whitespace ignored; 0 to 100. One reference per answer. Character n-grams give credit for a right word in another
form and work in any script, which suits small models whose answers are near misses.
"""

import datasets
import evaluate
from sacrebleu.metrics import CHRF


class ChrF(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Popović, M. (2015). chrF: character n-gram F-score for automatic MT "
                                          "evaluation. WMT 2015.",
            inputs_description="predictions: generated answers; references: one reference answer each",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references):
        return {"chrf": CHRF().corpus_score(predictions, [references]).score, "examples": len(predictions)}
