"""GQA (balanced) from the official questions file, scored as LLaVA-1.5 scores it.

File: `testdev_balanced_questions.json`, a dict keyed by question id of `{question, answer, imageId,
isBalanced, types: {structural, semantic, detailed}, ...}`; only `isBalanced` questions are kept
(all of them in the balanced files). Images: `<imageId>.jpg`.

Scoring (LLaVA `scripts/convert_gqa_for_eval.py` then GQA's `eval.py`): the prediction becomes
`text.rstrip('.').lower()` (trailing periods only; no strip of spaces, no other normalization) and
must equal the gold answer exactly. Per-category results are by structural and semantic type, as
the official eval.py reports them (its consistency/validity/plausibility/grounding/distribution
metrics need the scene graphs and are not computed here). Percentages are eval.py's
`avg(scores) * 100` (divide, then × 100), which can differ from 100 × n / N in the last digit.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vitune.eval.benchmarks.base import (
    SHORT_ANSWER,
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    ratio_pct,
    read_json,
    register_benchmark,
)


def gqa_normalize(pred: str) -> str:
    return pred.rstrip(".").lower()


def _avg_pct(groups: dict[str, list[bool]]) -> dict[str, float]:
    return {k: ratio_pct(sum(v), len(v)) for k, v in sorted(groups.items())}


@register_benchmark
class GQA(Benchmark):
    name = "gqa"
    prompt_suffix = SHORT_ANSWER
    scorer_version = 2  # 2: eval.py's avg * 100 order

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        doc = read_json(Path(path))
        items = []
        for qid, q in doc.items():
            if not q.get("isBalanced", True):
                continue
            types = q.get("types") or {}
            items.append(
                BenchItem(
                    item_id=str(qid),
                    question=self.prompt(q["question"]),
                    image=f"{q['imageId']}.jpg",
                    answers=[q["answer"]] if "answer" in q else [],
                    category=types.get("structural", ""),
                    subcategory=types.get("semantic", ""),
                    meta={"raw_question": q["question"], "detailed": types.get("detailed", "")},
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        hits: dict[str, bool] = {}
        by_struct: dict[str, list[bool]] = defaultdict(list)
        by_sem: dict[str, list[bool]] = defaultdict(list)
        for it, p in pairs:
            ok = p is not None and gqa_normalize(p) == it.answers[0]
            hits[it.item_id] = ok
            by_struct[it.category].append(ok)
            by_sem[it.subcategory].append(ok)
        return self.result(
            overall=ratio_pct(sum(hits.values()), len(hits)),
            per_category=_avg_pct(by_struct),
            per_semantic=_avg_pct(by_sem),
            n=len(hits),
            n_missing=n_missing,
        )
