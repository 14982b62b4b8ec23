"""Dataset-wide pools of values (categories, captions, colours, ...) that wrong options come from.

A multiple-choice task declares in `catalog.yaml` where its negatives come from: `other_images`
(a value some other image has: Vision-Flan's "negatives sampled from other images", so negatives
follow the data's own frequencies) or `other_classes` (any other value of the pool's vocabulary,
uniformly, or of a class list given in the catalog). A pool is built once per build from all
records, lazily (only pools a selected task uses), keyed by an optional group (e.g. VQAv2's
question type, so a colour question gets colour negatives).

Drawing is seeded by the caller's RNG and bounded: `other_images` samples images at random (no
pass over the whole dataset per sample) and falls back to the vocabulary in a seeded order when the
data has too few acceptable values.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from vitune.data.records import ImageRecord
from vitune.tasks.helpers import VQA_SOURCES, colors_of, objects_of

Extractor = Callable[[ImageRecord], Iterable[tuple[str, str]]]  # (group, value) pairs of one image


def _objects(r: ImageRecord) -> Iterable[tuple[str, str]]:
    return (("", o.name) for o in objects_of(r, "coco"))


def _colors(r: ImageRecord) -> Iterable[tuple[str, str]]:
    return (("", c) for o in objects_of(r, "vg") for c in colors_of(o))


def _captions(r: ImageRecord) -> Iterable[tuple[str, str]]:
    return (("", c.strip()) for c in r.captions if c.strip())


def _labels(r: ImageRecord) -> Iterable[tuple[str, str]]:
    return (("", label) for label in r.labels)


def _ocr(r: ImageRecord) -> Iterable[tuple[str, str]]:
    return (("", t) for t in r.ocr_tokens if t.strip())


def _vqa_answers(r: ImageRecord) -> Iterable[tuple[str, str]]:
    return (
        (qa.question_type, qa.majority_answer()) for qa in r.qas if qa.source in VQA_SOURCES and qa.answers
    )


def _okvqa_answers(r: ImageRecord) -> Iterable[tuple[str, str]]:
    return (("", qa.majority_answer()) for qa in r.qas if qa.source == "okvqa" and qa.answers)


def _book_genres(r: ImageRecord) -> Iterable[tuple[str, str]]:
    genre = r.meta.get("ocrvqa", {}).get("genre") if isinstance(r.meta.get("ocrvqa"), dict) else None
    return [("", genre)] if isinstance(genre, str) and genre else []


POOLS: dict[str, Extractor] = {
    "objects": _objects,  # object categories (COCO instances where present)
    "colors": _colors,  # colour attributes of Visual Genome objects
    "captions": _captions,  # captions (COCO)
    "labels": _labels,  # image-level class labels (image folders)
    "ocr": _ocr,  # OCR tokens (TextVQA Rosetta)
    "vqa_answers": _vqa_answers,  # VQAv2 majority answers, grouped by question type
    "okvqa_answers": _okvqa_answers,  # OK-VQA majority answers
    "book_genres": _book_genres,  # OCR-VQA book genres
}


@dataclass(slots=True)
class Pool:
    """The distinct values of each image that has any (file order), and the sorted vocabulary."""

    name: str
    image_ids: list[str]
    values: list[tuple[str, ...]]
    vocab: tuple[str, ...]

    def other_images(
        self, rng: random.Random, k: int, *, image_id: str, reject: Callable[[str], bool]
    ) -> list[str]:
        """Up to `k` distinct values, each taken from a randomly drawn image other than `image_id`."""
        out: list[str] = []
        n = len(self.image_ids)
        for _ in range(30 * k + 30 if n else 0):
            if len(out) == k:
                return out
            i = rng.randrange(n)
            if self.image_ids[i] == image_id:
                continue
            v = rng.choice(self.values[i])
            if v not in out and not reject(v):
                out.append(v)
        # Rare values or a tiny dataset: walk the vocabulary from a random start instead.
        return self._walk(rng, k, out, self.vocab, reject)

    @staticmethod
    def _walk(
        rng: random.Random, k: int, out: list[str], vocab: Sequence[str], reject: Callable[[str], bool]
    ) -> list[str]:
        if len(out) == k or not vocab:
            return out
        start = rng.randrange(len(vocab))
        for j in range(len(vocab)):
            v = vocab[(start + j) % len(vocab)]
            if v not in out and not reject(v):
                out.append(v)
                if len(out) == k:
                    break
        return out


def other_classes(
    rng: random.Random, k: int, classes: Sequence[str], reject: Callable[[str], bool]
) -> list[str]:
    """Up to `k` distinct values drawn uniformly from `classes` (a vocabulary or a catalog list)."""
    cands = [v for v in dict.fromkeys(classes) if not reject(v)]
    return cands if len(cands) <= k else rng.sample(cands, k)


def build_pools(name: str, records: Sequence[ImageRecord]) -> dict[str, Pool]:
    """The pool `name` over `records`, one `Pool` per group."""
    if name not in POOLS:
        raise KeyError(f"unknown option pool {name!r}; known: {', '.join(sorted(POOLS))}")
    extract = POOLS[name]
    per_group: dict[str, tuple[list[str], list[tuple[str, ...]]]] = {}
    for rec in records:
        by_group: dict[str, dict[str, None]] = {}
        for group, value in extract(rec):
            by_group.setdefault(group, {})[value] = None
        for group, vals in by_group.items():
            ids, values = per_group.setdefault(group, ([], []))
            ids.append(rec.image_id)
            values.append(tuple(vals))
    return {
        g: Pool(name, ids, values, tuple(sorted({v for vs in values for v in vs})))
        for g, (ids, values) in per_group.items()
    }
