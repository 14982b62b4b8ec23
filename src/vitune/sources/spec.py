"""`SourceSpec`: where a user's copies of the real datasets live, and `load` to read them merged.

Only the files named are read; any subset works (COCO alone, VG alone, VQAv2 with a
`vqa_file_pattern`, GQA, TextVQA, ScienceQA, RefCOCO/+/g, class folders, or all of them). Every
record's image path is resolved under `image_root` with symlinks followed, so an annotation file
cannot point the pipeline outside the image folder.

Two ways to get a spec (both validated by the same pydantic model, unknown keys are errors):

- `load_spec_file(path)`: a YAML file with the fields below; relative paths are relative to the
  YAML file's folder, so a spec travels with the data it describes.
- `spec_from_pairs(["coco_instances=ann/instances_train2014.json", ...], image_root=...)`: the
  `vitune build --source KIND=PATH` form. KIND is a field name (`coco_captions`, `vg_dir`,
  `coco_image_subdir`, ...), a short kind (`vg`, `gqa`, `textvqa`, `textvqa_ocr`, `scienceqa`,
  `scienceqa_splits`, `refcoco`, `refcoco+`, `refcocog`, `imagefolder`) or a dotted option of a
  nested block (`gqa.balanced_only=true`).

`load_sources(spec)` returns the records with the counts that let a build manifest reconcile them:
per-file `ReadStats` and, for the merge, images in = records kept + records rejected.
`load_world_sources(root, split)` does the same for the embedded world (through `load_world`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from vitune.data.images import check_image
from vitune.data.ledger import Ledger
from vitune.data.paths import UnsafePathError, resolve_image
from vitune.data.records import ImageRecord
from vitune.sources.aokvqa import AOKVQASource
from vitune.sources.block import SourceBlock
from vitune.sources.clevr import CLEVRSource
from vitune.sources.coco import read_coco
from vitune.sources.merge import merge_records
from vitune.sources.ocrvqa import OCRVQASource
from vitune.sources.okvqa import OKVQASource
from vitune.sources.stats import ReadStats, SourceResult
from vitune.sources.visual_genome import FILES as VG_FILES
from vitune.sources.visual_genome import read_visual_genome
from vitune.sources.vizwiz import VizWizSource
from vitune.sources.vqav2 import read_vqav2
from vitune.sources.vsr import VSRSource

STAGE = "sources.load"
NO_FILE_REASON = "no source gives an image file"  # merge's record-level rejection


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GQASource(_Model):
    """GQA question files (`{split}_balanced_questions.json`, or the `train_all_questions_*` parts)."""

    questions: list[Path]  # one file or several
    image_subdir: str = "images"
    balanced_only: bool = False

    @field_validator("questions", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, (str, Path)) else v


class TextVQASource(_Model):
    questions: Path  # TextVQA_0.5.1_{split}.json
    ocr: Path | None = None  # TextVQA_Rosetta_OCR_v0.2_{split}.json
    image_subdir: str = "train_images"
    min_answers: int = 10


class ScienceQASource(_Model):
    problems: Path  # problems.json
    pid_splits: Path | None = None  # pid_splits.json; the spec's `split` picks the list
    image_subdir: str = "images"


class RefCOCOSource(_Model):
    refs: Path  # refs JSON (converted from the refer toolkit's pickle)
    instances: Path  # the toolkit's instances.json or COCO instances_train2014.json
    dataset: str = "refcoco"  # refcoco / refcoco+ / refcocog
    image_subdir: str = "train2014"


class ImageFolderSource(_Model):
    root: Path  # class folders below it; must lie inside image_root
    source: str = "imagefolder"
    label_map: dict[str, str] | None = None
    verify: bool = True  # open every image with Pillow (rejects truncated files)


class SourceSpec(_Model):
    """File locations of one split of a real dataset layout."""

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
    gqa: GQASource | None = None
    textvqa: TextVQASource | None = None
    scienceqa: ScienceQASource | None = None
    refcoco: list[RefCOCOSource] = []
    imagefolders: list[ImageFolderSource] = []
    # Later Vision-Flan sources: one `SourceBlock` each (sources/block.py); BLOCKS below lists them.
    aokvqa: AOKVQASource | None = None
    okvqa: OKVQASource | None = None
    vizwiz: VizWizSource | None = None
    ocrvqa: OCRVQASource | None = None
    vsr: VSRSource | None = None
    clevr: CLEVRSource | None = None
    restrict_to_coco: bool = False  # keep VG/VQAv2 only for images the COCO files list
    # Also reject records whose image fails the one image check (`data.images.check_image`) while
    # loading; `vitune build` runs the same check on its process pool by default instead.
    check_images: bool = False

    def blocks(self) -> list[SourceBlock]:
        """The registered source blocks this spec names, in `BLOCKS` order."""
        return [b for name in BLOCKS if (b := getattr(self, name)) is not None]

    def input_files(self) -> list[Path]:
        """Every annotation file this spec reads (for manifests and checksums), in read order."""
        out: list[Path | None] = [self.coco_instances, self.coco_captions]
        if self.vg_dir is not None:
            out += [p for n in VG_FILES if (p := Path(self.vg_dir) / f"{n}.json").exists()]
        out += [self.vqa_questions, self.vqa_annotations]
        if self.gqa is not None:
            out += self.gqa.questions
        if self.textvqa is not None:
            out += [self.textvqa.questions, self.textvqa.ocr]
        if self.scienceqa is not None:
            out += [self.scienceqa.problems, self.scienceqa.pid_splits]
        for r in self.refcoco:
            out += [r.refs, r.instances]
        out += [p for b in self.blocks() for p in b.files()]
        seen: set[Path] = set()
        return [p for p in out if p is not None and not (p in seen or seen.add(p))]


@dataclass(slots=True)
class LoadResult:
    """Merged records, where they came from, and their reconciliation (per-file and merge counts)."""

    records: list[ImageRecord]
    stats: list[ReadStats] = field(default_factory=list)
    images_in: int = 0  # distinct image keys over all sources
    rejected: int = 0  # record-level rejections (no image file, unsafe or missing image)
    image_root: Path | None = None
    inputs: list[Path] = field(default_factory=list)  # annotation files read (for checksums)
    described: dict[str, Any] = field(default_factory=dict)  # the spec (or world) as JSON

    def reconcile(self) -> dict[str, Any]:
        files = [
            {"stage": s.stage, "file": s.file, "section": s.section, **s.as_dict(), "filtered": s.filtered}
            for s in self.stats
        ]
        merge = {"in": self.images_in, "kept": len(self.records), "rejected": self.rejected}
        return {"files": files, "merge": merge}


def load(
    spec: SourceSpec, ledger: Ledger | None = None, *, stats: list[ReadStats] | None = None
) -> list[ImageRecord]:
    """Read every source `spec` names, merge per image, and keep records whose image path is safe."""
    res = load_sources(spec, ledger)
    if stats is not None:
        stats.extend(res.stats)
    return res.records


def load_sources(spec: SourceSpec, ledger: Ledger | None = None) -> LoadResult:
    """`load` with the counts: images in = records kept + record-level rejections (ledgered)."""
    ledger = ledger if ledger is not None else Ledger()
    parts = _read_parts(spec, ledger)
    if not parts:
        raise ValueError(
            "SourceSpec names no annotation files "
            "(coco_*, vg_dir, vqa_questions, gqa, textvqa, scienceqa, refcoco or imagefolders)"
        )
    keys: set[str] = set()
    for p in parts:
        keys.update(p.records)
    before = sum(1 for r in ledger.items if r.stage == "sources.merge" and r.reason == NO_FILE_REASON)
    merged = merge_records(parts, ledger, split=spec.split or None)
    rejected = (
        sum(1 for r in ledger.items if r.stage == "sources.merge" and r.reason == NO_FILE_REASON) - before
    )
    out: list[ImageRecord] = []
    for rec in merged:
        try:
            path = resolve_image(spec.image_root, rec.file_name)
        except UnsafePathError as e:
            ledger.reject(STAGE, "", f"image_id={rec.image_id}", str(e), file_name=rec.file_name)
            rejected += 1
            continue
        bad = (
            ("image file missing" if not path.is_file() else check_image(path)) if spec.check_images else None
        )
        if bad:
            ledger.reject(STAGE, "", f"image_id={rec.image_id}", f"{bad}: {path}")
            rejected += 1
            continue
        out.append(rec)
    return LoadResult(
        out,
        [s for p in parts for s in p.stats],
        len(keys),
        rejected,
        image_root=spec.image_root,
        inputs=spec.input_files(),
        described=spec.model_dump(mode="json"),
    )


def _no_file(ledger: Ledger) -> int:
    return sum(1 for r in ledger.items if r.stage == "sources.merge" and r.reason == NO_FILE_REASON)


def _read_parts(spec: SourceSpec, ledger: Ledger) -> list[SourceResult]:
    """One `SourceResult` per named source, COCO first (it sets file names and sizes in `merge`)."""
    from vitune.sources.gqa import read_gqa, vg_image_keys
    from vitune.sources.imagefolder import read_imagefolder
    from vitune.sources.refcoco import read_refcoco
    from vitune.sources.scienceqa import read_scienceqa
    from vitune.sources.textvqa import read_textvqa

    parts: list[SourceResult] = []
    ids: set[str] | None = None
    vg: SourceResult | None = None
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
        vg = read_visual_genome(
            spec.vg_dir, vg_image_subdir=spec.vg_image_subdir, ledger=ledger, split=spec.split, image_ids=ids
        )
        parts.append(vg)
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
    if spec.gqa is not None:
        g = spec.gqa
        parts.append(
            read_gqa(
                g.questions,
                ledger=ledger,
                split=spec.split,
                image_subdir=g.image_subdir,
                balanced_only=g.balanced_only,
                image_keys=vg_image_keys(vg) if vg is not None else None,
            )
        )
    if spec.textvqa is not None:
        t = spec.textvqa
        parts.append(
            read_textvqa(
                t.questions,
                t.ocr,
                ledger=ledger,
                split=spec.split,
                image_subdir=t.image_subdir,
                min_answers=t.min_answers,
            )
        )
    if spec.scienceqa is not None:
        s = spec.scienceqa
        parts.append(
            read_scienceqa(
                s.problems, s.pid_splits, split=spec.split, ledger=ledger, image_subdir=s.image_subdir
            )
        )
    for r in spec.refcoco:
        parts.append(
            read_refcoco(
                r.refs,
                r.instances,
                dataset=r.dataset,
                split=spec.split,
                ledger=ledger,
                image_subdir=r.image_subdir,
            )
        )
    for b in spec.blocks():
        parts.append(b.read(split=spec.split, ledger=ledger, known_images=ids))
    for f in spec.imagefolders:
        parts.append(
            read_imagefolder(
                f.root,
                image_root=spec.image_root,
                source=f.source,
                split=spec.split,
                label_map=f.label_map,
                verify=f.verify,
                ledger=ledger,
            )
        )
    return parts


def _block_type(annotation: Any) -> type[SourceBlock] | None:
    return next((a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, SourceBlock)), None)


# The `SourceSpec` fields that are `SourceBlock`s and their classes, in field order (the read order:
# after RefCOCO, before class folders). Derived from the fields, so a new source is one field.
BLOCKS: dict[str, type[SourceBlock]] = {
    name: t for name, f in SourceSpec.model_fields.items() if (t := _block_type(f.annotation)) is not None
}


# ---- building specs -------------------------------------------------------------------------------


class SpecError(ValueError):
    """A sources YAML or `--source` option that does not describe a valid `SourceSpec`."""


def _validation_message(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        lines.append(f"{loc}: {err['msg']}")
    return "; ".join(lines)


def validate_spec(data: Any, origin: str) -> SourceSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: expected a mapping of SourceSpec fields, got {type(data).__name__}")
    try:
        return SourceSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"{origin}: {_validation_message(e)}") from None


def _rebase(value: Any, base: Path) -> Any:
    """`value` with every relative `Path` inside it (models, lists) made relative to `base`."""
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if isinstance(value, list):
        return [_rebase(v, base) for v in value]
    if isinstance(value, BaseModel):
        return value.model_copy(
            update={k: _rebase(getattr(value, k), base) for k in type(value).model_fields}
        )
    return value


def load_spec_file(path: str | os.PathLike, *, split: str | None = None) -> SourceSpec:
    """A `SourceSpec` from YAML; relative paths are resolved against the file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: sources file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: invalid YAML: {e}") from None
    if isinstance(data, dict) and split is not None:
        data = {**data, "split": split}
    return _rebase(validate_spec(data, str(path)), path.parent)


