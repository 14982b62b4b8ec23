"""RefCOCO / RefCOCO+ / RefCOCOg referring expressions (JSON forms) → `Region`s on COCO images.

The refer toolkit (lichengunc/refer) ships `refs(unc).p` / `refs(umd).p` / `refs(google).p` as
Python pickles plus a COCO-style `instances.json`. The pickle is read as it is released, by a
restricted unpickler that builds only plain data (`jsonio.load_plain_pickle`): one naming any class
or function, which could run code, is refused with a clear message. JSON copies work too.
Expected files:

- refs (pickle or JSON): a list (or an object with a `refs` list) of `{"ref_id", "ann_id", "image_id", "split",
  "sentences": [{"sent", "raw", "tokens", "sent_id"}], "category_id", "sent_ids", "file_name"}`.
  `split` is `train`/`val`/`test` or `testA`/`testB` (UNC), `train`/`val` (UMD/Google).
- instances JSON (the toolkit's `data/<dataset>/instances.json`, or COCO `instances_train2014.json`):
  `images` (file name and size), `annotations` (`bbox` `[x, y, w, h]` in pixels), `categories`. It
  is read with `read_coco`, so its problems are ledgered under `sources.coco`.

Each sentence of a ref becomes one `Region(region_id=f"{dataset}:{ref_id}:{sent_id}", phrase=sent,
box=the ref's annotation box, source=dataset)`; `raw` is used only when `sent` is empty.
`meta["region_objects"]` maps each region id to the COCO object id (`coco:{ann_id}`) it refers to,
so builders can relate it to the same object read from COCO. Records are keyed `str(image_id)` (the
COCO id) and carry only regions, so they merge onto COCO's records. With `split`, refs of other
splits are `filtered` (not seen). Sentences of a rejected ref are never seen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vitune.data.ledger import Ledger
from vitune.data.records import ImageRecord, ObjectAnn, Region
from vitune.sources.coco import read_coco
from vitune.sources.fields import as_id, clean_text
from vitune.sources.jsonio import gc_paused, is_pickle, load_json, load_plain_pickle
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.refcoco"
DATASETS = ("refcoco", "refcoco+", "refcocog")


@gc_paused
def read_refcoco(
    refs: str | os.PathLike,
    instances: str | os.PathLike,
    *,
    dataset: str = "refcoco",
    split: str = "",
    ledger: Ledger | None = None,
    image_subdir: str = "train2014",
) -> SourceResult:
    """Read referring expressions of `dataset` (one of `DATASETS`) into records keyed by COCO id.

    `image_subdir` is prefixed to the instances file's image names (RefCOCO* use COCO train2014).
    A missing or malformed file raises naming the file; bad refs and sentences go to `ledger`.
    """
    if dataset not in DATASETS:
        raise ValueError(f"read_refcoco: dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    ledger = ledger if ledger is not None else Ledger()
    coco = read_coco(instances, image_subdir=image_subdir, ledger=ledger)
    # ann id -> (image key, object): boxes were validated against the image size by read_coco.
    objects: dict[str, tuple[str, ObjectAnn]] = {}
    for key, rec in coco.records.items():
        for o in rec.objects:
            objects[o.object_id.removeprefix("coco:")] = (key, o)
    rpath = Path(refs)
    if is_pickle(rpath):  # the official refs(unc).p: plain data only, never code
        data = load_plain_pickle(rpath, (list, dict))
    else:
        data = load_json(rpath, (list, dict), "a list of refs (or an object with a 'refs' list)")
    if isinstance(data, dict):
        if not isinstance(data.get("refs"), list):
            raise ValueError(f"{rpath}: expected a list of refs or an object with a 'refs' list")
        data = data["refs"]
    result = SourceResult(dataset, stats=list(coco.stats))
    t = Tally(ledger, STAGE, str(rpath), "refs")
    ts = Tally(ledger, STAGE, str(rpath), "sentences")
    seen_refs: set[str] = set()
    for i, ref in enumerate(data):
        loc = f"[{i}]"
        if isinstance(ref, dict) and split and isinstance(ref.get("split"), str) and ref["split"] != split:
            t.stats.filtered += 1
            continue
        t.stats.seen += 1
        if not isinstance(ref, dict):
            t.reject(loc, "ref is not an object")
            continue
        rid, aid, iid = as_id(ref.get("ref_id")), as_id(ref.get("ann_id")), as_id(ref.get("image_id"))
        if rid is None or aid is None or iid is None:
            t.reject(loc, "missing or invalid 'ref_id', 'ann_id' or 'image_id'")
            continue
        if split and not isinstance(ref.get("split"), str):
            t.reject(loc, f"missing 'split' (reading split {split!r})", ref_id=rid)
            continue
        found = objects.get(aid)
        if found is None:
            t.reject(loc, f"ann_id {aid} is not a valid annotation of {Path(instances).name}", ref_id=rid)
            continue
        key, obj = found
        if key != iid:
            t.reject(loc, f"ann_id {aid} belongs to image {key}, not {iid}", ref_id=rid)
            continue
        sentences = ref.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            t.reject(loc, "missing or empty 'sentences' list", ref_id=rid)
            continue
        if rid in seen_refs:
            t.reject(loc, f"duplicate ref_id {rid}")
            continue
        seen_refs.add(rid)
        regions = _regions(sentences, f"{dataset}:{rid}", obj, dataset, loc, ts)
        if not regions:  # every sentence was rejected (and ledgered): the ref carries nothing
            t.reject(loc, "no usable sentence", ref_id=rid)
            continue
        rec = result.records.get(key)
        if rec is None:
            src = coco.records[key]
            rec = result.records[key] = ImageRecord(
                key,
                src.file_name,
                src.width,
                src.height,
                split=split or (ref["split"] if isinstance(ref.get("split"), str) else ""),
                sources=[dataset],
                meta={"coco_id": int(key)} if key.isdigit() else {},
            )
        rec.regions.extend(regions)
        links = rec.meta.setdefault("region_objects", {})
        for r in regions:
            links[r.region_id] = obj.object_id
        t.stats.kept += 1
    result.stats += [t.stats, ts.stats]
    return result


def _regions(
    sentences: list[Any], prefix: str, obj: ObjectAnn, dataset: str, loc: str, ts: Tally
) -> list[Region]:
    out: list[Region] = []
    used: set[str] = set()
    for j, s in enumerate(sentences):
        ts.stats.seen += 1
        sloc = f"{loc}.sentences[{j}]"
        if not isinstance(s, dict):
            ts.reject(sloc, "sentence is not an object")
            continue
        text = clean_text(s.get("sent")) or clean_text(s.get("raw"))
        if text is None:
            ts.reject(sloc, "missing or empty 'sent' and 'raw'")
            continue
        sid = as_id(s.get("sent_id"))
        sid = sid if sid is not None else f"s{j}"  # some conversions drop sent_id: position is stable
        if sid in used:
            ts.reject(sloc, f"duplicate sent_id {sid} in this ref")
            continue
        used.add(sid)
        out.append(Region(f"{prefix}:{sid}", text, obj.box, dataset))
        ts.stats.kept += 1
    return out
