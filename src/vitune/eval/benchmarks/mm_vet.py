"""MM-Vet from its official `mm-vet.json` + `images/`, graded by an LLM as `mm-vet_evaluator.py` does.

`mm-vet.json` maps an id (`v1_0`, ...) to `{imagename, capability: [rec|ocr|know|gen|spat|math, ...],
question, answer}`; `BenchItem.image` is `images/<imagename>`, relative to the folder given to
`load`. Prompt: the question as is (LLaVA-1.5 asks MM-Vet without a suffix). Ground truths may
hold `<AND>` (every element needed) or `<OR>` (any one element suffices).

Grading (the official structure; the instruction and few-shot table are in our own words): one user
message = the grader instruction with a few-shot table `Question | Ground truth | Prediction |
Correctness`, a newline, then the item's row `question | answer | prediction | ` (the answer's
`<AND>`/`<OR>` spaced out) for the grader to complete; temperature 0.0, at most 3 new tokens. The
reply's first space-separated token must be a number in [0, 1]. Otherwise the official script asks
again with a closing "give the number" line, at temperature 0.0, then 0.5, 1.0, 1.5, 2.0 (five
re-asks), and after that scores the item 0.0. Here the re-asks are the same, but an item still
malformed after them is EXCLUDED and counted (`n_judge_failed`, `judge_failed_ids`), never scored
0.0; the official script also never reads its last reply, which is parsed here. NaN/inf are
malformed here (the official range check lets NaN through).

Aggregation (`export_result`): `overall` (total) = sum of scores / items × 100; per capability, an
item counts toward each of its capabilities; per capability combination (the exact set of an
item's capabilities, named by joining them with "_" in sorted order, where the official script uses
set order), sum / items × 100; each rounded to 1 decimal as officially. One grading run (the paper
averages 5 runs of GPT-4; run `score` again with another judge seed for that).
`missing="wrong"` gives a missing answer 0.0 without asking the judge.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from vitune.eval.benchmarks.base import (
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    read_json,
    register_benchmark,
)
from vitune.eval.judge import Judge, JudgeAttempt, JudgeTask, judge_report, require_judge

CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")
# The official schedule: first ask at 0.0; re-asks at 0.0, 0.5, 1.0, 1.5, 2.0.
RETRY_TEMPERATURES = (0.0, 0.5, 1.0, 1.5, 2.0)

GRADER_PROMPT = """\
Compare the ground truth with the prediction of an AI model and give the prediction a correctness \
score. In the ground truth, <AND> means the prediction is fully right only if it contains every one \
of the elements, and <OR> means it is fully right if it contains any one of them. The correctness \
score is one of 0.0 (completely wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9 or 1.0 \
(completely right). Fill in only the last cell, the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
Which two colours are on the flag? | red <AND> white | red | 0.5
Which two colours are on the flag? | red <AND> white | blue and green | 0.0
Which two colours are on the flag? | red <AND> white | It is white with a red cross. | 1.0
How much do the two coffees cost together? | 7.00 <OR> $7 | $7 | 1.0
How much do the two coffees cost together? | 7.00 <OR> $7 | 3.50 each | 0.5
Why is this picture funny? | A cat sits inside a tiny cardboard box that is much too small for it, \
while a large comfortable cat bed stands empty right next to it; the joke is that cats prefer boxes \
to anything bought for them. | There is a cat in a box. | 0.3
Why is this picture funny? | A cat sits inside a tiny cardboard box that is much too small for it, \
while a large comfortable cat bed stands empty right next to it; the joke is that cats prefer boxes \
to anything bought for them. | The cat ignores the expensive bed beside it and squeezes into a box \
far too small, which is funny because cats famously love boxes more than the things made for them. \
| 1.0
"""
RETRY_SUFFIX = "\nGive only the correctness score of the prediction (a number): "


def grader_row(question: str, answer: str, prediction: str) -> str:
    gt = answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return " | ".join([question, gt, prediction, ""])


def parse_grade(text: str) -> float:
    """The official reading: the reply's first space-separated token as a number in [0, 1]."""
    token = text.split(" ")[0].strip()
    try:
        score = float(token)
    except ValueError:
        raise ValueError(f"not a number: {text[:60]!r}") from None
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise ValueError(f"score {score} outside [0, 1]")
    return score


def combination(caps: Iterable[str]) -> str:
    return "_".join(sorted(set(caps)))


def aggregate(scores: Mapping[str, float], capabilities: Mapping[str, list[str]]) -> dict[str, Any]:
    """Total, per capability and per capability combination (percent, 1 decimal) of graded items."""
    cap_sum: dict[str, float] = defaultdict(float)
    cap_n: dict[str, int] = defaultdict(int)
    combo_sum: dict[str, float] = defaultdict(float)
    combo_n: dict[str, int] = defaultdict(int)
    for item_id, s in scores.items():
        caps = set(capabilities[item_id])
        for c in caps:
            cap_sum[c] += s
            cap_n[c] += 1
        combo = combination(caps)
        combo_sum[combo] += s
        combo_n[combo] += 1
    n = len(scores)
    # Most frequent first, as the official CSV columns are ordered.
    caps_order = sorted(cap_n, key=lambda c: (-cap_n[c], c))
    combos_order = sorted(combo_n, key=lambda c: (-combo_n[c], c))
    return {
        "total": round(sum(scores.values()) / n * 100, 1) if n else 0.0,
        "per_capability": {c: round(cap_sum[c] / cap_n[c] * 100, 1) for c in caps_order},
        "n_per_capability": {c: cap_n[c] for c in caps_order},
        "per_combination": {c: round(combo_sum[c] / combo_n[c] * 100, 1) for c in combos_order},
        "n_per_combination": {c: combo_n[c] for c in combos_order},
    }


@register_benchmark
class MMVet(Benchmark):
    name = "mm_vet"
    metric = "gpt_score"
    needs_judge: ClassVar[bool] = True

    def __init__(self, *, max_tokens: int = 3, retry_temperatures: Iterable[float] = RETRY_TEMPERATURES):
        self.max_tokens = max_tokens
        self.retry_temperatures = tuple(retry_temperatures)

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        p = Path(path)
        meta_file = p / "mm-vet.json" if p.is_dir() else p
        data = read_json(meta_file)
        items = []
        for qid, row in data.items():
            caps = list(row["capability"])
            unknown = set(caps) - set(CAPABILITIES)
            if not caps or unknown:
                raise ValueError(f"{meta_file}: {qid}: capabilities {caps} (known: {CAPABILITIES})")
            items.append(
                BenchItem(
                    item_id=str(qid),
                    question=row["question"],
                    image=f"images/{row['imagename']}",
                    answers=[row["answer"]],
                    category=combination(caps),
                    meta={"raw_question": row["question"], "capabilities": caps},
                )
            )
        return items

    def judge_task(self, item: BenchItem, prediction: str) -> JudgeTask:
        row = grader_row(item.meta.get("raw_question", item.question), item.answers[0], prediction)
        base = GRADER_PROMPT + "\n" + row
        attempts = [JudgeAttempt([{"role": "user", "content": base}], self._params(0.0))]
        attempts += [
            JudgeAttempt([{"role": "user", "content": base + RETRY_SUFFIX}], self._params(t))
            for t in self.retry_temperatures
        ]
        return JudgeTask(item.item_id, attempts, parse_grade)

    def _params(self, temperature: float) -> dict[str, Any]:
        return {"temperature": temperature, "max_tokens": self.max_tokens}

    def score(
        self,
        preds: Mapping[str, str],
        items: Iterable[BenchItem],
        *,
        missing: Missing = "error",
        judge: Judge | None = None,
    ) -> dict[str, Any]:
        judge = require_judge(judge, self.name)
        pairs, n_missing = pair_predictions(preds, items, missing)
        capabilities = {it.item_id: list(it.meta["capabilities"]) for it, _ in pairs}
        asked = [(it, p) for it, p in pairs if p is not None]
        verdicts = judge.run([self.judge_task(it, p) for it, p in asked])
        by_id = {v.item_id: v for v in verdicts}
        # Summed in item order, as the official script sums its grade file (float sums depend on order).
        scores: dict[str, float] = {}
        for it, p in pairs:
            if p is None:
                scores[it.item_id] = 0.0
            elif by_id[it.item_id].ok:
                scores[it.item_id] = by_id[it.item_id].value
        agg = aggregate(scores, capabilities)
        return self.result(
            overall=agg["total"],
            per_category=agg["per_capability"],
            **agg,
            n=len(scores),
            n_missing=n_missing,
            **judge_report(judge, verdicts),
            item_scores=scores,
        )
