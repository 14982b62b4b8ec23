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
set order), sum / items × 100; each rounded to 1 decimal as officially, with numpy's rounding
(the official rounds numpy floats: `np_round1`).
`missing="wrong"` gives a missing answer 0.0 without asking the judge.

Repeated runs (`runs=N`, the official `--num_run`; the paper used 5): the grader is asked again
for every item in each run (one run after the other, each with its own cache keys, see
`eval/judge.py`). Each run is aggregated on its own; the reported total and every capability and
combination score is the mean of the unrounded per-run scores, rounded to 1 decimal, and
`total_std` / `per_capability_std` are numpy's population std (ddof=0) across runs, rounded the
same way, as officially (which reports only the total's std). An item whose judging fails in a run
is left out of that run only; `n_judge_failed_per_run` counts them per run, `runs[r]` holds run r's
scores, counts and failures. Across runs, `n` (and `n_per_*`) counts the items scored in every run,
`n_judge_failed` / `judge_failed_ids` the items that failed in at least one, and `item_scores` holds
an item's mean over the runs that scored it. A run that scored no item at all is left out of the
means, stds and `n` (its total is None), and a run without a scored item of a capability or
combination is left out of that one's mean and std: a failure is never a score of 0. With
N > 1 the result also has `overall_std` and `per_category_std`, the same stds under the generic
names that result tables look for.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vitune.eval.benchmarks.base import (
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    read_json,
    register_benchmark,
)
from vitune.eval.judge import (
    Judge,
    JudgeAttempt,
    JudgeTask,
    Verdict,
    failure_report,
    judge_report,
    mean_std,
    require_judge,
)

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


def _percentages(scores: Mapping[str, float], capabilities: Mapping[str, list[str]]) -> dict[str, Any]:
    """Unrounded total (None without any graded item), per capability and per combination, with counts."""
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
        "total": sum(scores.values()) / n * 100 if n else None,
        "per_capability": {c: cap_sum[c] / cap_n[c] * 100 for c in caps_order},
        "n_per_capability": {c: cap_n[c] for c in caps_order},
        "per_combination": {c: combo_sum[c] / combo_n[c] * 100 for c in combos_order},
        "n_per_combination": {c: combo_n[c] for c in combos_order},
    }


def np_round1(x: float) -> float:
    """The official `round(np.float64, 1)`, i.e. numpy's rounding: x * 10, round half to even, / 10.

    Not Python's correctly rounded `round(float, 1)`: they differ at .x5 edges (numpy gives 0.2 for
    0.15, whose binary value is below .15; and 1.0 for 1.05).
    """
    return float(np.round(np.float64(x), 1))


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {k: np_round1(v) for k, v in values.items()}


def aggregate(scores: Mapping[str, float], capabilities: Mapping[str, list[str]]) -> dict[str, Any]:
    """Total, per capability and per capability combination (percent, 1 decimal) of graded items."""
    raw = _percentages(scores, capabilities)
    return {
        "total": np_round1(raw["total"]) if raw["total"] is not None else 0.0,
        "per_capability": _rounded(raw["per_capability"]),
        "n_per_capability": raw["n_per_capability"],
        "per_combination": _rounded(raw["per_combination"]),
        "n_per_combination": raw["n_per_combination"],
    }


