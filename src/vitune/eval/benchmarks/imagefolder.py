"""Image classification from a class-folder layout (`root/<class>/**/*.jpg`), scored by naming the class.

The torchvision `ImageFolder` layout that CIFAR/MNIST/miniImageNet exports use, read through
`vitune.sources.read_imagefolder` (hidden files skipped, unreadable images refused into its ledger
and reported by `load` as an error, never dropped silently). Item ids are the image paths relative
to `root`; the image root is `root` itself.

Prompt (Vision-Flan's forgetting probe asks free-form): "What is the main object in this image?" +
"\\nAnswer the question using a single word or phrase.". Vision-Flan scores these answers with an
LLM judge ("does the answer name the class?"); the offline rule here decides the same question
deterministically: the answer is lowercased, punctuation becomes spaces, and it is right when it
contains the gold class name (or its plural; "_" and "-" in folder names read as spaces) as whole
words and names NO other class of the benchmark. "a red circle" -> circle; "circle or square" ->
wrong (two classes); "circles" -> circle. Reported: accuracy overall and per class.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vitune.eval.benchmarks.base import (
    SHORT_ANSWER,
    BenchItem,
    Benchmark,
    Missing,
    group_pct,
    pair_predictions,
    pct,
    register_benchmark,
)
from vitune.utils.text import plural

QUESTION = "What is the main object in this image?"
_NON_WORD = re.compile(r"[^a-z0-9]+")


def _words(text: str) -> str:
    # Padded with spaces so that " circle " matches whole words only.
    return " " + " ".join(_NON_WORD.sub(" ", text.lower()).split()) + " "


def _forms(label: str) -> list[str]:
    base = " ".join(_NON_WORD.sub(" ", label.lower()).split())
    return [base, plural(base)] if base else []


def named_classes(answer: str, classes: Iterable[str]) -> list[str]:
    """The classes whose name (or plural) occurs in `answer` as whole words, in `classes` order."""
    text = _words(answer)
    return [c for c in classes if any(f" {f} " in text for f in _forms(c))]


@register_benchmark
class ImageFolderClassification(Benchmark):
    name = "imagefolder"
    prompt_suffix = SHORT_ANSWER

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        from vitune.data.ledger import Ledger
        from vitune.sources.imagefolder import read_imagefolder

        ledger = Ledger()
        result = read_imagefolder(Path(path), ledger=ledger, source="imagefolder")
        if len(ledger):
            # A benchmark that quietly loses images reports a score on a different test set.
            first = ledger.items[0]
            raise ValueError(f"{path}: {len(ledger)} image(s) refused, e.g. {first.locator}: {first.reason}")
        classes = sorted({label for rec in result.records.values() for label in rec.labels})
        items = []
        for rec in result.records.values():
            items.append(
                BenchItem(
                    item_id=rec.file_name,
                    question=self.prompt(QUESTION),
                    image=rec.file_name,
                    answers=list(rec.labels),
                    category=rec.labels[0],
                    meta={"raw_question": QUESTION, "classes": classes},
                )
            )
        return items

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        pairs, n_missing = pair_predictions(preds, items, missing)
        by_class: dict[str, list[bool]] = defaultdict(list)
        hits = []
        n_several = 0
        for it, p in pairs:
            named = [] if p is None else named_classes(p, it.meta["classes"])
            n_several += len(named) > 1
            ok = named == [it.category]
            hits.append(ok)
            by_class[it.category].append(ok)
        return self.result(
            overall=pct(sum(hits), len(hits)),
            per_category=group_pct(by_class),
            n=len(hits),
            n_several_classes=n_several,
            n_missing=n_missing,
        )
