"""Image classification tasks from class folders (`ImageRecord.labels`): options, open, yes/no.

Only single-label images are used: with two labels, "what is shown" has two right answers. Wrong
options and "no" questions take another class of the same dataset (the folder names), which is
how Vision-Flan turned classification datasets into instructions.
"""

from __future__ import annotations

import random

from vitune.data.records import ImageRecord
from vitune.tasks.spec import BuildContext, Sample, builder


def _label(record: ImageRecord) -> str | None:
    return record.labels[0] if len(record.labels) == 1 else None


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


@builder("image_classification_mc")
def image_classification_mc(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    label = _label(record)
    return [Sample({"answer": label}, exclude=frozenset(record.labels))] if label else []


@builder("image_classification_open")
def image_classification_open(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    label = _label(record)
    return [Sample({"label": label})] if label else []


@builder("image_classification_yes_no")
def image_classification_yes_no(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    label = _label(record)
    if label is None:
        return []
    pool = ctx.pool("labels")
    others = [c for c in (pool.vocab if pool else ()) if c != label]
    if others and rng.random() < 0.5:
        name, answer = rng.choice(others), "No"
    else:
        name, answer = label, "Yes"
    return [Sample({"article": _article(name), "name": name, "answer": answer}, {"label": answer.lower()})]
