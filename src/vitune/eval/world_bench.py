"""Benchmarks in their official formats, built from the held-out images of the embedded world.

`write_world_benchmarks(world, out)` reads one split of the world ONLY through `vitune.sources`
(`load_world`: COCO instances + Visual Genome + VQAv2 files) and writes, under `out/`:

    vqav2/        v2_OpenEnded_mscoco_<split>_questions.json + v2_mscoco_<split>_annotations.json,
                  images COCO_<split>_<image_id:012d>.jpg (the split's own VQAv2 questions)
    pope/         world_pope_{random,popular,adversarial}.json (JSON lines, as POPE ships them):
                  per image up to `pope_pairs` present objects ("yes") and as many absent ones ("no"),
                  absent ones drawn at random / the split's most frequent objects / the objects that
                  co-occur most with the image's objects (adversarial)
    mme/          <subtask>/<image_id>.jpg + <image_id>.txt with two lines `question<TAB>Yes|No`, one
                  yes and one no question per image (existence, count, position, color, OCR)
    mmbench/      world_mmbench_dev.tsv: base64 images, options A-D, plus VLMEvalKit's circular copies
                  (index + k*1e6, options rotated, answer letter moved, image = index of its main row)
    seed_bench/   SEED-Bench.json (4 choices, letter answers, SEED question-type ids) + images
    imagefolder/  <class>/<image_id>_<k>.jpg: one crop per COCO object box (10% margin), per class

Each file is what the registered loader in `eval/benchmarks/` reads; `{name: path}` is returned with
the path that loader takes. Every random choice comes from `derive_seed(seed, benchmark, image id)`,
so the same world and seed give the same bytes. Question content is only what the annotations state:
counts and categories from COCO instances, colours, sign text and unambiguous spatial relations from
Visual Genome attributes/relationships; an image that cannot support a question kind is not asked it,
and each image gets one question kind per benchmark (MME, MMBench, SEED), balanced over the kinds.
Answers that are false are false by construction: a wrong spatial option is the OPPOSITE of a stated
relation, a wrong colour/count/category is one the image does not have.

Files are written inside a temporary folder that replaces `out/<name>` when complete (the whole
benchmark is atomic). `run_world_benchmarks(model, world, out)` writes them to `out/data` and runs them with
`eval.runner` into `out/results` (cached, resumable); `world_results_table` prints the results.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import random
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from vitune.data.paths import resolve_image
from vitune.data.records import ImageRecord
from vitune.sources.merge import load_world
from vitune.utils.atomic import write_json
from vitune.utils.hashing import derive_seed
from vitune.utils.text import COLOR_WORDS, plural

BENCHMARKS = ("vqav2", "pope", "mme", "mmbench", "seed_bench", "imagefolder")
POPE_STRATEGIES = ("random", "popular", "adversarial")
YES_NO = " Please answer yes or no."
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
MME_POSITION = {
    "left of": "on the left side of",
    "right of": "on the right side of",
    "above": "above",
    "below": "below",
}
# SEED-Bench's image question types (name -> official id); the world supports 2, 3, 5 and 9.
SEED_TYPES = {
    "Scene Understanding": 1, "Instance Identity": 2, "Instance Attributes": 3, "Instance Location": 4,
    "Instances Counting": 5, "Spatial Relation": 6, "Instance Interaction": 7, "Visual Reasoning": 8,
    "Text Understanding": 9,
}  # fmt: skip
SEED_KINDS = {"identity": 2, "color": 3, "count": 5, "ocr": 9}
MMBENCH_KINDS = {
    "color": ("attribute_recognition", "finegrained_perception (instance-level)"),
    "ocr": ("ocr", "finegrained_perception (instance-level)"),
    "count": ("object_counting", "finegrained_perception (instance-level)"),
    "identity": ("object_existence", "coarse_perception"),
    "spatial": ("spatial_relationship", "finegrained_perception (cross-instance)"),
}
CIRCULAR_STRIDE = 1_000_000


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


def _an(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _rng(seed: int, *parts: object) -> random.Random:
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


def _balanced(
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


def _shuffled(c: Choice, rng: random.Random) -> tuple[list[str], int]:
    opts = [c.correct, *c.distractors]
    rng.shuffle(opts)
    return opts, opts.index(c.correct)


# ---- writers, one per benchmark ------------------------------------------------------------------


def _place(src: Path, dst: Path) -> None:
    """A hard link when possible (same file system, no copy), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_vqav2(dst: Path, facts: Sequence[ImageFacts], split: str) -> Path:
    questions, annotations = [], []
    for f in facts:
        if not f.rec.qas:
            continue
        _place(f.path, dst / f.coco_name(split))
        for qa in f.rec.qas:
            qid = int(qa.question_id) if qa.question_id.isdigit() else qa.question_id
            questions.append({"image_id": int(f.image_id), "question": qa.question, "question_id": qid})
            annotations.append(
                {
                    "question_id": qid,
                    "image_id": int(f.image_id),
                    "question_type": qa.question_type,
                    "answer_type": qa.answer_type,
                    "multiple_choice_answer": qa.majority_answer(),
                    "answers": [
                        {"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                        for k, a in enumerate(qa.answers)
                    ],
                }
            )
    head = {"info": {"description": "vitune world benchmark (VQAv2 format)"}, "data_subtype": split}
    write_json(
        dst / f"v2_OpenEnded_mscoco_{split}_questions.json",
        {**head, "task_type": "Open-Ended", "questions": questions},
    )
    write_json(dst / f"v2_mscoco_{split}_annotations.json", {**head, "annotations": annotations})
    return dst


def write_pope(
    dst: Path, facts: Sequence[ImageFacts], u: Universe, split: str, seed: int, pairs: int
) -> Path:
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in POPE_STRATEGIES}
    for f in facts:
        absent = u.absent(f)
        n = min(pairs, len(f.present), len(absent))
        if n == 0:
            continue
        name = f.coco_name(split)
        _place(f.path, dst / name)
        # The positives are the same in every split (POPE samples ground truth once per image).
        pos = _rng(seed, "pope", "positive", f.image_id).sample(f.present, n)
        score = {c: sum(u.cooccur.get(p, Counter())[c] for p in f.present) for c in absent}
        negatives = {
            "random": _rng(seed, "pope", "random", f.image_id).sample(absent, n),
            "popular": sorted(absent, key=lambda c: (-u.frequency[c], c))[:n],
            "adversarial": sorted(absent, key=lambda c: (-score[c], -u.frequency[c], c))[:n],
        }
        for strategy, neg in negatives.items():
            out = rows[strategy]
            for cat, label in [*((c, "yes") for c in pos), *((c, "no") for c in neg)]:
                out.append(
                    {
                        "question_id": len(out) + 1,
                        "image": name,
                        "text": f"Is there {_an(cat)} in the image?",
                        "label": label,
                    }
                )
    for strategy, out in rows.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out)
        (dst / f"world_pope_{strategy}.json").write_text(text, encoding="utf-8")
    return dst


