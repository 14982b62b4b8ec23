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

Matching (LLaVA `eval_textvqa.py`, the pipeline behind the published numbers): answers are looked
up by `(image_id, question.lower())` in a dict built over the whole file, so when two questions on
one image differ only in case, the later row's answers score BOTH predictions. `load` records that
row's answers in `meta["scored_answers"]` (over the whole file, so `--limit` keeps it). Accuracy is
`100 * (sum / n)` in that order, as LLaVA prints m4c's mean.

Prompt: question [+ "\\nReference OCR token: t1, t2, ..." when the row has `ocr_tokens` and
`ocr=True`] + "\\nAnswer the question using a single word or phrase." (LLaVA-1.5 textvqa file).
Images: `<image_id>.jpg` under the TextVQA image folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vitune.eval.benchmarks.base import (
    SHORT_ANSWER,
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    read_json,
    register_benchmark,
)
from vitune.eval.vqav2 import evalai_answer

# The EvalAI answer processor is defined once, next to the VQAv2 rule it feeds.
normalize_textvqa = evalai_answer


def textvqa_accuracy(pred: str, gt_answers: list[str]) -> float:
    """Soft accuracy in [0, 1] of one prediction against exactly 10 human answers."""
    if len(gt_answers) != 10:
        raise ValueError(f"TextVQA needs exactly 10 answers, got {len(gt_answers)}")
    answers = [normalize_textvqa(a) for a in gt_answers]
    p = normalize_textvqa(pred)
    m = sum(a == p for a in answers)
    # Leave one out: dropping a matching answer leaves m-1 matches, any other leaves m.
    return sum(min(1.0, (m - (a == p)) / 3) for a in answers) / len(answers)


def _resolve_case_collisions(items: list[BenchItem]) -> None:
    """Give every item the answers `eval_textvqa.py` scores it against (see the module docstring)."""
    last: dict[tuple[str, str], BenchItem] = {}
    for it in items:
        last[(str(it.meta["image_id"]), it.meta["raw_question"].lower())] = it
    for it in items:
        winner = last[(str(it.meta["image_id"]), it.meta["raw_question"].lower())]
        if winner is not it:
            it.meta["scored_answers"] = list(winner.answers)


@register_benchmark
class TextVQA(Benchmark):
    name = "textvqa"
    metric = "vqa_accuracy"
    prompt_suffix = SHORT_ANSWER
    scorer_version = 2  # 2: case-colliding questions and the 100 * mean order of eval_textvqa.py

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
        _resolve_case_collisions(items)
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        accs = {
            it.item_id: 0.0 if p is None else textvqa_accuracy(p, it.meta.get("scored_answers", it.answers))
            for it, p in pairs
        }
        return self.result(
            overall=100.0 * (sum(accs.values()) / len(accs)) if accs else 0.0,
            per_category={},
            n=len(accs),
            n_missing=n_missing,
            per_item=accs,
        )
