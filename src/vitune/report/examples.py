"""Example predictions of an eval run: per benchmark a few right and wrong answers with their
images, and the share of empty (and, where the scorer counts them, unparsable) answers.

Everything is read from the `vitune eval` output folder (`results.json`, `<bench>/predictions.json`,
`<bench>/scores.json`) and the benchmark files it names; nothing is generated. Whether an answer is
right comes from the scorer: its per-item output when `scores.json` has one (`per_item`), else the
benchmark's own official scorer run on that one item (`Benchmark.score`). Judged benchmarks without
per-item output have no verdict and show no examples. Items are visited in a seeded order, so the
same run gives the same examples.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune.report.assets import Thumb, thumbnail
from vitune.utils.hashing import derive_seed

log = logging.getLogger(__name__)

MAX_SCORED = 200  # items scored one by one while looking for right and wrong examples
# Scorer fields that count answers the scorer could not read (the names vary by benchmark).
PARSE_WORDS = ("empty", "unparsable", "unparseable", "invalid", "no_answer", "refus")


@dataclass
class Example:
    item_id: str
    question: str
    prediction: str
    answers: list[str]
    options: dict[str, str]
    score: float
    thumb: Thumb


@dataclass
class BenchExamples:
    bench: str
    n: int  # predictions read
    n_empty: int
    scorer_counts: dict[str, Any] = field(default_factory=dict)  # e.g. n_unparsable, when reported
    right: list[Example] = field(default_factory=list)
    wrong: list[Example] = field(default_factory=list)
    note: str = ""  # why there are no examples, when there are none

    @property
    def empty_share(self) -> float:
        return 100.0 * self.n_empty / self.n if self.n else 0.0


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _scorer_counts(*sources: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for src in sources:
        if not isinstance(src, Mapping):
            continue
        for k, v in src.items():
            if (
                any(w in k.lower() for w in PARSE_WORDS)
                and isinstance(v, int | float)
                and not isinstance(v, bool)
            ):
                out.setdefault(k, v)
    return out


def _per_item_score(v: Any) -> float | None:
    if isinstance(v, bool):
        return 100.0 if v else 0.0
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, Mapping):
        if isinstance(v.get("correct"), bool):
            return 100.0 if v["correct"] else 0.0
        for k in ("score", "accuracy"):
            if isinstance(v.get(k), int | float) and not isinstance(v.get(k), bool):
                return float(v[k])
    return None


def item_score(bench: Any, item: Any, pred: str, per_item: Mapping[str, Any]) -> float | None:
    """The item's score (> 0: right): the scorer's per-item entry, else the official scorer on it alone."""
    if item.item_id in per_item:
        return _per_item_score(per_item[item.item_id])
    if bench.needs_judge:
        return None
    try:
        s = bench.score({item.item_id: pred}, [item], missing="wrong")
    except (ValueError, KeyError, ZeroDivisionError, TypeError) as e:
        log.info("%s %s: no single-item score (%s)", bench.name, item.item_id, e)
        return None
    # An accuracy where the scorer gives one: POPE's overall is an F1, which is 0 for a lone
    # correct "no" (no true positives), while its per-split accuracy is the item's verdict.
    cats = [c for c in (s.get("per_category") or {}).values() if isinstance(c, Mapping)]
    v = s.get("accuracy", cats[0].get("accuracy", s.get("overall")) if len(cats) == 1 else s.get("overall"))
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def bench_examples(run_dir: Path, name: str, entry: Mapping[str, Any], *, k: int, seed: int) -> BenchExamples:
    """`k` right and `k` wrong answers of one benchmark of the run in `run_dir`."""
    from vitune.eval.benchmarks import get_benchmark

    preds = _read(run_dir / name / "predictions.json")
    scores = _read(run_dir / name / "scores.json") or {}
    if not isinstance(preds, dict):
        return BenchExamples(name, 0, 0, note=f"{run_dir / name / 'predictions.json'}: missing or unreadable")
    n_empty = sum(1 for p in preds.values() if not str(p).strip())
    out = BenchExamples(name, len(preds), n_empty, _scorer_counts(entry, entry.get("extra"), scores))
    try:
        # Scored under the run's own protocol: a verdict must agree with the run's score.
        bench = get_benchmark(name, entry.get("protocol") or None)
        items = bench.load(Path(entry["path"]))
    except (KeyError, OSError, ValueError) as e:
        out.note = f"benchmark files not readable ({e})"
        return out
    per_item = scores.get("per_item") if isinstance(scores.get("per_item"), Mapping) else {}
    by_id = {it.item_id: it for it in items if it.item_id in preds}
    ids = sorted(by_id)
    random.Random(derive_seed(seed, "report.examples", name)).shuffle(ids)
    for item_id in ids[:MAX_SCORED]:
        if len(out.right) >= k and len(out.wrong) >= k:
            break
        item, pred = by_id[item_id], str(preds[item_id])
        score = item_score(bench, item, pred, per_item)
        bucket = None if score is None else (out.right if score > 0 else out.wrong)
        if bucket is None or len(bucket) >= k:
            continue
        bucket.append(
            Example(
                item_id,
                str(item.meta.get("raw_question") or item.question),
                pred,
                [str(a) for a in item.answers[:5]],
                dict(item.options),
                score,
                thumbnail(entry.get("image_root"), item.image),
            )
        )
    if not out.right and not out.wrong:
        out.note = "no per-item verdicts (a judged benchmark, or a scorer that needs whole groups)"
    return out


def eval_examples(
    run_dir: str | Path, results: Mapping[str, Any], *, k: int = 2, seed: int = 0
) -> list[BenchExamples]:
    """Examples for every benchmark of one eval run (`results` is its results.json)."""
    return [
        bench_examples(Path(run_dir), name, entry, k=k, seed=seed)
        for name, entry in results.get("benchmarks", {}).items()
    ]