def _across_runs(per_run: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Rounded mean and std per key over the runs that have it; keys ordered by how many runs do."""
    counts: dict[str, int] = defaultdict(int)
    for run in per_run:
        for k in run:
            counts[k] += 1
    mean, std = {}, {}
    for k in sorted(counts, key=lambda k: -counts[k]):  # stable: the first run's order among ties
        m, s = mean_std([run[k] for run in per_run if k in run])
        mean[k], std[k] = np_round1(m), np_round1(s)
    return mean, std


def _merge_failures(runs: list[dict[str, Any]], order: list[str]) -> dict[str, Any]:
    """Items failed in at least one run (in item order), each with the reason of every failed run."""
    reasons: dict[str, list[str]] = defaultdict(list)
    for r, run in enumerate(runs):
        for item_id, why in run["judge_failures"].items():
            reasons[item_id].append(f"run {r}: {why}")
    ids = [i for i in order if i in reasons]
    return {
        "n_judge_failed": len(ids),
        "judge_failed_ids": ids,
        "judge_failures": {i: "; ".join(reasons[i]) for i in ids},
    }


@register_benchmark
class MMVet(Benchmark):
    name = "mm_vet"
    metric = "gpt_score"
    scorer_version = 2  # 2: numpy rounding
    needs_judge: ClassVar[bool] = True

    # `vitune eval --judge-runs N` reaches the benchmarks that declare this (as the `runs` option).
    supports_judge_runs: ClassVar[bool] = True

    def __init__(
        self,
        *,
        max_tokens: int = 3,
        retry_temperatures: Iterable[float] = RETRY_TEMPERATURES,
        runs: int = 1,
    ):
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise ValueError(f"mm_vet: runs must be a whole number >= 1, got {runs!r}")
        self.max_tokens = max_tokens
        self.retry_temperatures = tuple(retry_temperatures)
        self.runs = runs

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

    def judge_task(self, item: BenchItem, prediction: str, run: int = 0) -> JudgeTask:
        row = grader_row(item.meta.get("raw_question", item.question), item.answers[0], prediction)
        base = GRADER_PROMPT + "\n" + row
        attempts = [JudgeAttempt([{"role": "user", "content": base}], self._params(0.0))]
        attempts += [
            JudgeAttempt([{"role": "user", "content": base + RETRY_SUFFIX}], self._params(t))
            for t in self.retry_temperatures
        ]
        return JudgeTask(item.item_id, attempts, parse_grade, run=run)

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
        runs: list[dict[str, Any]] = []
        raw_runs: list[dict[str, Any]] = []
        verdicts: list[Verdict] = []
        for r in range(self.runs):
            # One run after the other, as the official script: a run killed half-way leaves the
            # earlier runs whole in the cache, and run r's requests never race run r+1's.
            run_verdicts = judge.run([self.judge_task(it, p, run=r) for it, p in asked])
            verdicts += run_verdicts
            by_id = {v.item_id: v for v in run_verdicts}
            # Summed in item order, as the official script sums its grade file (float sums depend on order).
            scores: dict[str, float] = {}
            for it, p in pairs:
                if p is None:
                    scores[it.item_id] = 0.0
                elif by_id[it.item_id].ok:
                    scores[it.item_id] = by_id[it.item_id].value
            raw_runs.append(_percentages(scores, capabilities))
            run = {"run": r, **aggregate(scores, capabilities), "n": len(scores)}
            if not scores:
                run["total"] = None  # nothing scored in this run: no total, not a 0.0 that reads as one
            runs.append({**run, **failure_report(run_verdicts), "item_scores": scores})
        report = judge_report(judge, verdicts)  # replies of every run; failures are set below
        per_run_failed = [run["n_judge_failed"] for run in runs]
        if self.runs == 1:
            agg = {k: runs[0][k] for k in ("per_capability", "n_per_capability")}
            agg |= {k: runs[0][k] for k in ("per_combination", "n_per_combination")}
            # 0.0 with n == 0 when nothing was scored, as single runs always reported it.
            agg = {"total": runs[0]["total"] if runs[0]["total"] is not None else 0.0, **agg}
            failures = failure_report(verdicts)
            extra: dict[str, Any] = {}
            n, item_scores = runs[0]["n"], runs[0]["item_scores"]
        else:
            agg, extra, n, item_scores = self._combine(runs, raw_runs, capabilities)
            failures = _merge_failures(runs, list(capabilities))
        return self.result(
            overall=agg["total"],
            per_category=agg["per_capability"],
            **agg,
            n=n,
            n_missing=n_missing,
            # The runner reads per-category counts from here (MM-Vet's items are not one category each).
            n_per_category=agg["n_per_capability"],
            **extra,
            judge_runs=self.runs,
            total_per_run=[run["total"] for run in runs],
            n_judge_failed_per_run=per_run_failed,
            **{**report, **failures},
            item_scores=item_scores,
            runs=runs,
        )

    @staticmethod
    def _combine(
        runs: list[dict[str, Any]], raw_runs: list[dict[str, Any]], capabilities: Mapping[str, list[str]]
    ) -> tuple[dict[str, Any], dict[str, Any], int, dict[str, float]]:
        """Means and stds across runs; counts and item scores over the items every run scored."""
        totals = [raw["total"] for raw in raw_runs if raw["total"] is not None]
        # No run scored anything: 0.0 as a single run reports it (n == 0 says why).
        total, total_std = mean_std(totals) if totals else (0.0, 0.0)
        per_cap, per_cap_std = _across_runs([raw["per_capability"] for raw in raw_runs])
        per_combo, _ = _across_runs([raw["per_combination"] for raw in raw_runs])
        # A run that scored nothing is out of the mean, so it does not empty the counts either.
        scored = [run for run in runs if run["n"]]
        in_every = [i for i in capabilities if all(i in run["item_scores"] for run in scored)]
        counts = _percentages({i: 0.0 for i in in_every}, capabilities)
        agg = {
            "total": np_round1(total),
            "per_capability": per_cap,
            "n_per_capability": {c: counts["n_per_capability"].get(c, 0) for c in per_cap},
            "per_combination": per_combo,
            "n_per_combination": {c: counts["n_per_combination"].get(c, 0) for c in per_combo},
        }
        std = {
            "total_std": np_round1(total_std),
            "overall_std": np_round1(total_std),
            "per_capability_std": per_cap_std,
            "per_category_std": per_cap_std,
        }
        item_scores = {}
        for i in capabilities:
            got = [run["item_scores"][i] for run in runs if i in run["item_scores"]]
            if got:
                item_scores[i] = sum(got) / len(got)
        return agg, std, len(in_every), item_scores
