"""Merge per-source records into one `ImageRecord` per image, and read the embedded world.

Sources are merged in the order given (COCO first, by convention): the first source that knows an
image's file name and size sets them, later sources add captions, objects, relations, regions and
QAs. A later source whose size differs is rescaled when the aspect ratio agrees (Visual Genome keeps
COCO images at a different resolution than COCO itself does) and rejected into the ledger when it
does not — its boxes would land in the wrong place. Output is sorted by image id (numeric ids
numerically, then the rest), so the same inputs always give the same list.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from vitune.data.ledger import Ledger
from vitune.data.records import Box, ImageRecord, ObjectAnn, Region, Relation
from vitune.sources.coco import read_coco
from vitune.sources.jsonio import gc_paused
from vitune.sources.stats import ReadStats, SourceResult
from vitune.sources.visual_genome import FILES as VG_FILES
from vitune.sources.visual_genome import read_visual_genome
from vitune.sources.vqav2 import read_vqav2

if TYPE_CHECKING:
    from vitune.world.layout import WorldLayout

STAGE = "sources.merge"
log = logging.getLogger(__name__)


def image_sort_key(image_id: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order first, then any other id (e.g. `vg:12`) in string order."""
    return (0, int(image_id), "") if image_id.isascii() and image_id.isdigit() else (1, 0, image_id)


@gc_paused
def merge_records(
    parts: Iterable[SourceResult | Mapping[str, ImageRecord]],
    ledger: Ledger | None = None,
    *,
    split: str | None = None,
    require_file: bool = True,
    rescale: bool = True,
) -> list[ImageRecord]:
    """Union the records of several sources per image id; input records are not modified.

    `split` (when given) is stamped on every output record. `require_file`: an image no source gave
    a file name (e.g. VQAv2 questions about an image without COCO entry) is rejected. `rescale`:
    see the module docstring; when False any size difference is a conflict.
    """
    ledger = ledger if ledger is not None else Ledger()
    merged: dict[str, ImageRecord] = {}
    for part in parts:
        recs = part.records if isinstance(part, SourceResult) else part
        for key, rec in recs.items():
            cur = merged.get(key)
            if cur is None:
                merged[key] = _copy(rec, key)
            else:
                _merge_into(cur, rec, ledger, rescale)
    out: list[ImageRecord] = []
    for key in sorted(merged, key=image_sort_key):
        rec = merged[key]
        if require_file and not rec.file_name:
            ledger.reject(STAGE, "", f"image_id={key}", "no source gives an image file", sources=rec.sources)
            continue
        if split is not None:
            rec.split = split
        out.append(rec)
    return out


def _copy(rec: ImageRecord, key: str) -> ImageRecord:
    """A record with fresh lists (sharing the immutable-in-practice annotation objects)."""
    return ImageRecord(
        key,
        rec.file_name,
        rec.width,
        rec.height,
        split=rec.split,
        captions=list(rec.captions),
        objects=list(rec.objects),
        relations=list(rec.relations),
        regions=list(rec.regions),
        qas=list(rec.qas),
        sources=list(rec.sources),
        meta=dict(rec.meta),
        labels=list(rec.labels),
        ocr_tokens=list(rec.ocr_tokens),
    )


def _merge_into(cur: ImageRecord, rec: ImageRecord, ledger: Ledger, rescale: bool) -> None:
    src = "+".join(rec.sources) or "?"
    loc = f"image_id={cur.image_id}"
    objects, regions, relations = rec.objects, rec.regions, rec.relations
    if cur.width and rec.width and (cur.width, cur.height) != (rec.width, rec.height):
        if not (rescale and _same_aspect(cur.width, cur.height, rec.width, rec.height)):
            ledger.reject(
                STAGE,
                "",
                loc,
                f"conflicting image size: {'+'.join(cur.sources)} {cur.width}x{cur.height} "
                f"vs {src} {rec.width}x{rec.height}; {src} annotations dropped",
                source=src,
            )
            return
        sx, sy = cur.width / rec.width, cur.height / rec.height
        objects = [
            ObjectAnn(o.object_id, o.name, _scale(o.box, sx, sy), list(o.attributes), o.source, o.crowd)
            for o in objects
        ]
        regions = [Region(r.region_id, r.phrase, _scale(r.box, sx, sy), r.source) for r in regions]
        cur.meta.setdefault("rescaled", {})[src] = [rec.width, rec.height]
    elif not cur.width and rec.width:
        # The first source did not know the size (VQAv2, VG without image_data): adopt it, and
        # check the boxes that were read without bounds.
        cur.width, cur.height = rec.width, rec.height
        cur.objects, cur.regions, cur.relations = _in_bounds(
            cur, cur.objects, cur.regions, cur.relations, set(), ledger
        )
    elif cur.width and not rec.width:
        have = {o.object_id for o in cur.objects}
        objects, regions, relations = _in_bounds(cur, objects, regions, relations, have, ledger)
    if not cur.file_name and rec.file_name:
        cur.file_name = rec.file_name
    known = {o.object_id for o in cur.objects}
    for o in objects:
        if o.object_id in known:
            ledger.reject(STAGE, "", loc, f"duplicate object id {o.object_id} from {src}")
            continue
        known.add(o.object_id)
        cur.objects.append(o)
    cur.captions.extend(rec.captions)
    cur.relations.extend(relations)
    cur.regions.extend(regions)
    cur.qas.extend(rec.qas)
    for label in rec.labels:  # a label is a set member: two folders naming "dog" give one "dog"
        if label not in cur.labels:
            cur.labels.append(label)
    if not cur.ocr_tokens:  # OCR is one reading of the image, not additive: the first source wins
        cur.ocr_tokens = list(rec.ocr_tokens)
    for s in rec.sources:
        if s not in cur.sources:
            cur.sources.append(s)
    for k, v in rec.meta.items():
        cur.meta.setdefault(k, v)


