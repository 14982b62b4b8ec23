"""VQAv2 from the official questions + annotations JSON, scored by `vitune.eval.vqav2` (official vqaEval).

Files (REFERENCE §7): `*questions*.json` `{"data_subtype": "val2014", "questions": [{image_id,
question, question_id}]}` and `*annotations*.json` `{"annotations": [{question_id, question_type,
answer_type, answers: [{answer}] x 10, multiple_choice_answer}]}`, both in the folder given to `load`.
Protocols: `paper` (default) = LLaVA's `convert_vqav2_for_submission.py` runs the EvalAI answer
processor on every prediction, then the server's vqaEval; `official` = vqaEval on raw predictions.
Images are `COCO_<subtype>_<image_id:012d>.jpg` relative to the image root (the COCO split folder),
as LLaVA's question files name them. Prompt: question + "\\nAnswer the question using a single word
or phrase." (LLaVA-1.5).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vitune.data.records import QA
from vitune.eval.benchmarks.base import (
    SHORT_ANSWER,
    BenchItem,
    Benchmark,
    Missing,
    find_one,
    read_json,
    register_benchmark,
    scorable,
)
from vitune.eval.vqav2 import score_vqa


@register_benchmark
class VQAv2(Benchmark):
    name = "vqav2"
    metric = "vqa_accuracy"
    prompt_suffix = SHORT_ANSWER
    protocols = ("paper", "official")
    scorer_version = 2  # 2: the paper protocol; Python 2 rounding and lowercasing of vqaEval.py

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        folder = Path(path)
        qdoc = read_json(find_one(folder, ("*questions*.json",)))
        try:
            adoc = read_json(find_one(folder, ("*annotations*.json",)))
        except FileNotFoundError:
            adoc = {"annotations": []}  # test-dev has no annotations: items load, scoring refuses
        anns = {str(a["question_id"]): a for a in adoc["annotations"]}
        subtype = qdoc.get("data_subtype", "val2014")
        items = []
        for q in qdoc["questions"]:
            qid = str(q["question_id"])
            ann = anns.get(qid, {})
            items.append(
                BenchItem(
                    item_id=qid,
                    question=self.prompt(q["question"]),
                    image=f"COCO_{subtype}_{int(q['image_id']):012d}.jpg",
                    answers=[a["answer"] for a in ann.get("answers", [])],
                    category=ann.get("answer_type", ""),
                    subcategory=ann.get("question_type", ""),
                    meta={"raw_question": q["question"], "image_id": q["image_id"]},
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        items = scorable(items, "VQAv2 items without answers")
        qas = [
            QA(it.item_id, it.meta.get("raw_question", ""), it.answers, it.category, it.subcategory)
            for it in items
        ]
        mode = {"error": "error", "wrong": "zero", "skip": "skip"}[missing]
        s = score_vqa(preds, qas, missing=mode, protocol=self.active_protocol)  # type: ignore[arg-type]
        return self.result(
            overall=s.overall,
            per_category=s.per_answer_type,
            per_question_type=s.per_question_type,
            n=s.n,
            n_per_category=s.n_per_answer_type,
            n_missing=s.n_missing,
        )