def _count_question(cat: str, n: int) -> str:
    if n == 1:
        return f"Is there only one {cat} in the image?"
    word = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    return f"Are there {word} {plural(cat)} in the image?"


def mme_pairs(f: ImageFacts, u: Universe, rng: random.Random) -> dict[str, tuple[str, str]]:
    """Per MME subtask this image supports: (a question whose answer is Yes, one whose answer is No)."""
    out: dict[str, tuple[str, str]] = {}
    absent = u.absent(f)
    if f.counts and absent:
        out["existence"] = (
            f"Is there {_an(rng.choice(f.present))} in this image?",
            f"Is there {_an(rng.choice(absent))} in this image?",
        )
    if f.counts:
        cat = rng.choice(f.present)
        n = f.counts[cat]
        wrong = n + 1 if n == 1 or rng.random() < 0.5 else n - 1
        out["count"] = (_count_question(cat, n), _count_question(cat, wrong))
    if f.relations:
        a, pred, b = rng.choice(f.relations)
        out["position"] = (
            f"Is the {a.ref} {MME_POSITION[pred]} the {b.ref}?",
            f"Is the {a.ref} {MME_POSITION[OPPOSITE[pred]]} the {b.ref}?",
        )
    colored = [t for t in f.things if t.color and t.ref == t.name]
    if colored and len(u.colors) > 1:
        t = rng.choice(colored)
        other = rng.choice([c for c in u.colors if c != t.color])
        out["color"] = (
            f"Is there {_an(t.color)} {t.name} in the image?",
            f"Is there {_an(other)} {t.name} in the image?",
        )  # type: ignore[arg-type]
    signs = [t for t in f.things if t.text and t.ref]
    if signs and len(u.texts) > 1:
        t = rng.choice(signs)
        other = rng.choice([x for x in u.texts if x != t.text])
        out["OCR"] = (f'Is the word in the {t.ref} "{t.text}"?', f'Is the word in the {t.ref} "{other}"?')
    return out


