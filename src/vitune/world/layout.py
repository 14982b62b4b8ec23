"""Where the embedded world puts each file. The layout mirrors how users keep the real datasets.

    ROOT/world.json                                       generation metadata (seed, counts, splits)
    ROOT/images/{split}/{split}_{image_id:012d}.jpg       image files (image root = ROOT/images)
    ROOT/coco/annotations/instances_{split}.json          COCO detection
    ROOT/coco/annotations/captions_{split}.json           COCO captions (5 per image)
    ROOT/vg/image_data.json                               Visual Genome image metadata (with coco_id)
    ROOT/vg/objects.json, attributes.json, relationships.json, region_descriptions.json
    ROOT/vqav2/v2_OpenEnded_mscoco_{split}_questions.json VQAv2 questions
    ROOT/vqav2/v2_mscoco_{split}_annotations.json         VQAv2 annotations (10 answers each)

Visual Genome is one pool over all splits, as in reality; its `coco_id` links it to COCO images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class WorldLayout:
    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def meta(self) -> Path:
        return self.root / "world.json"

    @property
    def image_root(self) -> Path:
        return self.root / "images"

    def image_subdir(self, split: str) -> str:
        """The folder (relative to `image_root`) holding a split's images, as COCO's `train2014`."""
        return split

    def image_file_name(self, split: str, image_id: int) -> str:
        """The COCO `file_name` of an image (relative to its split folder)."""
        return f"{split}_{image_id:012d}.jpg"

    def coco_instances(self, split: str) -> Path:
        return self.root / "coco" / "annotations" / f"instances_{split}.json"

    def coco_captions(self, split: str) -> Path:
        return self.root / "coco" / "annotations" / f"captions_{split}.json"

    @property
    def vg_dir(self) -> Path:
        return self.root / "vg"

    def vg(self, name: str) -> Path:
        """`name` is one of image_data, objects, attributes, relationships, region_descriptions."""
        return self.vg_dir / f"{name}.json"

    def vqa_questions(self, split: str) -> Path:
        return self.root / "vqav2" / f"v2_OpenEnded_mscoco_{split}_questions.json"

    def vqa_annotations(self, split: str) -> Path:
        return self.root / "vqav2" / f"v2_mscoco_{split}_annotations.json"

    def annotation_files(self, split: str) -> list[Path]:
        """Every annotation file a split's records are read from (for manifests and checksums)."""
        vg = [self.vg(n) for n in ("image_data", "objects", "attributes", "relationships", "region_descriptions")]
        split_files = [self.coco_instances(split), self.coco_captions(split), self.vqa_questions(split), self.vqa_annotations(split)]
        return [p for p in [*split_files, *vg] if p.exists()]
