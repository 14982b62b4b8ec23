"""The world's further formats, per image: GQA, TextVQA + OCR, RefCOCO, ScienceQA, class folders.

Called by the generator's workers after an image's COCO/VG/VQAv2 record is built. Each format draws
from its own RNG stream, `derive_seed(seed, "image", idx, <format>)`, separate from the scene,
language and question streams: adding these formats changed no byte of the files the world wrote
before them, and changing one of them changes no other. The worker also writes the images these
formats need (a crop per image for the class folders, a copy of the image for a ScienceQA problem)
and returns what `writers_extra.py` needs to write the annotation files.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from vitune.utils.atomic import write_bytes
from vitune.utils.hashing import derive_seed
from vitune.world.classify import crop_object
from vitune.world.gqa import make_gqa_questions
from vitune.world.layout import WorldLayout, classify_file, scienceqa_image
from vitune.world.refs import make_refs
from vitune.world.scene import Scene
from vitune.world.scienceqa import make_problem
from vitune.world.textvqa import make_textvqa
from vitune.world.vf import FORMATS, ImageContext


def clear_extra_images(layout: WorldLayout) -> None:
    """Remove the crops and ScienceQA images of an earlier generation in the same folder.

    The class folders are the classification annotation itself: a stale crop (another image count
    puts image k in another split) would become a wrong example. Both folders hold only generated
    files.
    """
    subs = [layout.CLASSIFY_SUBDIR, layout.SCIENCEQA_SUBDIR]
    subs += [d for f in FORMATS.values() for d in f.image_subdirs]
    for sub in subs:
        shutil.rmtree(layout.image_root / sub, ignore_errors=True)


def scienceqa_pid(idx: int) -> str:
    """The ScienceQA problem id of image `idx` (at most one problem per image; real pids are numbers too)."""
    return str(idx + 1)


def _rng(seed: int, idx: int, fmt: str) -> random.Random:
    return random.Random(derive_seed(seed, "image", idx, fmt))


def extra_record(
    seed: int, idx: int, scene: Scene, image_root: str | Path, split: str, image_id: int, jpeg: bytes
) -> dict:
    """The image's entries of every extra format; writes its crop and (if any) its ScienceQA image."""
    root = Path(image_root)
    label, crop = crop_object(scene)
    crop_rel = classify_file(split, label, image_id)
    write_bytes(root / crop_rel, crop, fsync=False)
    problem = make_problem(scene, _rng(seed, idx, "scienceqa"))
    if problem is not None:
        problem["pid"] = scienceqa_pid(idx)
        write_bytes(root / scienceqa_image(split, problem["pid"], problem["image"]), jpeg, fsync=False)
    ctx = ImageContext(seed, idx, scene, root, split, image_id, jpeg)
    return {
        **{name: fmt.entry(ctx) for name, fmt in FORMATS.items()},
        "gqa": make_gqa_questions(scene, _rng(seed, idx, "gqa")),
        "textvqa": make_textvqa(scene, _rng(seed, idx, "textvqa")),
        "refs": make_refs(scene, _rng(seed, idx, "refcoco")),
        "scienceqa": problem,
        "classify": {"label": label, "file": crop_rel},
    }
