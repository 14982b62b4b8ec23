"""Orchestration: generate a whole world (images + ground truth in public formats + world.json).

Workers (spawn-safe `multiprocessing`, chunked) sample, draw, encode and write each image and return
its scene-level record; the parent assigns every global id in image-index order and writes the JSON.
Everything an image holds comes from `random.Random(derive_seed(seed, "image", idx))` (scene and
pixels) and two sibling streams (language, questions), so output bytes do not depend on `workers`
or on chunking. The further formats (GQA, TextVQA, RefCOCO, ScienceQA, class folders; `extras.py`)
draw from streams of their own and are written after COCO/VG/VQAv2, whose bytes they never touch.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path

from vitune import __version__
from vitune.utils.atomic import write_bytes, write_json
from vitune.utils.hashing import derive_seed
from vitune.world.draw import encode_jpeg, render
from vitune.world.extras import clear_extra_images, extra_record
from vitune.world.facts import clear_relations
from vitune.world.language import captions, region_phrases
from vitune.world.layout import SPLITS, WorldLayout
from vitune.world.questions import make_questions
from vitune.world.scene import Scene, polygon_area, sample_scene
from vitune.world.writers import write_all
from vitune.world.writers_extra import write_extras

GENERATOR_VERSION = "1"
# COCO ids are scattered (as the real ones are) and live far above VG ids (1..n), so a code path that
# mixes up the two id spaces finds nothing rather than the wrong image.
COCO_ID_BASE = 500_000


def coco_image_id(seed: int, idx: int) -> int:
    return COCO_ID_BASE + 7 * idx + derive_seed(seed, "coco_id", idx) % 7


def assign_splits(n_images: int, seed: int, fractions: tuple[float, float, float]) -> list[str]:
    """The split of each image index: a seeded shuffle cut by `fractions` (disjoint, covering)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split_fractions must be three non-negative numbers, got {fractions!r}")
    total = sum(fractions)
    n_train = round(n_images * fractions[0] / total)
    n_val = min(n_images - n_train, round(n_images * fractions[1] / total))
    order = list(range(n_images))
    random.Random(derive_seed(seed, "splits")).shuffle(order)
    out = [""] * n_images
    for rank, idx in enumerate(order):
        out[idx] = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
    return out


def build_scene(seed: int, idx: int) -> Scene:
    rng = random.Random(derive_seed(seed, "image", idx))
    while True:
        scene = sample_scene(rng)
        if scene.objects:
            return scene


def _vg_box(box: tuple[float, float, float, float], w: int, h: int) -> list[int]:
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(w, math.ceil(box[2])), min(h, math.ceil(box[3]))
    return [x0, y0, x1 - x0, y1 - y0]


def image_record(seed: int, idx: int, scene: Scene) -> dict:
    """Everything the annotation files need about one image, without global ids."""
    lang = random.Random(derive_seed(seed, "image", idx, "language"))
    objects = []
    for o in scene.objects:
        x0, y0, x1, y1 = o.box
        objects.append(
            {
                "shape": o.shape,
                "category_id": o.category_id,
                "color": o.color,
                "size": scene.size_class(o),
                "text": o.text,
                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                "area": round(polygon_area(o.polygon), 2),
                "segmentation": [round(v, 2) for p in o.polygon for v in p],
                "vg_box": _vg_box(o.box, scene.width, scene.height),
            }
        )
    rels = [
        (i, p, j)
        for i in range(len(objects))
        for j in range(len(objects))
        if i != j
        for p in clear_relations(scene, i, j)
    ]
    keep = sorted(lang.sample(range(len(rels)), min(len(rels), 2 * len(objects))))
    regions = [(p, _vg_box(b, scene.width, scene.height)) for p, b in region_phrases(scene, lang)]
    questions = make_questions(scene, random.Random(derive_seed(seed, "image", idx, "questions")))
    return {
        "idx": idx,
        "width": scene.width,
        "height": scene.height,
        "objects": objects,
        "captions": captions(scene, lang),
        "relations": [rels[k] for k in keep],
        "regions": regions,
        "questions": [{k: v for k, v in q.items() if k not in ("family", "truth")} for q in questions],
    }


