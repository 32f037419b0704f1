"""rouge_l: the longest common subsequence of words between each generated answer and its reference (Lin, 2004).

Google's `rouge_score` (the implementation the Hub's `rouge` metric wraps), ROUGE-L F-measure per answer, no
stemming, averaged over the answers; 0 to 1. Its tokenizer keeps lower-cased ASCII letters and digits only, so use
chrf for other scripts.
"""

import datasets
import evaluate
from rouge_score import rouge_scorer


class RougeL(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Lin, C.-Y. (2004). ROUGE: A Package for Automatic Evaluation of "
                                          "Summaries. ACL workshop Text Summarization Branches Out.",
            inputs_description="predictions: generated answers; references: one reference answer each",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references):
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]
        return {"rouge_l": sum(scores) / len(scores) if scores else 0.0, "examples": len(scores)}