def _same_aspect(w1: int, h1: int, w2: int, h2: int) -> bool:
    """Whether `w2 x h2` is `w1 x h1` resized (sizes are rounded to whole pixels, hence the slack)."""
    return abs(w2 * h1 / h2 - w1) <= 1.0 and abs(h2 * w1 / w2 - h1) <= 1.0


def _scale(b: Box, sx: float, sy: float) -> Box:
    return Box(round(b.x * sx, 2), round(b.y * sy, 2), round(b.w * sx, 2), round(b.h * sy, 2))


def _in_bounds(
    cur: ImageRecord,
    objects: list[ObjectAnn],
    regions: list[Region],
    relations: list[Relation],
    other_ids: set[str],
    ledger: Ledger,
) -> tuple[list[ObjectAnn], list[Region], list[Relation]]:
    """Drop boxes outside `cur`'s size (and relations that lose an end), each into the ledger.

    `other_ids`: objects already on `cur` that relations may also point to.
    """
    loc = f"image_id={cur.image_id}"
    w, h = cur.width, cur.height
    keep_o: list[ObjectAnn] = []
    for o in objects:
        if o.box.inside(w, h):
            keep_o.append(o)
        else:
            ledger.reject(
                STAGE, "", loc, f"object {o.object_id} box {o.box.to_list()} outside the {w}x{h} image"
            )
    keep_r: list[Region] = []
    for r in regions:
        if r.box.inside(w, h):
            keep_r.append(r)
        else:
            ledger.reject(
                STAGE, "", loc, f"region {r.region_id} box {r.box.to_list()} outside the {w}x{h} image"
            )
    ids = {o.object_id for o in keep_o} | other_ids
    keep_rel: list[Relation] = []
    for rel in relations:
        if rel.subject_id in ids and rel.object_id in ids:
            keep_rel.append(rel)
        else:
            ledger.reject(
                STAGE, "", loc, f"relation {rel.subject_id} {rel.predicate} {rel.object_id} lost an end"
            )
    return keep_o, keep_r, keep_rel


def load_world(
    root: str | os.PathLike,
    split: str,
    ledger: Ledger | None = None,
    *,
    stats: list[ReadStats] | None = None,
    extras: bool = False,
) -> list[ImageRecord]:
    """The merged records of one split of the embedded world, read through the public-format readers.

    COCO instances + captions of `split` define the images; Visual Genome (one pool for all splits,
    as in reality) is restricted to those images via `coco_id`; VQAv2 of `split` is attached.
    `stats`, when given, is extended with every file's `ReadStats`.

    `extras` also reads the world's further formats (see `_world_extras`; a world generated before
    them has none and is read without them, with a warning). Off by default: the records (and
    everything built from them) stay exactly what they were before those formats existed.
    """
    from vitune.world.layout import WorldLayout  # the world package is optional for readers

    layout = WorldLayout(Path(root))
    ledger = ledger if ledger is not None else Ledger()
    parts: list[SourceResult] = []
    instances, captions = _opt(layout.coco_instances(split)), _opt(layout.coco_captions(split))
    if instances is None and captions is None:
        raise FileNotFoundError(
            f"world {root}: split {split!r} has no COCO files "
            f"({layout.coco_instances(split)}, {layout.coco_captions(split)})"
        )
    coco = read_coco(
        instances,
        captions,
        image_subdir=layout.image_subdir(split),
        ledger=ledger,
        split=split,
    )
    parts.append(coco)
    ids = set(coco.records)
    vg = None
    if any(layout.vg(n).exists() for n in VG_FILES):
        vg = read_visual_genome(layout.vg_dir, ledger=ledger, split=split, image_ids=ids)
        parts.append(vg)
    questions = layout.vqa_questions(split)
    if questions.exists():
        parts.append(
            read_vqav2(
                questions, _opt(layout.vqa_annotations(split)), ledger=ledger, split=split, known_images=ids
            )
        )
    if extras:
        parts += _world_extras(layout, split, ledger, vg, ids)
    if stats is not None:
        for p in parts:
            stats.extend(p.stats)
    return merge_records(parts, ledger, split=split)