def write_mme(dst: Path, facts: Sequence[ImageFacts], u: Universe, seed: int) -> Path:
    options = [(f, mme_pairs(f, u, _rng(seed, "mme", f.image_id))) for f in facts]
    for f, subtask, (yes, no) in _balanced(options, _rng(seed, "mme", "assign")):
        folder = dst / subtask
        _place(f.path, folder / f"{f.image_id}{f.path.suffix}")
        lines = f"{yes}{YES_NO}\tYes\n{no}{YES_NO}\tNo\n"
        (folder / f"{f.image_id}.txt").write_text(lines, encoding="utf-8")
    return dst


def write_mmbench(dst: Path, facts: Sequence[ImageFacts], u: Universe, seed: int) -> Path:
    options = [(f, choice_questions(f, u, _rng(seed, "mmbench", f.image_id))) for f in facts]
    cols = [
        "index",
        "question",
        "hint",
        "A",
        "B",
        "C",
        "D",
        "answer",
        "category",
        "l2-category",
        "split",
        "image",
    ]
    main, rotated = [], []
    for index, (f, kind, c) in enumerate(_balanced(options, _rng(seed, "mmbench", "assign")), start=1):
        opts, pos = _shuffled(c, _rng(seed, "mmbench", "order", f.image_id))
        cat, l2 = MMBENCH_KINDS[kind]
        img = base64.b64encode(f.path.read_bytes()).decode("ascii")
        for k in range(len(opts)):
            rot = opts[k:] + opts[:k]
            cells = [*rot, *[""] * (4 - len(rot))]
            answer = "ABCD"[(pos - k) % len(opts)]
            # VLMEvalKit's circular TSVs store a repeated image as the index of the row holding it.
            image = img if k == 0 else str(index)
            row = [str(index + k * CIRCULAR_STRIDE), c.question, "", *cells, answer, cat, l2, "dev", image]
            (main if k == 0 else rotated).append(row)
    path = dst / "world_mmbench_dev.tsv"
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(cols)
    writer.writerows([*main, *rotated])
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def write_seed(dst: Path, facts: Sequence[ImageFacts], u: Universe, seed: int) -> Path:
    options = []
    for f in facts:
        kinds = choice_questions(f, u, _rng(seed, "seed", f.image_id))
        # SEED always has exactly four choices.
        options.append((f, {k: c for k, c in kinds.items() if k in SEED_KINDS and len(c.distractors) == 3}))
    questions = []
    for f, kind, c in _balanced(options, _rng(seed, "seed", "assign")):
        opts, pos = _shuffled(c, _rng(seed, "seed", "order", f.image_id))
        name = f"{f.image_id}{f.path.suffix}"
        _place(f.path, dst / name)
        q = {"question_id": f"{f.image_id}_{kind}", "question": c.question}
        q.update({f"choice_{x}": o for x, o in zip("abcd", opts, strict=True)})
        q.update(
            {
                "answer": "ABCD"[pos],
                "data_id": name,
                "data_type": "image",
                "question_type_id": SEED_KINDS[kind],
            }
        )
        questions.append(q)
    path = dst / "SEED-Bench.json"
    write_json(path, {"question_type": SEED_TYPES, "questions": questions}, indent=1)
    return path


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def write_imagefolder(dst: Path, facts: Sequence[ImageFacts], margin: float = 0.1, min_side: int = 8) -> Path:
    for f in facts:
        coco = [o for o in f.rec.objects if o.source == "coco"] or f.rec.objects
        with Image.open(f.path) as im:
            img = im.convert("RGB")
        for k, o in enumerate(coco):
            mx, my = margin * o.box.w, margin * o.box.h
            x0, y0 = max(0, round(o.box.x - mx)), max(0, round(o.box.y - my))
            x1, y1 = (
                min(img.width, round(o.box.x + o.box.w + mx)),
                min(img.height, round(o.box.y + o.box.h + my)),
            )
            if x1 - x0 < min_side or y1 - y0 < min_side:
                continue  # too small to show anything at the model's resolution
            out = dst / _UNSAFE.sub("_", o.name) / f"{f.image_id}_{k}.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            img.crop((x0, y0, x1, y1)).save(out, format="JPEG", quality=95)
    return dst


