"""`SourceSpec`: where a user's copies of the real datasets live, and `load` to read them merged.

Only the files named are read; any subset works (COCO alone, VG alone, VQAv2 with a
`vqa_file_pattern`, or all of them). Every record's image path is resolved under `image_root`
with symlinks followed, so an annotation file cannot point the pipeline outside the image folder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from vitune.data.ledger import Ledger
from vitune.data.records import ImageRecord
from vitune.sources.coco import read_coco
from vitune.sources.merge import merge_records
from vitune.sources.paths import UnsafePathError, resolve_image
from vitune.sources.stats import ReadStats, SourceResult
from vitune.sources.visual_genome import read_visual_genome
from vitune.sources.vqav2 import read_vqav2

STAGE = "sources.load"


class SourceSpec(BaseModel):
    """File locations of one split of a real dataset layout (COCO / Visual Genome / VQAv2)."""

    model_config = ConfigDict(extra="forbid")

    image_root: Path
    split: str = ""
    coco_instances: Path | None = None  # e.g. annotations/instances_train2014.json
    coco_captions: Path | None = None  # e.g. annotations/captions_train2014.json
    coco_image_subdir: str = ""  # e.g. "train2014" (relative to image_root)
    vg_dir: Path | None = None  # folder with image_data.json, objects.json, ...
    vg_image_subdir: str = "vg"  # VG images at {image_root}/{vg_image_subdir}/{image_id}.jpg
    vqa_questions: Path | None = None
    vqa_annotations: Path | None = None  # absent for the test split
    vqa_file_pattern: str | None = None  # e.g. "val2014/COCO_val2014_{image_id:012d}.jpg"
    restrict_to_coco: bool = False  # keep VG/VQAv2 only for images the COCO files list
    check_images: bool = False  # also reject records whose image file does not exist


def load(
    spec: SourceSpec, ledger: Ledger | None = None, *, stats: list[ReadStats] | None = None
) -> list[ImageRecord]:
    """Read every source `spec` names, merge per image, and keep records whose image path is safe."""
    ledger = ledger if ledger is not None else Ledger()
    parts: list[SourceResult] = []
    ids: set[str] | None = None
    if spec.coco_instances is not None or spec.coco_captions is not None:
        coco = read_coco(
            spec.coco_instances,
            spec.coco_captions,
            image_subdir=spec.coco_image_subdir,
            ledger=ledger,
            split=spec.split,
        )
        parts.append(coco)
        if spec.restrict_to_coco:
            ids = set(coco.records)
    if spec.vg_dir is not None:
        parts.append(
            read_visual_genome(
                spec.vg_dir,
                vg_image_subdir=spec.vg_image_subdir,
                ledger=ledger,
                split=spec.split,
                image_ids=ids,
            )
        )
    if spec.vqa_questions is not None:
        parts.append(
            read_vqav2(
                spec.vqa_questions,
                spec.vqa_annotations,
                ledger=ledger,
                split=spec.split,
                known_images=ids,
                file_pattern=spec.vqa_file_pattern,
            )
        )
    if not parts:
        raise ValueError("SourceSpec names no annotation files (coco_*, vg_dir or vqa_questions)")
    if stats is not None:
        for p in parts:
            stats.extend(p.stats)
    out: list[ImageRecord] = []
    for rec in merge_records(parts, ledger, split=spec.split or None):
        try:
            path = resolve_image(spec.image_root, rec.file_name)
        except UnsafePathError as e:
            ledger.reject(STAGE, "", f"image_id={rec.image_id}", str(e), file_name=rec.file_name)
            continue
        if spec.check_images and not path.is_file():
            ledger.reject(STAGE, "", f"image_id={rec.image_id}", f"image file missing: {path}")
            continue
        out.append(rec)
    return out