def _world_extras(
    layout: WorldLayout, split: str, ledger: Ledger, vg: SourceResult | None, known_images: set[str]
) -> list[SourceResult]:
    """GQA, RefCOCO, TextVQA (+ OCR), ScienceQA and the class folders of one split of the world.

    GQA questions and RefCOCO refs land on the COCO records (GQA through the Visual Genome ids,
    RefCOCO through the COCO ids); TextVQA, ScienceQA and the class-folder crops are records of their
    own (`openimages:`, `scienceqa:`, `imagefolder:` keys), as they are in the real data.
    """
    from vitune.sources.gqa import read_gqa, vg_image_keys
    from vitune.sources.imagefolder import read_imagefolder
    from vitune.sources.refcoco import read_refcoco
    from vitune.sources.scienceqa import read_scienceqa
    from vitune.sources.textvqa import read_textvqa

    files = [
        layout.gqa_questions(split),
        layout.refcoco_refs,
        layout.textvqa_questions(split),
        layout.textvqa_ocr(split),
        layout.scienceqa_problems,
        layout.scienceqa_pid_splits,
    ]
    classify = layout.classify_dir(split)
    wanted = [*files, classify] if known_images else files
    missing = [str(p) for p in wanted if not p.exists()]
    if len(missing) == len(wanted):
        # A world generated before these formats existed: it has none of them, which is not an error
        # (its COCO/VG/VQAv2 records are complete); say so once instead of failing the whole read.
        log.warning(
            "world %s has no extra formats (generated before them); reading COCO/VG/VQAv2 only", layout.root
        )
        return []
    if missing:
        raise FileNotFoundError(
            f"world {layout.root}: extra formats incomplete, missing {', '.join(missing)}; "
            "generate the world again"
        )
    subdir = layout.image_subdir(split)
    parts = [
        read_gqa(
            layout.gqa_questions(split),
            ledger=ledger,
            split=split,
            image_keys=vg_image_keys(vg) if vg is not None else None,
        ),
        read_refcoco(
            layout.refcoco_refs,
            layout.coco_instances(split),
            dataset="refcoco",
            split=split,
            ledger=ledger,
            image_subdir=subdir,
        ),
        read_textvqa(
            layout.textvqa_questions(split),
            layout.textvqa_ocr(split),
            ledger=ledger,
            split=split,
            image_subdir=subdir,
        ),
        read_scienceqa(
            layout.scienceqa_problems,
            layout.scienceqa_pid_splits,
            split=split,
            ledger=ledger,
            image_subdir=layout.SCIENCEQA_SUBDIR,
        ),
    ]
    if classify.is_dir():
        parts.append(read_imagefolder(classify, image_root=layout.image_root, split=split, ledger=ledger))
    return parts + _world_vf(layout, split, ledger, known_images)


def _world_vf(layout: WorldLayout, split: str, ledger: Ledger, known: set[str]) -> list[SourceResult]:
    """The later Vision-Flan formats (`world/vf/`), read through the same `SourceBlock`s as real data.

    A world generated before them has none of their files: read without them, with a warning.
    """
    from vitune.world.vf import FORMATS

    wanted = layout.vf_files(split)
    missing = [str(p) for p in wanted if not p.exists()]
    if wanted and len(missing) == len(wanted):
        log.warning("world %s has no %s files (generated before them)", layout.root, ", ".join(FORMATS))
        return []
    if missing:
        raise FileNotFoundError(
            f"world {layout.root}: formats incomplete, missing {', '.join(missing)}; generate the world again"
        )
    return [
        b.read(split=split, ledger=ledger, known_images=known)
        for f in FORMATS.values()
        for b in f.blocks(layout, split)
    ]


def _opt(path: Path) -> Path | None:
    return path if path.exists() else None