@contextlib.contextmanager
def _fresh_dir(path: Path) -> Iterator[Path]:
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


def write_world_benchmarks(
    world_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    split: str = "test",
    seed: int = 0,
    *,
    max_images: int | None = None,
    pope_pairs: int = 3,
    benchmarks: Sequence[str] = BENCHMARKS,
) -> dict[str, Path]:
    """Write the world's `split` as official-format benchmarks under `out_dir`; `{name: loader path}`.

    `max_images`: a seeded sample of the split's images (the same for every benchmark); all by default.
    """
    from vitune.world.layout import WorldLayout  # only for the image root; annotations come via sources

    unknown = set(benchmarks) - set(BENCHMARKS)
    if unknown:
        raise ValueError(f"unknown world benchmarks {sorted(unknown)}; known: {BENCHMARKS}")
    records = load_world(world_dir, split)
    if not records:
        raise ValueError(f"world {world_dir}: split {split!r} has no images")
    image_root = WorldLayout(world_dir).image_root
    all_facts = [image_facts(r, image_root) for r in records]
    u = universe(all_facts)
    facts = all_facts
    if max_images is not None and max_images < len(all_facts):
        keep = set(_rng(seed, "images").sample(range(len(all_facts)), max_images))
        facts = [f for i, f in enumerate(all_facts) if i in keep]

    out = Path(out_dir)
    writers = {
        "vqav2": lambda d: write_vqav2(d, facts, split),
        "pope": lambda d: write_pope(d, facts, u, split, seed, pope_pairs),
        "mme": lambda d: write_mme(d, facts, u, seed),
        "mmbench": lambda d: write_mmbench(d, facts, u, seed),
        "seed_bench": lambda d: write_seed(d, facts, u, seed),
        "imagefolder": lambda d: write_imagefolder(d, facts),
    }
    paths: dict[str, Path] = {}
    for name in benchmarks:
        with _fresh_dir(out / name) as tmp:
            written = writers[name](tmp)
        paths[name] = out / name / written.relative_to(tmp)
    write_json(
        out / "world_benchmarks.json",
        {
            "world": str(Path(world_dir).resolve()),
            "split": split,
            "seed": seed,
            "max_images": max_images,
            "pope_pairs": pope_pairs,
            "n_images": len(facts),
            "benchmarks": {n: str(p.relative_to(out)) for n, p in paths.items()},
        },
        indent=2,
    )
    return paths


def run_world_benchmarks(
    model_dir: str | os.PathLike,
    world_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split: str = "test",
    seed: int = 0,
    max_images: int | None = None,
    benchmarks: Sequence[str] = BENCHMARKS,
    batch_size: int = 8,
    max_new_tokens: int = 16,
    device: str = "cpu",
    show_progress: bool = False,
    **write_options: Any,
) -> dict[str, Any]:
    """Write the world benchmarks to `out/data`, run them on `model_dir` into `out/results`; return results.

    Re-running is cheap: the data is rewritten identically and every answer comes from the cache.
    """
    from vitune.eval.runner import BenchSpec, run_benchmarks

    out = Path(out_dir)
    paths = write_world_benchmarks(
        world_dir, out / "data", split, seed, max_images=max_images, benchmarks=benchmarks, **write_options
    )
    specs = [BenchSpec(name, path) for name, path in paths.items()]
    return run_benchmarks(
        specs,
        out / "results",
        model_dir=model_dir,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        device=device,
        show_progress=show_progress,
    )


def world_results_table(results: dict[str, Any]):
    """The rich table of `run_world_benchmarks`' results."""
    from vitune.eval.runner import results_table

    return results_table(results, title="Held-out world images: official-format benchmarks")