# `--source KIND=PATH` short kinds: (nested block or None, field, appends to a list)
_KINDS: dict[str, tuple[str | None, str, bool]] = {
    "coco": (None, "coco_instances", False),
    "vg": (None, "vg_dir", False),
    "vqa": (None, "vqa_questions", False),
    "gqa": ("gqa", "questions", True),
    "textvqa": ("textvqa", "questions", False),
    "textvqa_ocr": ("textvqa", "ocr", False),
    "scienceqa": ("scienceqa", "problems", False),
    "scienceqa_splits": ("scienceqa", "pid_splits", False),
}
_REFCOCO = {"refcoco": "refcoco", "refcoco+": "refcoco+", "refcocog": "refcocog"}


def _block_kinds() -> dict[str, str]:
    """`--source` short kind -> block field (e.g. `aokvqa` -> `aokvqa`)."""
    return {cls.KIND: name for name, cls in BLOCKS.items()}


def known_kinds() -> list[str]:
    fields = [
        k for k in SourceSpec.model_fields if k not in ("image_root", "refcoco", "imagefolders", *BLOCKS)
    ]
    return sorted({*fields, *_KINDS, *_REFCOCO, *_block_kinds(), "imagefolder"})


def spec_from_pairs(
    pairs: Iterable[str],
    *,
    image_root: str | os.PathLike,
    split: str = "",
    base: dict[str, Any] | None = None,
) -> SourceSpec:
    """A `SourceSpec` from `KIND=VALUE` strings (see the module docstring); errors name the pair."""
    data: dict[str, Any] = dict(base or {})
    data["image_root"] = str(image_root)
    data.setdefault("split", split)
    pending_refs: list[tuple[str, str]] = []
    for pair in pairs:
        kind, sep, value = pair.partition("=")
        kind = kind.strip().replace("-", "_")
        if not sep or not kind or not value:
            raise SpecError(
                f"--source {pair!r}: expected KIND=PATH, e.g. coco_instances=instances_train2014.json"
            )
        if kind.replace("_", "-") in _REFCOCO or kind in _REFCOCO:
            pending_refs.append((_REFCOCO.get(kind, kind.replace("_", "-")), value))
        elif kind == "imagefolder":
            data.setdefault("imagefolders", []).append({"root": value})
        elif kind in _KINDS:
            block, name, append = _KINDS[kind]
            target = data if block is None else data.setdefault(block, {})
            if append:
                target.setdefault(name, []).append(value)
            else:
                target[name] = value
        elif kind in _block_kinds():
            name = _block_kinds()[kind]
            data.setdefault(name, {})[BLOCKS[name].MAIN] = value
        elif "." in kind:
            block, _, name = kind.partition(".")
            if block not in ("gqa", "textvqa", "scienceqa", *BLOCKS):
                dotted = ", ".join(f"{b}." for b in ("gqa", "textvqa", "scienceqa", *BLOCKS))
                raise SpecError(f"--source {pair!r}: only {dotted} take dotted options")
            data.setdefault(block, {})[name] = value
        elif kind in SourceSpec.model_fields and kind not in (
            "image_root",
            "refcoco",
            "imagefolders",
            *BLOCKS,
        ):
            data[kind] = value
        else:
            raise SpecError(f"--source {pair!r}: unknown kind {kind!r}; known: {', '.join(known_kinds())}")
    for dataset, refs in pending_refs:
        if not data.get("coco_instances"):
            raise SpecError(
                f"--source {dataset}={refs}: RefCOCO needs coco_instances=... (its instances file)"
            )
        data.setdefault("refcoco", []).append(
            {"refs": refs, "instances": data["coco_instances"], "dataset": dataset}
        )
    return validate_spec(data, "--source")


def load_world_sources(
    root: str | os.PathLike, split: str, ledger: Ledger | None = None, *, extras: bool = True
) -> LoadResult:
    """One split of an embedded world, read by `merge.load_world` (with its extra formats unless
    `extras` is False), with the same counts as `load_sources`.

    `load_world` merges without a path check (the world writes safe names), so its only
    record-level rejection is an image no source gives a file for; images in = kept + those.
    """
    from vitune.sources.merge import load_world
    from vitune.world.layout import WorldLayout

    ledger = ledger if ledger is not None else Ledger()
    layout = WorldLayout(Path(root))
    stats: list[ReadStats] = []
    before = _no_file(ledger)
    records = load_world(root, split, ledger, stats=stats, extras=extras)
    rejected = _no_file(ledger) - before
    return LoadResult(
        records,
        stats,
        len(records) + rejected,
        rejected,
        image_root=layout.image_root,
        inputs=layout.annotation_files(split, extras=extras),
        described={"world": str(root), "split": split, "extras": extras},
    )
