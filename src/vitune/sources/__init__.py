"""Readers for the public annotation formats, merged per image.

COCO, Visual Genome, VQAv2, GQA, TextVQA (+ Rosetta OCR), ScienceQA, RefCOCO/+/g, classification
image folders, A-OKVQA, OK-VQA, VizWiz, OCR-VQA, VSR, CLEVR; `read_visionflan` imports the Vision-Flan release directly as `Instance`s.

Each reader turns one dataset's files into `ImageRecord`s keyed by image id, rejecting bad records
into the ledger with per-file `ReadStats` (seen = kept + rejected). `merge` unions them per image;
`load_world` reads the embedded world and `load` a user's real layout described by a `SourceSpec`.
"""

from vitune.data.paths import UnsafePathError, check_rel_path, resolve_image
from vitune.sources.aokvqa import read_aokvqa
from vitune.sources.clevr import read_clevr
from vitune.sources.coco import read_coco
from vitune.sources.gqa import read_gqa, vg_image_keys
from vitune.sources.imagefolder import read_imagefolder
from vitune.sources.jsonio import load_json
from vitune.sources.merge import load_world, merge_records
from vitune.sources.ocrvqa import read_ocrvqa
from vitune.sources.okvqa import read_okvqa
from vitune.sources.refcoco import read_refcoco
from vitune.sources.scienceqa import read_scienceqa
from vitune.sources.spec import SourceSpec, load
from vitune.sources.stats import ReadStats, SourceResult
from vitune.sources.textvqa import read_textvqa
from vitune.sources.visionflan import VisionFlanResult, read_visionflan
from vitune.sources.visual_genome import read_visual_genome
from vitune.sources.vizwiz import read_vizwiz
from vitune.sources.vqav2 import read_vqav2
from vitune.sources.vsr import read_vsr

__all__ = [
    "ReadStats",
    "SourceResult",
    "SourceSpec",
    "UnsafePathError",
    "VisionFlanResult",
    "check_rel_path",
    "load",
    "load_json",
    "load_world",
    "merge_records",
    "read_aokvqa",
    "read_clevr",
    "read_coco",
    "read_gqa",
    "read_imagefolder",
    "read_ocrvqa",
    "read_okvqa",
    "read_refcoco",
    "read_scienceqa",
    "read_textvqa",
    "read_visionflan",
    "read_visual_genome",
    "read_vizwiz",
    "read_vqav2",
    "read_vsr",
    "resolve_image",
    "vg_image_keys",
]
