"""Tasks derived from object detection (COCO instances): selection, regions, positions, boxes, sides.

COCO instances annotate every object of their categories, so "which of these is in the image" and
"which of these is not" are decidable from them. Boxes in text are `[x1, y1, x2, y2]` normalized to
0-1 with three decimals (`helpers.box_text`). An object is asked about by its category name only
when that name is unique in the image; a region only when no other object's box overlaps it much.
"""

from __future__ import annotations

import random

from vitune.data.records import ImageRecord, ObjectAnn
from vitune.tasks.helpers import box_text, name_counts, objects_of, present_names
from vitune.tasks.spec import BuildContext, Sample, builder

MAX_REGION_IOU = 0.5  # a region overlapping another object this much could be read as either
# Thirds of the image width, with a dead band around each border so no answer is borderline.
POSITION_BANDS = (("left", 0.0, 0.30), ("middle", 0.40, 0.60), ("right", 0.70, 1.0))
# How many sides (= corners) a category's outline has: knowledge the image alone does not give.
SIDES = {
    "triangle": 3,
    "square": 4,
    "rectangle": 4,
    "diamond": 4,
    "pentagon": 5,
    "hexagon": 6,
    "octagon": 8,
    "stop sign": 8,
}


def coco_objects(record: ImageRecord) -> list[ObjectAnn]:
    return [o for o in objects_of(record, "coco") if o.box.w > 0 and o.box.h > 0]


def _sized(record: ImageRecord) -> bool:
    return record.width > 0 and record.height > 0


@builder("object_selection")
def object_selection(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """One present category; wrong options are categories of other images absent from this one."""
    present = sorted({o.name for o in coco_objects(record)})
    if not present:
        return []
    return [Sample({"answer": rng.choice(present)}, exclude=frozenset(present_names(record, "coco")))]


def _clear_regions(objs: list[ObjectAnn]) -> list[ObjectAnn]:
    return [o for o in objs if all(p is o or o.box.iou(p.box) < MAX_REGION_IOU for p in objs)]


def _region_sample(record: ImageRecord, rng: random.Random) -> Sample | None:
    if not _sized(record):
        return None
    cands = _clear_regions(coco_objects(record))
    if not cands:
        return None
    o = rng.choice(cands)
    box = box_text(o.box, record.width, record.height)
    return Sample(
        {"box": box, "name": o.name, "answer": o.name},
        {"object_id": o.object_id},
        exclude=frozenset({o.name}),
    )


@builder("region_category")
def region_category(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    s = _region_sample(record, rng)
    return [s] if s else []


@builder("region_category_mc")
def region_category_mc(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    s = _region_sample(record, rng)
    return [s] if s else []


@builder("object_absent_selection")
def object_absent_selection(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """The reverse selection: one category of another image that is absent here, among present ones."""
    present = sorted({o.name for o in coco_objects(record)})
    pool = ctx.pool("objects")
    if not present or pool is None:
        return []
    seen = present_names(record, "coco")  # crowd regions too: their category is in the image
    absent = pool.other_images(rng, 1, image_id=record.image_id, reject=lambda v: v in seen)
    if not absent:
        return []
    return [Sample({"answer": absent[0]}, choices=[absent[0], *present])]


@builder("object_position")
def object_position(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """Left / middle / right of a uniquely named object, by its box centre (borderline ones skipped)."""
    if not _sized(record):
        return []
    objs = coco_objects(record)
    names = name_counts(objs)
    cands = []
    for o in objs:
        t = (o.box.x + o.box.w / 2) / record.width
        band = next((b for b, lo, hi in POSITION_BANDS if lo <= t <= hi), None)
        if names[o.name] == 1 and band is not None:
            cands.append((o, band))
    if not cands:
        return []
    o, band = rng.choice(cands)
    return [Sample({"name": o.name, "answer": band}, {"object_id": o.object_id})]


@builder("object_detection_list")
def object_detection_list(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """Every object as `name: [x1, y1, x2, y2]`, one per line, left to right (then top to bottom)."""
    objs = coco_objects(record)
    if not objs or not _sized(record):
        return []
    objs = sorted(objs, key=lambda o: (o.box.x, o.box.y, o.name))
    lines = [f"{o.name}: {box_text(o.box, record.width, record.height)}" for o in objs]
    return [Sample({"objects": "\n".join(lines)}, {"count": len(objs)})]


@builder("shape_sides")
def shape_sides(record: ImageRecord, rng: random.Random, ctx: BuildContext) -> list[Sample]:
    """How many sides a pictured polygon-shaped object has (outside knowledge about the category)."""
    names = name_counts(coco_objects(record))
    cands = sorted(n for n, c in names.items() if c == 1 and n in SIDES)
    if not cands:
        return []
    name = rng.choice(cands)
    return [Sample({"name": name, "sides": SIDES[name]})]
