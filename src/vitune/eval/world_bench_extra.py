"""More world benchmarks: GQA, TextVQA and ScienceQA from the world's own files, AI2D drawn anew.

The world already writes GQA, TextVQA and ScienceQA files in their official formats (`world/
writers_extra.py`), but their image references follow the world's folders, not the benchmarks'
conventions (GQA names images by Visual Genome id, TextVQA by `image_id`, ScienceQA by
`<pid>/<image>`). Each writer here keeps the held-out split's entries for the sampled images and
puts every referenced image where the registered loader looks for it, so `vitune eval --bench
NAME=DIR` runs on the folder as it would on the real benchmark:

    gqa/         <split>_balanced_questions.json + <vg image id>.jpg
    textvqa/     TextVQA_0.5.1_<split>.json + <image_id>.jpg
    scienceqa/   problems.json + pid_splits.json + <pid>/<image>
    ai2d/        questions/<image>.json (AI2D release layout) + images/<image>: one multiple-choice
                 question per image, kinds balanced as for MMBench / SEED (`world_facts.choice_questions`)
    chair/       instances_<split>.json + captions_<split>.json (COCO) of the sampled images, and the
                 images under their COCO file names: what CHAIR's loader reads (the world's shape
                 categories join its vocabulary)

Judged benchmarks (LLaVA-Bench, MM-Vet, MathVista's extraction) need an LLM judge and are not drawn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vitune.eval.world_facts import (
    ImageFacts,
    Universe,
    balanced,
    bench_rng,
    choice_questions,
    place_file,
    shuffled,
)
from vitune.utils.atomic import write_json
from vitune.world.layout import WorldLayout

EXTRA_BENCHMARKS = ("gqa", "textvqa", "scienceqa", "ai2d", "chair")


def _read(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the world (regenerate it with `vitune world`)")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_gqa(dst: Path, world: WorldLayout, facts: Sequence[ImageFacts], split: str) -> Path:
    """The split's balanced GQA questions on the sampled images; images named by their VG id."""
    vg_of = {str(d["coco_id"]): str(d["image_id"]) for d in _read(world.vg("image_data")) if d.get("coco_id")}
    path_of = {vg_of[f.image_id]: f.path for f in facts if f.image_id in vg_of}
    doc = _read(world.gqa_questions(split))
    kept = {qid: q for qid, q in doc.items() if str(q["imageId"]) in path_of}
    for vg_id in sorted({str(q["imageId"]) for q in kept.values()}):
        place_file(path_of[vg_id], dst / f"{vg_id}.jpg")
    out = dst / f"{split}_balanced_questions.json"
    write_json(out, kept)
    return out


def write_textvqa(dst: Path, world: WorldLayout, facts: Sequence[ImageFacts], split: str) -> Path:
    """The split's TextVQA questions on the sampled images; images named `<image_id>.jpg`."""
    path_of = {f.path.stem: f.path for f in facts}
    doc = _read(world.textvqa_questions(split))
    rows = [r for r in doc["data"] if str(r["image_id"]) in path_of]
    for image_id in sorted({str(r["image_id"]) for r in rows}):
        place_file(path_of[image_id], dst / f"{image_id}.jpg")
    out = dst / f"TextVQA_0.5.1_{split}.json"
    write_json(out, {**doc, "data": rows})
    return out


def write_scienceqa(dst: Path, world: WorldLayout, split: str) -> Path:
    """The split's ScienceQA problems (all of them: they are not tied to the sampled images)."""
    problems = _read(world.scienceqa_problems)
    pids = [str(p) for p in _read(world.scienceqa_pid_splits).get(split, [])]
    for pid in pids:
        image = problems[pid].get("image")
        if image:
            src = world.image_root / WorldLayout.SCIENCEQA_SUBDIR / split / pid / image
            place_file(src, dst / pid / image)
    write_json(dst / "problems.json", {pid: problems[pid] for pid in pids})
    write_json(dst / "pid_splits.json", {split: pids})
    return dst


def write_ai2d(dst: Path, facts: Sequence[ImageFacts], u: Universe, seed: int) -> Path:
    """One multiple-choice question per image in the AI2D release layout (kinds balanced)."""
    options = [(f, choice_questions(f, u, bench_rng(seed, "ai2d", f.image_id))) for f in facts]
    for f, kind, c in balanced(options, bench_rng(seed, "ai2d", "assign")):
        opts, pos = shuffled(c, bench_rng(seed, "ai2d", "order", f.image_id))
        name = f"{f.image_id}{f.path.suffix}"
        place_file(f.path, dst / "images" / name)
        question = {
            "answerTexts": opts,
            "correctAnswer": pos,
            "abcLabel": False,
            "questionId": f"{f.image_id}.{kind}",
        }
        write_json(
            dst / "questions" / f"{name}.json", {"imageName": name, "questions": {c.question: question}}
        )
    return dst


def write_chair(dst: Path, world: WorldLayout, facts: Sequence[ImageFacts], split: str) -> Path:
    """The split's COCO instances and captions restricted to the sampled images, images beside them."""
    path_of = {f.image_id: f.path for f in facts}
    out = dst / f"instances_{split}.json"
    for src, name in (
        (world.coco_instances(split), out.name),
        (world.coco_captions(split), f"captions_{split}.json"),
    ):
        doc = _read(src)
        images = [im for im in doc["images"] if str(im["id"]) in path_of]
        keep = {im["id"] for im in images}
        write_json(
            dst / name,
            {
                **doc,
                "images": images,
                "annotations": [a for a in doc["annotations"] if a["image_id"] in keep],
            },
        )
    for im in _read(out)["images"]:
        place_file(path_of[str(im["id"])], dst / im["file_name"])
    return out


def extra_writers(
    world_dir: str | Path, facts: Sequence[ImageFacts], u: Universe, split: str, seed: int
) -> dict[str, Callable[[Path], Path]]:
    """`{benchmark: writer(folder) -> loader path}` for `world_bench.write_world_benchmarks`."""
    world = WorldLayout(world_dir)
    return {
        "gqa": lambda d: write_gqa(d, world, facts, split),
        "textvqa": lambda d: write_textvqa(d, world, facts, split),
        "scienceqa": lambda d: write_scienceqa(d, world, split),
        "ai2d": lambda d: write_ai2d(d, facts, u, seed),
        "chair": lambda d: write_chair(d, world, facts, split),
    }
