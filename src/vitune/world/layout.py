"""Where the embedded world puts each file. The layout mirrors how users keep the real datasets.

    ROOT/world.json                                       generation metadata (seed, counts, splits)
    ROOT/images/{split}/{split}_{image_id:012d}.jpg       image files (image root = ROOT/images)
    ROOT/coco/annotations/instances_{split}.json          COCO detection
    ROOT/coco/annotations/captions_{split}.json           COCO captions (5 per image)
    ROOT/vg/image_data.json                               Visual Genome image metadata (with coco_id)
    ROOT/vg/objects.json, attributes.json, relationships.json, region_descriptions.json
    ROOT/vqav2/v2_OpenEnded_mscoco_{split}_questions.json VQAv2 questions
    ROOT/vqav2/v2_mscoco_{split}_annotations.json         VQAv2 annotations (10 answers each)

Further formats written from the same scenes (see `extras.py`; readers in `vitune.sources`):

    ROOT/gqa/questions/{split}_balanced_questions.json    GQA questions (imageId = VG image id)
    ROOT/textvqa/TextVQA_0.5.1_{split}.json               TextVQA questions (images with a sign)
    ROOT/textvqa/TextVQA_Rosetta_OCR_v0.2_{split}.json    Rosetta OCR tokens and boxes
    ROOT/refcoco/refs(unc).json                           RefCOCO refs (all splits; JSON, not pickle)
    ROOT/scienceqa/problems.json, pid_splits.json         ScienceQA-style problems
    ROOT/images/scienceqa/{split}/{pid}/image.jpg         ScienceQA problem images
    ROOT/images/classify/{split}/{class}/{stem}.jpg       classification image folder (object crops)
    ROOT/aokvqa/aokvqa_v1p0_{split}.json                  A-OKVQA on the COCO images (world/vf/aokvqa.py)
    ROOT/okvqa/{OpenEnded_mscoco_,mscoco_}{split}_*.json  OK-VQA on the COCO images (world/vf/okvqa.py)
    ROOT/vizwiz/annotations/{split}.json, images/vizwiz/  VizWiz-VQA photos (world/vf/vizwiz.py)
    ROOT/ocrvqa/dataset.json, images/ocrvqa/{id}.jpg      OCR-VQA book covers (world/vf/ocrvqa.py)
    ROOT/vsr/splits/random/{train,dev,test}.jsonl         VSR statements on the COCO images (world/vf/vsr.py)
    ROOT/clevr/{questions,scenes}/CLEVR_{split}_*.json    CLEVR, images/clevr/{split}/*.png (world/vf/clevr.py)

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

    def gqa_questions(self, split: str) -> Path:
        return self.root / "gqa" / "questions" / f"{split}_balanced_questions.json"

    def textvqa_questions(self, split: str) -> Path:
        return self.root / "textvqa" / f"TextVQA_0.5.1_{split}.json"

    def textvqa_ocr(self, split: str) -> Path:
        return self.root / "textvqa" / f"TextVQA_Rosetta_OCR_v0.2_{split}.json"

    @property
    def refcoco_refs(self) -> Path:
        return self.root / "refcoco" / "refs(unc).json"

    @property
    def scienceqa_problems(self) -> Path:
        return self.root / "scienceqa" / "problems.json"

    @property
    def scienceqa_pid_splits(self) -> Path:
        return self.root / "scienceqa" / "pid_splits.json"

    # Image folders of the extra formats, relative to `image_root` (workers write there by name).
    SCIENCEQA_SUBDIR = "scienceqa"
    CLASSIFY_SUBDIR = "classify"

    def classify_dir(self, split: str) -> Path:
        """The class-folder root of a split (`<class>/<file>.jpg` below it)."""
        return self.image_root / self.CLASSIFY_SUBDIR / split

    def vf_files(self, split: str) -> list[Path]:
        """The annotation files of one split of the later Vision-Flan formats (`world/vf/`)."""
        return [p for f in _vf_formats().values() for p in f.files(self, split)]

    def annotation_files(self, split: str, *, extras: bool = False) -> list[Path]:
        """Every annotation file a split's records are read from (for manifests and checksums).

        `extras`: also the files `load_world(..., extras=True)` reads (GQA, TextVQA, RefCOCO, ScienceQA).
        """
        vg = [
            self.vg(n)
            for n in ("image_data", "objects", "attributes", "relationships", "region_descriptions")
        ]
        split_files = [
            self.coco_instances(split),
            self.coco_captions(split),
            self.vqa_questions(split),
            self.vqa_annotations(split),
        ]
        if extras:
            split_files += [
                self.gqa_questions(split),
                self.textvqa_questions(split),
                self.textvqa_ocr(split),
                self.refcoco_refs,
                self.scienceqa_problems,
                self.scienceqa_pid_splits,
            ]
            split_files += self.vf_files(split)
        return [p for p in [*split_files, *vg] if p.exists()]


def _vf_formats() -> dict:
    from vitune.world.vf import FORMATS  # the formats import this module

    return FORMATS


def classify_file(split: str, label: str, image_id: int) -> str:
    """Where a classification crop goes, relative to the image root (one crop per world image)."""
    return f"{WorldLayout.CLASSIFY_SUBDIR}/{split}/{label}/{split}_{image_id:012d}.jpg"


def scienceqa_image(split: str, pid: str, image: str) -> str:
    """ScienceQA's `{split}/{pid}/{image}` under the `scienceqa` image folder (relative to the image root)."""
    return f"{WorldLayout.SCIENCEQA_SUBDIR}/{split}/{pid}/{image}"
