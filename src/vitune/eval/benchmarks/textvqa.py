"""TextVQA: the official `{"data": [...]}` JSON, scored as LLaVA's m4c `TextVQAAccuracyEvaluator`.

The TextVQA rule differs from VQAv2's in ways that change scores (checked against
`llava/eval/m4c_evaluator.py`, copied by LLaVA from facebookresearch/mmf):

- Normalization is ALWAYS applied, to the prediction and all 10 answers (VQAv2 skips it when the
  10 answers agree): first `word_tokenize` = lowercase, delete every "," and "?", "'s" -> " 's",
  strip; then newline/tab -> space, strip; then the VQA punctuation rule, then numbers/articles/
  contractions. So "Yes." scores 1.0 against ten "yes" here and 0.0 in VQAv2.
- The comma-between-digits test can never fire (commas are already gone), and the script runs on
  Python 3, so `\\d` in the period regex is Unicode (VQAv2's official code is Python 2: ASCII).
- Exactly 10 answers are required (the official code asserts it); leave-one-out over the 10
  (index, answer) pairs, min(1, matches/3), averaged.

Prompt: question [+ "\\nReference OCR token: t1, t2, ..." when the row has `ocr_tokens` and
`ocr=True`] + "\\nAnswer the question using a single word or phrase." (LLaVA-1.5 textvqa file).
Images: `<image_id>.jpg` under the TextVQA image folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from vitune.eval.benchmarks.base import (
    SHORT_ANSWER,
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    pct,
    read_json,
    register_benchmark,
)
from vitune.eval.vqav2 import ARTICLES, CONTRACTIONS, NUMBER_WORDS, PUNCT

# m4c's patterns, compiled without flags as in its Python 3 source (Unicode \d).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
_PERIOD_COUNT = int(re.UNICODE)  # m4c passes re.UNICODE as `count` too: at most 32 periods go


def _word_tokenize(text: str) -> str:
    return text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()


def _punctuation(text: str) -> str:
    out = text
    delete_all = _COMMA_STRIP.search(text) is not None
    for p in PUNCT:
        # As in the official code the "touches a space" test reads the input, not `out`.
        touches_space = p + " " in text or " " + p in text
        out = out.replace(p, "" if delete_all or touches_space else " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_COUNT)


def _digit_article(text: str) -> str:
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


@lru_cache(maxsize=1 << 16)
def normalize_textvqa(text: str) -> str:
    """m4c `EvalAIAnswerProcessor.__call__`."""
    t = _word_tokenize(text)
    t = t.replace("\n", " ").replace("\t", " ").strip()
    return _digit_article(_punctuation(t))


def textvqa_accuracy(pred: str, gt_answers: list[str]) -> float:
    """Soft accuracy in [0, 1] of one prediction against exactly 10 human answers."""
    if len(gt_answers) != 10:
        raise ValueError(f"TextVQA needs exactly 10 answers, got {len(gt_answers)}")
    answers = [normalize_textvqa(a) for a in gt_answers]
    p = normalize_textvqa(pred)
    m = sum(a == p for a in answers)
    # Leave one out: dropping a matching answer leaves m-1 matches, any other leaves m.
    return sum(min(1.0, (m - (a == p)) / 3) for a in answers) / len(answers)


@register_benchmark
class TextVQA(Benchmark):
    name = "textvqa"
    metric = "vqa_accuracy"
    prompt_suffix = SHORT_ANSWER

    def __init__(self, ocr: bool = True) -> None:
        self.ocr = ocr

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        """`path`: the TextVQA json (e.g. TextVQA_0.5.1_val.json)."""
        doc = read_json(Path(path))
        items = []
        for row in doc["data"]:
            q = row["question"]
            text = q
            if self.ocr and row.get("ocr_tokens"):
                text += "\nReference OCR token: " + ", ".join(row["ocr_tokens"])
            items.append(
                BenchItem(
                    item_id=str(row["question_id"]),
                    question=self.prompt(text),
                    image=f"{row['image_id']}.jpg",
                    answers=list(row.get("answers", [])),
                    category=row.get("set_name", ""),
                    meta={"raw_question": q, "image_id": row["image_id"]},
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        accs = {it.item_id: 0.0 if p is None else textvqa_accuracy(p, it.answers) for it, p in pairs}
        return self.result(
            overall=pct(sum(accs.values()), len(accs)),
            per_category={},
            n=len(accs),
            n_missing=n_missing,
            per_item=accs,
        )