def _work(job: tuple[int, str, list[tuple[int, str, str, int]]]) -> list[dict]:
    """Worker: draw, encode and write the images of one chunk; return their records."""
    seed, root, items = job
    out = []
    for idx, rel_path, split, image_id in items:
        scene = build_scene(seed, idx)
        jpeg = encode_jpeg(render(scene))
        # No fsync per image (it serializes workers on the disk journal): the rename still makes each
        # file all-or-nothing, and the parent syncs once before writing world.json, the completion mark.
        write_bytes(Path(root) / rel_path, jpeg, fsync=False)
        rec = image_record(seed, idx, scene)
        rec["extras"] = extra_record(seed, idx, scene, root, split, image_id, jpeg)
        out.append(rec)
    return out


def _chunks(items: list, size: int) -> Iterable[list]:
    for k in range(0, len(items), size):
        yield items[k : k + size]


def generate_world(
    out: str | Path,
    n_images: int,
    seed: int = 0,
    *,
    workers: int = 2,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Generate a world of `n_images` images under `out`; returns the summary written to world.json."""
    if n_images < 1:
        raise ValueError("n_images must be at least 1")
    layout = WorldLayout(out)
    splits = assign_splits(n_images, seed, tuple(split_fractions))
    ids = [coco_image_id(seed, i) for i in range(n_images)]
    file_names = [layout.image_file_name(splits[i], ids[i]) for i in range(n_images)]
    items = [
        (i, f"{layout.image_subdir(splits[i])}/{file_names[i]}", splits[i], ids[i]) for i in range(n_images)
    ]
    for split in SPLITS:
        (layout.image_root / layout.image_subdir(split)).mkdir(parents=True, exist_ok=True)
    clear_extra_images(layout)

    root = str(layout.image_root)
    workers = max(1, min(workers, n_images))
    # Chunks small enough for a smooth progress bar and load balance, big enough to amortize IPC.
    size = max(1, min(64, math.ceil(n_images / (workers * 8))))
    jobs = [(seed, root, chunk) for chunk in _chunks(items, size)]
    records: list[dict] = []
    if workers == 1:
        results: Iterable[list[dict]] = map(_work, jobs)
        for batch in results:
            records += batch
            if progress:
                progress(len(batch))
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            for batch in pool.imap(_work, jobs):
                records += batch
                if progress:
                    progress(len(batch))

    if hasattr(os, "sync"):  # POSIX only
        os.sync()  # images are durable before any file that refers to them
    _assign_ids(records, splits, ids, file_names)
    counts = write_all(layout, records)
    write_extras(layout, records)  # not counted in world.json, which stays as it was before them
    summary = {
        "generator": "vitune.world",
        "generator_version": GENERATOR_VERSION,
        "vitune_version": __version__,
        "seed": seed,
        "n_images": n_images,
        "split_fractions": list(split_fractions),
        **counts,
    }
    write_json(layout.meta, summary, indent=2)
    return summary


def _assign_ids(records: list[dict], splits: list[str], ids: list[int], file_names: list[str]) -> None:
    """Global ids in image-index order: the same for any number of workers."""
    ann = cap = obj = rel = reg = 1
    for r in records:
        idx = r["idx"]
        r["split"], r["image_id"], r["file_name"] = splits[idx], ids[idx], file_names[idx]
        r["vg_id"] = idx + 1
        r["date_captured"] = f"2024-{1 + idx % 12:02d}-{1 + idx % 28:02d} 12:00:00"
        for o in r["objects"]:
            o["ann_id"], o["object_id"] = ann, obj
            ann += 1
            obj += 1
        r["caption_ids"] = list(range(cap, cap + len(r["captions"])))
        cap += len(r["captions"])
        r["relationship_ids"] = list(range(rel, rel + len(r["relations"])))
        rel += len(r["relations"])
        r["region_ids"] = list(range(reg, reg + len(r["regions"])))
        reg += len(r["regions"])
        for k, q in enumerate(r["questions"]):
            q["question_id"] = r["image_id"] * 1000 + k
