"""What the world's held-out images support as benchmark questions, shared by every world writer.

`image_facts` reads one merged `ImageRecord` into what its annotations state (COCO counts, VG
objects with colour / sign text, unambiguous left/right/above/below relations), `universe` the
split-wide statistics negatives are drawn from, `choice_questions` every multiple-choice question
kind an image supports (false options false by construction). The writers of `world_bench.py`
and `world_bench_extra.py` use these, with `bench_rng` for every seeded choice, `place_file` to put
an image in a benchmark folder and `fresh_dir` to replace a benchmark folder only when complete.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune.data.paths import resolve_image
from vitune.data.records import ImageRecord
from vitune.utils.hashing import derive_seed
from vitune.utils.text import COLOR_WORDS, plural

OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

# ---- what an image's annotations say -----------------------------------------------------------


@dataclass
class Thing:
    """An annotated object with what questions need; `ref` names it unambiguously, or is None."""

    oid: str
    name: str
    color: str | None
    text: str | None
    ref: str | None = None


@dataclass
class ImageFacts:
    rec: ImageRecord
    path: Path  # the image file in the world
    counts: Counter[str]  # COCO category -> instances
    things: list[Thing]
    relations: list[tuple[Thing, str, Thing]]  # left/right/above/below between nameable things

    @property
    def image_id(self) -> str:
        return self.rec.image_id

    @property
    def present(self) -> list[str]:
        return sorted(self.counts)

    def coco_name(self, split: str) -> str:
        if not self.image_id.isdigit():
            raise ValueError(f"image id {self.image_id!r} is not a COCO (integer) id")
        return f"COCO_{split}_{int(self.image_id):012d}.jpg"

    def directions(self, a: Thing, b: Thing) -> set[str]:
        """Every stated direction of `a` relative to `b` (b left of a means a right of b)."""
        out = {p for s, p, o in self.relations if s is a and o is b}
        return out | {OPPOSITE[p] for s, p, o in self.relations if s is b and o is a}


def image_facts(rec: ImageRecord, image_root: Path) -> ImageFacts:
    coco = [o for o in rec.objects if o.source == "coco"] or rec.objects
    vg = [o for o in rec.objects if o.source == "vg"]
    things = []
    for o in vg:
        colors = [a for a in o.attributes if a in COLOR_WORDS]
        texts = [a[5:] for a in o.attributes if a.startswith("text:")]
        things.append(Thing(o.object_id, o.name, colors[0] if colors else None, texts[0] if texts else None))
    by_name = Counter(t.name for t in things)
    by_name_color = Counter((t.name, t.color) for t in things)
    for t in things:
        if by_name[t.name] == 1:
            t.ref = t.name
        elif t.color and by_name_color[(t.name, t.color)] == 1:
            t.ref = f"{t.color} {t.name}"
    ids = {t.oid: t for t in things}
    rels = [
        (ids[r.subject_id], r.predicate, ids[r.object_id])
        for r in rec.relations
        if r.predicate in OPPOSITE and r.subject_id in ids and r.object_id in ids
    ]
    rels = [(s, p, o) for s, p, o in rels if s.ref and o.ref and s is not o]
    return ImageFacts(
        rec, resolve_image(image_root, rec.file_name), Counter(o.name for o in coco), things, rels
    )


@dataclass
class Universe:
    """Split-wide statistics the negatives are drawn from."""

    categories: list[str]
    frequency: Counter[str]  # images containing each category
    cooccur: dict[str, Counter[str]] = field(default_factory=dict)
    colors: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def absent(self, f: ImageFacts) -> list[str]:
        return [c for c in self.categories if c not in f.counts]


def universe(facts: Sequence[ImageFacts]) -> Universe:
    freq: Counter[str] = Counter()
    co: dict[str, Counter[str]] = defaultdict(Counter)
    for f in facts:
        freq.update(f.present)
        for a in f.present:
            co[a].update(b for b in f.present if b != a)
    colors = sorted({t.color for f in facts for t in f.things if t.color})
    texts = sorted({t.text for f in facts for t in f.things if t.text})
    return Universe(sorted(freq), freq, dict(co), colors, texts)


def an(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def bench_rng(seed: int, *parts: object) -> random.Random:
    return random.Random(derive_seed(seed, "world_bench", *parts))


# ---- question kinds shared by the multiple-choice benchmarks -----------------------------------


@dataclass
class Choice:
    question: str
    correct: str
    distractors: list[str]


def choice_questions(f: ImageFacts, u: Universe, rng: random.Random) -> dict[str, Choice]:
    """Every multiple-choice question kind this image supports (at most one question per kind)."""
    out: dict[str, Choice] = {}
    colored = [t for t in f.things if t.color and t.ref == t.name]  # "the star": colour not given away
    if colored and len(u.colors) > 1:
        t = rng.choice(colored)
        wrong = [c for c in u.colors if c != t.color]
        out["color"] = Choice(f"What color is the {t.name}?", t.color, rng.sample(wrong, min(3, len(wrong))))  # type: ignore[arg-type]
    signs = [t for t in f.things if t.text and t.ref]
    if signs and len(u.texts) > 1:
        t = rng.choice(signs)
        wrong = [x for x in u.texts if x != t.text]
        out["ocr"] = Choice(f"What does the {t.ref} say?", t.text, rng.sample(wrong, min(3, len(wrong))))  # type: ignore[arg-type]
    absent = u.absent(f)
    if f.counts and absent:
        out["identity"] = Choice(
            "Which of these objects is in the image?",
            rng.choice(f.present),
            rng.sample(absent, min(3, len(absent))),
        )
    if f.counts:
        cat = rng.choice(f.present)
        n = f.counts[cat]
        wrong = [str(k) for k in range(1, max(6, n + 3)) if k != n]
        out["count"] = Choice(f"How many {plural(cat)} are in the image?", str(n), rng.sample(wrong, 3))
    if f.relations:
        a, pred, b = rng.choice(f.relations)
        true = f.directions(a, b)
        wrong = sorted({OPPOSITE[p] for p in true} - true)
        if wrong:
            out["spatial"] = Choice(
                f"Where is the {a.ref} relative to the {b.ref}?",
                f"{pred} the {b.ref}",
                [f"{w} the {b.ref}" for w in wrong],
            )
    return out


def balanced(
    options: Sequence[tuple[ImageFacts, dict[str, Any]]], rng: random.Random
) -> list[tuple[ImageFacts, str, Any]]:
    """One kind per image: the least used so far among those it supports (seeded tie-break)."""
    used: Counter[str] = Counter()
    out = []
    for f, kinds in options:
        if not kinds:
            continue
        least = min(used[k] for k in kinds)
        kind = rng.choice(sorted(k for k in kinds if used[k] == least))
        used[kind] += 1
        out.append((f, kind, kinds[kind]))
    return out


def shuffled(c: Choice, rng: random.Random) -> tuple[list[str], int]:
    opts = [c.correct, *c.distractors]
    rng.shuffle(opts)
    return opts, opts.index(c.correct)


def place_file(src: Path, dst: Path) -> None:
    """A hard link when possible (same file system, no copy), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


@contextlib.contextmanager
def fresh_dir(path: Path) -> Iterator[Path]:
    """A new folder that replaces `path` only when complete: no stale files from an earlier run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
