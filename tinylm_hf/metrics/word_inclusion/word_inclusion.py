"""word_inclusion: the share of required Words that appear in the generated story.

A word counts as present in any of its regular inflections, matched case-insensitively as a whole word:
the word itself, plural/3rd person (-s, -es, y -> -ies), past (-ed, -d, y -> -ied, doubled final consonant + -ed),
and -ing (with a final e dropped, or the final consonant doubled): `jump` matches jumps, jumped, jumping;
`bake` matches baked, baking; `hop` matches hopped, hopping; `bunny` matches bunnies. Irregular forms
(ran, sang) do not count. The score is the mean over examples of (words found / words required).
"""

import re

import datasets
import evaluate


def inflections(word: str) -> set[str]:
    w = word.lower()
    forms = {w, w + "s", w + "es", w + "ed", w + "d", w + "ing"}
    if w.endswith("e"):
        forms.add(w[:-1] + "ing")
    if w.endswith("y") and len(w) > 2 and w[-2] not in "aeiou":
        forms |= {w[:-1] + "ies", w[:-1] + "ied"}
    if len(w) > 2 and w[-1] not in "aeiouwxy" and w[-2] in "aeiou" and w[-3] not in "aeiou":
        forms |= {w + w[-1] + "ed", w + w[-1] + "ing"}
    return forms


def included(word: str, text_words: set[str]) -> bool:
    return bool(inflections(word) & text_words)


class WordInclusion(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="predictions: stories; references: word lists",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}))

    def _compute(self, predictions, references):
        scores = []
        for story, words in zip(predictions, references):
            if not words:
                continue
            text_words = set(re.findall(r"[a-z]+", story.lower()))
            scores.append(sum(included(w, text_words) for w in words) / len(words))
        return {"word_inclusion": sum(scores) / len(scores) if scores else 0.0, "examples": len(scores)}
