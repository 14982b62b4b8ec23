"""POPE from the official JSONL files (`coco_pope_{random,popular,adversarial}.json`).

Each line: `{"question_id", "image", "text", "label": "yes"|"no"}`; the split comes from the file
name (the part after the last "_"), so ids are `<split>/<question_id>` (ids restart at 1 in every
file). Prompt: text + "\\nAnswer the question using a single word or phrase." (LLaVA-1.5).

Yes/no rule (POPE's evaluate.py, reproduced by LLaVA `eval_pope.py`): keep the text before the
first "."; delete ","; split on single spaces (`split(' ')`, so "No\\nthere" is ONE word); the answer
is "no" when any word is exactly "No", "not" or "no", else "yes". Hence "Not sure" -> yes (capital
N is not in the list), "not sure" -> no, "NO" -> yes, "No, there is not." -> no.
Positive = yes. Per split: accuracy, precision, recall, F1, yes-ratio of the PREDICTIONS (×100);
`overall` is the mean F1 of the splits (what LLaVA reports). Where the official code would divide
by zero (no predicted positives) the metric is reported as 0.0.
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
    pct,
    read_jsonl,
    register_benchmark,
)

_NO_WORDS = ("No", "not", "no")


def pope_yes_no(text: str) -> str:
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if any(w in _NO_WORDS for w in words) else "yes"


def pope_metrics(preds: list[str], labels: list[str]) -> dict[str, float]:
    tp = sum(p == "yes" and g == "yes" for p, g in zip(preds, labels, strict=True))
    fp = sum(p == "yes" and g == "no" for p, g in zip(preds, labels, strict=True))
    tn = sum(p == "no" and g == "no" for p, g in zip(preds, labels, strict=True))
    fn = sum(p == "no" and g == "yes" for p, g in zip(preds, labels, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = len(preds)
    return {
        "accuracy": pct(tp + tn, n),
        "precision": 100 * precision,
        "recall": 100 * recall,
        "f1": 100 * f1,
        "yes_ratio": pct(preds.count("yes"), n),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "n": n,
    }


@register_benchmark
class POPE(Benchmark):
    name = "pope"
    metric = "mean_f1"
    prompt_suffix = SHORT_ANSWER

    def unparsable(self, prediction: str, item: BenchItem) -> bool:
        """No "no" word and no word starting with "yes": the official rule's fallback to "yes"."""
        return pope_yes_no(prediction) == "yes" and not any(
            w.lower().startswith("yes") for w in prediction.split(".")[0].replace(",", "").split()
        )

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        """`path`: one POPE file, or a folder whose `*pope_*.json[l]` files are the splits."""
        p = Path(path)
        files = sorted([*p.glob("*pope_*.json"), *p.glob("*pope_*.jsonl")]) if p.is_dir() else [p]
        if not files:
            raise FileNotFoundError(f"{p}: no *pope_<split>.json files")
        items = []
        for f in files:
            split = f.stem.rsplit("_", 1)[-1]
            for row in read_jsonl(f):
                label = str(row["label"]).strip().lower()
                if label not in ("yes", "no"):
                    raise ValueError(f"{f}: question {row['question_id']}: label {row['label']!r}")
                items.append(
                    BenchItem(
                        item_id=f"{split}/{row['question_id']}",
                        question=self.prompt(row["text"]),
                        image=row["image"],
                        answers=[label],
                        category=split,
                        meta={"raw_question": row["text"], "question_id": row["question_id"]},
                    )
                )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        by_split: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
        for it, p in pairs:
            gold = it.answers[0]
            # A missing answer counted as wrong is the opposite of the label.
            yn = ("no" if gold == "yes" else "yes") if p is None else pope_yes_no(p)
            by_split[it.category][0].append(yn)
            by_split[it.category][1].append(gold)
        per = {s: pope_metrics(pl, gl) for s, (pl, gl) in sorted(by_split.items())}
        f1s = [m["f1"] for m in per.values()]
        return self.result(
            overall=sum(f1s) / len(f1s) if f1s else 0.0,
            per_category=per,
            n=sum(m["n"] for m in per.values()),
            n_missing=n_missing,
        )
