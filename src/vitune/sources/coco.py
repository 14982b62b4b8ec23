"""COCO `instances_*.json` and `captions_*.json` → one `ImageRecord` per COCO image.

Both files carry the same `images` list; either may be absent. Image lists of both files are read
first (so an annotation may refer to an image listed only in the other file), then categories, then
annotations. One pass over each list with plain-dict lookups: COCO train has 860K instance
annotations, so nothing here is quadratic and no pydantic model is built per record.

Records are keyed by `str(image id)` — the key Visual Genome (`coco_id`) and VQAv2 (`image_id`) use
too, which is what lets `merge` join them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path
from vitune.data.records import ImageRecord, ObjectAnn
from vitune.sources.fields import as_id, as_size, box_from_list, clean_text
from vitune.sources.jsonio import gc_paused, load_json, require_list
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.coco"
_SHAPE = "a COCO object with 'images' and 'annotations' lists"


@gc_paused
def read_coco(
    instances: str | os.PathLike | None = None,
    captions: str | os.PathLike | None = None,
    *,
    image_subdir: str = "",
    ledger: Ledger | None = None,
    split: str = "",
) -> SourceResult:
    """Read COCO detection and/or caption files into records keyed by `str(image id)`.

    `file_name` of each record is `f"{image_subdir}/{file_name}"` (relative to the image root), e.g.
    `train2014/COCO_train2014_000000000009.jpg`. Bad records go to `ledger`; a missing or
    malformed file raises with the file named.
    """
    if instances is None and captions is None:
        raise ValueError("read_coco: give an instances file, a captions file, or both")
    if image_subdir:
        reason = check_rel_path(image_subdir)
        if reason is not None:  # a configuration error, not a bad record: fail loudly
            raise ValueError(f"COCO image_subdir: {reason}")
    ledger = ledger if ledger is not None else Ledger()
    result = SourceResult("coco")
    files = [
        (Path(p), kind) for p, kind in ((instances, "instances"), (captions, "captions")) if p is not None
    ]
    loaded = []
    for path, kind in files:
        data = load_json(path, dict, _SHAPE)
        loaded.append((path, kind, data))
        _read_images(path, require_list(data, "images", path), image_subdir, split, result, ledger)
    for path, kind, data in loaded:
        if kind == "instances":
            cats = _read_categories(path, require_list(data, "categories", path), result, ledger)
            _read_instances(path, require_list(data, "annotations", path), cats, result, ledger)
        else:
            _read_captions(path, require_list(data, "annotations", path), result, ledger)
    return result


def _read_images(
    path: Path, images: list[Any], subdir: str, split: str, result: SourceResult, ledger: Ledger
) -> None:
    t = Tally(ledger, STAGE, str(path), "images")
    st = t.stats
    records = result.records
    in_this_file: set[str] = set()
    prefix = f"{subdir.rstrip('/')}/" if subdir else ""
    for i, im in enumerate(images):
        st.seen += 1
        loc = f"images[{i}]"
        if not isinstance(im, dict):
            t.reject(loc, "image entry is not an object")
            continue
        iid = as_id(im.get("id"))
        if iid is None:
            t.reject(loc, "missing or invalid image 'id'")
            continue
        fn = im.get("file_name")
        reason = check_rel_path(fn)
        if reason is not None:
            t.reject(loc, reason, image_id=iid)
            continue
        w, h = as_size(im.get("width")), as_size(im.get("height"))
        if w is None or h is None:
            t.reject(loc, "missing or invalid width/height", image_id=iid)
            continue
        if iid in in_this_file:
            t.reject(loc, f"duplicate image id {iid}", image_id=iid)
            continue
        in_this_file.add(iid)
        rel = prefix + fn
        prev = records.get(iid)
        if prev is not None:  # listed by the other file too: must describe the same image
            if (prev.file_name, prev.width, prev.height) != (rel, w, h):
                t.reject(
                    loc,
                    f"image {iid} differs from the other COCO file "
                    f"({rel} {w}x{h} vs {prev.file_name} {prev.width}x{prev.height})",
                    image_id=iid,
                )
                continue
        else:
            meta: dict[str, Any] = {"coco_id": int(iid)} if iid.isdigit() else {}
            records[iid] = ImageRecord(iid, rel, w, h, split=split, sources=["coco"], meta=meta)
        st.kept += 1
    result.stats.append(st)


def _read_categories(path: Path, cats: list[Any], result: SourceResult, ledger: Ledger) -> dict[str, str]:
    t = Tally(ledger, STAGE, str(path), "categories")
    st = t.stats
    out: dict[str, str] = {}
    for k, c in enumerate(cats):
        st.seen += 1
        loc = f"categories[{k}]"
        if not isinstance(c, dict):
            t.reject(loc, "category entry is not an object")
            continue
        cid, name = as_id(c.get("id")), clean_text(c.get("name"))
        if cid is None or name is None:
            t.reject(loc, "category lacks a valid 'id' or 'name'")
            continue
        if cid in out:
            t.reject(loc, f"duplicate category id {cid}")
            continue
        out[cid] = name
        st.kept += 1
    result.stats.append(st)
    return out


def _annotation_target(
    t: Tally, loc: str, a: Any, records: dict[str, ImageRecord]
) -> tuple[str, str, ImageRecord] | None:
    """(annotation id, image id, record) of an annotation, or None after rejecting it with a reason."""
    if not isinstance(a, dict):
        t.reject(loc, "annotation is not an object")
        return None
    aid = as_id(a.get("id"))
    if aid is None:
        t.reject(loc, "missing or invalid annotation 'id'")
        return None
    iid = as_id(a.get("image_id"))
    rec = records.get(iid) if iid is not None else None
    if rec is None:
        t.reject(loc, f"unknown image id {a.get('image_id')!r}", annotation_id=aid)
        return None
    return aid, iid, rec


def _annotations(
    t: Tally, anns: list[Any], records: dict[str, ImageRecord]
) -> Iterator[tuple[str, dict[str, Any], str, str, ImageRecord]]:
    """Count every annotation as seen; yield (locator, annotation, ids, record) for the resolvable ones."""
    for j, a in enumerate(anns):
        t.stats.seen += 1
        loc = f"annotations[{j}]"
        target = _annotation_target(t, loc, a, records)
        if target is not None:
            yield (loc, a, *target)


def _read_instances(
    path: Path, anns: list[Any], cats: dict[str, str], result: SourceResult, ledger: Ledger
) -> None:
    t = Tally(ledger, STAGE, str(path), "annotations")
    st = t.stats
    ann_ids: set[str] = set()
    for loc, a, aid, iid, rec in _annotations(t, anns, result.records):
        name = cats.get(as_id(a.get("category_id")))  # type: ignore[arg-type]
        if name is None:
            t.reject(loc, f"unknown category id {a.get('category_id')!r}", annotation_id=aid, image_id=iid)
            continue
        box, reason = box_from_list(a.get("bbox"), rec.width, rec.height)
        if box is None:
            t.reject(loc, reason, annotation_id=aid, image_id=iid)
            continue
        if aid in ann_ids:
            t.reject(loc, f"duplicate annotation id {aid}", image_id=iid)
            continue
        ann_ids.add(aid)
        oid = f"coco:{aid}"
        crowd = a.get("iscrowd") in (1, True)
        # Crowd boxes cover a group ("people"), not one object: kept, flagged, never counted.
        rec.objects.append(ObjectAnn(oid, name, box, [], "coco", crowd))
        if crowd:
            rec.meta.setdefault("coco_crowd", []).append(oid)
        st.kept += 1
    result.stats.append(st)


def _read_captions(path: Path, anns: list[Any], result: SourceResult, ledger: Ledger) -> None:
    t = Tally(ledger, STAGE, str(path), "annotations")
    st = t.stats
    ann_ids: set[str] = set()
    for loc, a, aid, iid, rec in _annotations(t, anns, result.records):
        caption = clean_text(a.get("caption"))
        if caption is None:
            t.reject(loc, "missing or empty 'caption'", annotation_id=aid, image_id=iid)
            continue
        if aid in ann_ids:
            t.reject(loc, f"duplicate annotation id {aid}", image_id=iid)
            continue
        ann_ids.add(aid)
        rec.captions.append(caption)
        st.kept += 1
    result.stats.append(st)
