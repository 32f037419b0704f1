"""repetition: degenerate loops in generated text.

- distinct_1 / distinct_2: unique words (word pairs) over all words (pairs) of a text, averaged over texts
  (1.0: nothing repeats; small: the same few words over and over);
- repeated_4gram: the share of a text's word 4-grams that already occurred earlier in it, averaged.
"""

import re

import datasets
import evaluate


def ngrams(words: list[str], n: int) -> list[tuple]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


class Repetition(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="predictions: generated texts",
            features=datasets.Features({"predictions": datasets.Value("string")}))

    def _compute(self, predictions):
        d1, d2, rep = [], [], []
        for text in predictions:
            words = re.findall(r"\w+", text.lower())
            if len(words) < 4:
                continue
            d1.append(len(set(words)) / len(words))
            pairs = ngrams(words, 2)
            d2.append(len(set(pairs)) / len(pairs))
            grams = ngrams(words, 4)
            rep.append(1 - len(set(grams)) / len(grams))
        mean = (lambda xs: sum(xs) / len(xs) if xs else 0.0)
        return {"distinct_1": mean(d1), "distinct_2": mean(d2), "repeated_4gram": mean(rep)}
