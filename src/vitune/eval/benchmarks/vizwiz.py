"""VizWiz-VQA (val) from the official `annotations/val.json`, scored by VizWiz's own `vqaEval.py`.

Files (as `vitune.sources.vizwiz` reads them): `annotations/{split}.json` is a list of `{image,
question, answers: [{answer, answer_confidence}] x 10, answer_type, answerable}`; photos are
`{split}/{image}`. `load` takes the VizWiz folder (holding `annotations/` and `{split}/`; images
are then relative to it) or the annotation file itself (give the image root with `--images`).
VizWiz has no question ids: an item's id is the image stem (one question per photo).

Prompt (LLaVA-1.5 `playground/data/eval/vizwiz/llava_test.jsonl`, read by `model_vqa_loader`): the
question as written (trailing spaces kept) + "\\nWhen the provided information is insufficient,
respond with 'Unanswerable'.\\nAnswer the question using a single word or phrase."

The official rule (VizWiz-VQA API `vqaEval.py`, Qing Li; Python 3) is NOT VQAv2's:

- the prediction is ALWAYS normalized (newline/tab -> space, strip, VQA punctuation rule, Python 3
  lowercasing, number words, articles, contractions), whether or not the ten answers agree;
- the ten human answers are NEVER normalized: they are compared as written (`item['answer'] ==
  resAns`), so an answer the normalization cannot produce ("two", "a cup", "dr. pepper") never
  matches anything;
- its contractions table writes most apostrophes as U+2019 (’): "dont" becomes "don’t", which no
  straight-apostrophe answer equals (`VIZWIZ_CONTRACTIONS`);
- accuracy per question = mean over the 10 leave-one-out subsets of min(1, matches / 3); reported
  `round(100 * sum / n, 2)` (Python 3 `round`), overall and per `answer_type`.

Protocols: `paper` (default) = LLaVA's `scripts/convert_vizwiz_for_submission.py`: every
prediction goes through the EvalAI answer processor (`evalai_answer`; nothing special is done with
"unanswerable": "Unanswerable" becomes "unanswerable", the answer the annotators give) and the
upload is scored by the server's `vqaEval.py` above. `official` = `vqaEval.py` on the raw predictions.
lmms-eval's `vizwiz_vqa` differs again (EvalAI processor on both sides); it is not reproduced here.

Also reported: accuracy of answerable / unanswerable questions (`per_answerable`) and, as the
official `get_answerable_preds` decides it (normalized answer == "unanswerable"), precision,
recall and F1 of saying "unanswerable" on the questions annotated `answerable == 0`.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from vitune.eval.benchmarks.base import (
    SHORT_ANSWER,
    BenchItem,
    Benchmark,
    BenchmarkDataError,
    Missing,
    pair_predictions,
    read_json,
    register_benchmark,
    scorable,
)
from vitune.eval.vqav2 import (
    _OFFICIAL_PERIOD_COUNT,
    ARTICLES,
    CONTRACTIONS,
    NUMBER_WORDS,
    PUNCT,
    _loo_accuracy,
    evalai_answer,
)
from vitune.sources.vizwiz import ANSWER_TYPES, UNANSWERABLE

UNANSWERABLE_HINT = "When the provided information is insufficient, respond with 'Unanswerable'."

# VizWiz's table is VQAv2's with U+2019 for the apostrophe, except the straight ones it kept: the
# values of these keys, and the two keys "couldn'tve" / "hadn'tve".
_STRAIGHT_VALUES = frozenset({"aint", "arent", "cant", "couldve", "couldnt", "weve", "wheres", "whove"})
_STRAIGHT_KEYS = frozenset({"couldn'tve", "hadn'tve"})
VIZWIZ_CONTRACTIONS: dict[str, str] = {
    (k if k in _STRAIGHT_KEYS else k.replace("'", "\u2019")): (
        v if k in _STRAIGHT_VALUES else v.replace("'", "\u2019")
    )
    for k, v in CONTRACTIONS.items()
}

# Compiled without flags, as in the Python 3 official code (Unicode \d).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")


@lru_cache(maxsize=1 << 16)
def vizwiz_normalize(text: str) -> str:
    """The official processing of a prediction: clean, punctuation, digits/articles/contractions."""
    t = text.replace("\n", " ").replace("\t", " ").strip()
    out = t
    delete_all = _COMMA_STRIP.search(t) is not None
    for p in PUNCT:
        touches_space = p + " " in t or " " + p in t  # the test reads the input, not `out`
        out = out.replace(p, "" if delete_all or touches_space else " ")
    out = _PERIOD_STRIP.sub("", out, count=_OFFICIAL_PERIOD_COUNT)
    words = [NUMBER_WORDS.get(w, w) for w in out.lower().split()]
    return " ".join(VIZWIZ_CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def vizwiz_accuracy(pred: str, gt_answers: list[str], protocol: str = "paper") -> float:
    """VQA accuracy in [0, 1] of one prediction against the raw human answers (module docstring)."""
    p = vizwiz_normalize(evalai_answer(pred) if protocol == "paper" else pred)
    return _loo_accuracy(tuple(a == p for a in gt_answers))


def _round_pct(values: list[float]) -> float:
    # setAccuracy: round(100*float(sum(accQA))/len(accQA), 2), Python 3.
    return round(100 * float(sum(values)) / len(values), 2) if values else 0.0


@register_benchmark
class VizWiz(Benchmark):
    name = "vizwiz"
    metric = "vqa_accuracy"
    prompt_suffix = f"{UNANSWERABLE_HINT}\n{SHORT_ANSWER}"
    protocols = ("paper", "official")
    scorer_version = 1

    def __init__(self, split: str = "val") -> None:
        self.split = split

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        p = Path(path)
        ann = p / "annotations" / f"{self.split}.json" if p.is_dir() else p
        if not ann.is_file():
            raise BenchmarkDataError(f"vizwiz: no annotation file {ann}")
        doc = read_json(ann)
        if not isinstance(doc, list):
            raise BenchmarkDataError(f"vizwiz: {ann} is not a VizWiz list of questions")
        items = []
        for i, q in enumerate(doc):
            try:
                image, question = q["image"], q["question"]
                answers = [a["answer"] for a in q.get("answers") or []]
                if (
                    not isinstance(image, str)
                    or "/" in image
                    or "\\" in image
                    or not isinstance(question, str)
                ):
                    raise TypeError("'image' must be a file name and 'question' a string")
            except (KeyError, TypeError) as e:
                raise BenchmarkDataError(f"vizwiz: {ann}: entry [{i}] is malformed ({e})") from None
            answer_type = q.get("answer_type", "")
            if answers and answer_type not in ANSWER_TYPES:
                raise BenchmarkDataError(f"vizwiz: {ann}: entry [{i}] has answer_type {answer_type!r}")
            items.append(
                BenchItem(
                    item_id=Path(image).stem,
                    question=self.prompt(question),
                    image=f"{self.split}/{image}",
                    answers=answers,
                    category=answer_type,
                    meta={"raw_question": question, "answerable": q.get("answerable")},
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        items = scorable(items, "VizWiz items without answers")
        pairs, n_missing = pair_predictions(preds, items, missing)
        accs: dict[str, float] = {}
        by_type: dict[str, list[float]] = defaultdict(list)
        by_answerable: dict[str, list[float]] = defaultdict(list)
        tp = fp = fn = 0
        for it, p in pairs:
            acc = 0.0 if p is None else vizwiz_accuracy(p, it.answers, self.active_protocol)
            accs[it.item_id] = acc
            by_type[it.category].append(acc)
            unans_gt = it.meta.get("answerable") == 0
            by_answerable["unanswerable" if unans_gt else "answerable"].append(acc)
            said = (
                p is not None
                and vizwiz_normalize(evalai_answer(p) if self.active_protocol == "paper" else p)
                == UNANSWERABLE
            )
            tp += said and unans_gt
            fp += said and not unans_gt
            fn += (not said) and unans_gt
        precision = 100 * tp / (tp + fp) if tp + fp else 0.0
        recall = 100 * tp / (tp + fn) if tp + fn else 0.0
        f1 = 100 * 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        return self.result(
            overall=_round_pct(list(accs.values())),
            per_category={k: _round_pct(v) for k, v in sorted(by_type.items())},
            n_per_category={k: len(v) for k, v in sorted(by_type.items())},
            per_answerable={k: _round_pct(v) for k, v in sorted(by_answerable.items())},
            n_per_answerable={k: len(v) for k, v in sorted(by_answerable.items())},
            unanswerable={"precision": round(precision, 2), "recall": round(recall, 2), "f1": round(f1, 2)},
            n=len(accs),
            n_missing=n_missing,
            per_item=accs,
        )
