"""SEED-Bench (image part) from the official `SEED-Bench.json`, scored as LLaVA-1.5 scores it.

File: `{"question_type": {name: id}, "questions": [{question_id, question, choice_a..choice_d,
answer: "A".."D", data_id, data_type: "image"|"video", question_type_id}]}`; only `data_type ==
"image"` questions are loaded. Images: `data_id` relative to the SEED-Bench image folder.
Prompt (LLaVA `llava-seed-bench.jsonl`): `<question>\\nA. <a>\\nB. <b>\\nC. <c>\\nD. <d>\\nAnswer
with the option's letter from the given choices directly.`

Scoring (LLaVA `scripts/convert_seed_for_submission.py`): the generated text must EQUAL the answer
letter (`row['text'] == answer`; no stripping, no parsing: "A." or "(A)" are wrong). Accuracy per
question type (reported by name) and overall (over questions, not a mean of types).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vitune.eval.benchmarks.base import (
    LETTER_ANSWER,
    BenchItem,
    Benchmark,
    Missing,
    group_pct,
    pair_predictions,
    pct,
    read_json,
    register_benchmark,
)


@register_benchmark
class SEEDBench(Benchmark):
    name = "seed_bench"
    prompt_suffix = LETTER_ANSWER

    def unparsable(self, prediction: str, item: BenchItem) -> bool:
        """Not exactly an option letter: the exact-match rule can only score it wrong."""
        return prediction not in item.options

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        doc = read_json(Path(path))
        type_names = {int(v): k for k, v in doc.get("question_type", {}).items()}
        items = []
        for q in doc["questions"]:
            if q.get("data_type", "image") != "image":
                continue
            options = {L: q[f"choice_{L.lower()}"] for L in "ABCD"}
            text = q["question"] + "".join(f"\n{k}. {v}" for k, v in options.items())
            tid = int(q["question_type_id"])
            items.append(
                BenchItem(
                    item_id=str(q["question_id"]),
                    question=self.prompt(text),
                    image=q["data_id"],
                    answers=[q["answer"]],
                    options=options,
                    category=type_names.get(tid, str(tid)),
                    meta={"raw_question": q["question"], "question_type_id": tid},
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        by_type: dict[str, list[bool]] = defaultdict(list)
        hits = []
        for it, p in pairs:
            ok = p is not None and p == it.answers[0]
            hits.append(ok)
            by_type[it.category].append(ok)
        return self.result(
            overall=pct(sum(hits), len(hits)),
            per_category=group_pct(by_type),
            n=len(hits),
            n_missing=n_missing,
        )
