"""Visual Genome (v1.2/v1.4 JSON) → `ImageRecord`s with objects, attributes, relations and regions.

Files (each optional, at least one needed): `image_data.json` (size, `coco_id`), `objects.json`,
`attributes.json`, `relationships.json`, `region_descriptions.json`. All but `image_data` are lists
of per-image entries (`image_id`, or `id` in region_descriptions) holding a list of items.

Records are keyed by the COCO id when `image_data` gives `coco_id` (so they merge with COCO and
VQAv2), else by `vg:{image_id}`. Objects are merged across files by `object_id` (also through
`merged_object_ids`, which relationships sometimes refer to): attributes land on the object they
name, and relationship ends missing from `objects.json` are added from the relationship itself.

Counting: each file has an `images` tally (its per-image entries) and one for its items. A rejected
entry rejects its items implicitly (they are never seen); entries outside `image_ids` are `filtered`.
The files are large (objects.json ~400 MB), so each is parsed once, walked once with dict lookups,
and dropped before the next is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from vitune.data.ledger import Ledger
from vitune.data.paths import check_rel_path
from vitune.data.records import ImageRecord, ObjectAnn, Region, Relation
from vitune.sources.fields import as_id, as_size, box_from_xywh, clean_text
from vitune.sources.jsonio import gc_paused, load_json
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.vg"
SOURCE = "vg"  # the short name task builders filter objects by
FILES = ("image_data", "objects", "attributes", "relationships", "region_descriptions")
_ITEM_KEY = {"objects": "objects", "attributes": "attributes", "relationships": "relationships",
             "region_descriptions": "regions"}  # fmt: skip


class _State:
    """Everything accumulated across the files of one read."""

    def __init__(self, subdir: str, split: str, image_ids: Collection[str] | None, ledger: Ledger) -> None:
        self.subdir = subdir.rstrip("/")
        self.split = split
        self.image_ids = image_ids
        self.ledger = ledger
        self.result = SourceResult(SOURCE)
        self.key_of: dict[str, str] | None = None  # vg image id -> record key; None without image_data
        self.objs: dict[str, dict[str, ObjectAnn]] = {}  # record key -> vg object id -> object
        self.alias: dict[str, dict[str, str]] = {}  # record key -> merged object id -> kept object id
        self.rel_ids: dict[str, set[str]] = {}
        self.region_ids: dict[str, set[str]] = {}
        self.bad_images: set[str] = set()  # vg ids rejected in image_data.json
        # Names and attributes repeat millions of times ("man", "white"): clean each spelling once.
        self._clean: dict[str, str | None] = {}

    def clean(self, raw: Any) -> str | None:
        if type(raw) is not str:
            return None
        try:
            return self._clean[raw]
        except KeyError:
            text = self._clean[raw] = clean_text(raw)
            return text

    def file_name(self, vg_id: str) -> str:
        return f"{self.subdir}/{vg_id}.jpg" if self.subdir else f"{vg_id}.jpg"

    def new_record(self, key: str, vg_id: str, w: int, h: int, coco_id: int | None) -> ImageRecord:
        meta: dict[str, Any] = {"vg_image_id": int(vg_id) if vg_id.isdigit() else vg_id}
        if coco_id is not None:
            meta["coco_id"] = coco_id
        rec = ImageRecord(key, self.file_name(vg_id), w, h, split=self.split, sources=[SOURCE], meta=meta)
        self.result.records[key] = rec
        self.objs[key] = {}
        return rec

    def find(self, key: str, oid: str) -> ObjectAnn | None:
        objs = self.objs[key]
        obj = objs.get(oid)
        if obj is None:
            canon = self.alias[key].get(oid) if key in self.alias else None
            obj = objs.get(canon) if canon is not None else None
        return obj


@gc_paused
def read_visual_genome(
    vg_dir: str | os.PathLike | None = None,
    *,
    files: dict[str, str | os.PathLike] | None = None,
    vg_image_subdir: str = "vg",
    ledger: Ledger | None = None,
    split: str = "",
    image_ids: Collection[str] | None = None,
) -> SourceResult:
    """Read the Visual Genome files found in `vg_dir` (and/or named in `files` by their FILES stem).

    `image_ids` restricts the read to those record keys (COCO ids / `vg:{id}`); other images are
    counted as `filtered`, not rejected. Images are at `{vg_image_subdir}/{image_id}.jpg`.
    """
    if vg_image_subdir and check_rel_path(vg_image_subdir) is not None:
        raise ValueError(f"Visual Genome image subdir: {check_rel_path(vg_image_subdir)}")
    paths: dict[str, Path] = {}
    if vg_dir is not None:
        for name in FILES:
            p = Path(vg_dir) / f"{name}.json"
            if p.exists():
                paths[name] = p
    for name, p in (files or {}).items():
        if name not in FILES:
            raise ValueError(f"unknown Visual Genome file {name!r}; expected one of {FILES}")
        paths[name] = Path(p)  # named explicitly: load_json fails loudly if it is missing
    if not paths:
        raise FileNotFoundError(f"{vg_dir}: no Visual Genome files ({', '.join(f + '.json' for f in FILES)})")
    state = _State(vg_image_subdir, split, set(image_ids) if image_ids is not None else None,
                   ledger if ledger is not None else Ledger())  # fmt: skip
    if "image_data" in paths:
        _read_image_data(paths["image_data"], state)
    handlers: dict[str, Callable[[str, dict[str, Any], _State], str]] = {
        "objects": _object_item,
        "attributes": _attribute_item,
        "relationships": _relationship_item,
        "region_descriptions": _region_item,
    }
    for name, handler in handlers.items():
        if name in paths:
            _read_entries(paths[name], name, handler, state)
    for key, rec in state.result.records.items():
        rec.objects = list(state.objs[key].values())
    return state.result


def _read_image_data(path: Path, state: _State) -> None:
    data = load_json(path, list, "a JSON list of image entries")
    t = Tally(state.ledger, STAGE, str(path), "images")
    st = t.stats
    key_of: dict[str, str] = {}
    coco_seen: set[int] = set()
    for i, im in enumerate(data):
        loc = f"[{i}]"
        if not isinstance(im, dict):
            st.seen += 1
            t.reject(loc, "image entry is not an object")
            continue
        vg_id = as_id(im.get("image_id", im.get("id")))
        coco = im.get("coco_id")
        coco_id = coco if type(coco) is int else None
        key = str(coco_id) if coco_id is not None else f"vg:{vg_id}"
        if state.image_ids is not None and key not in state.image_ids:
            st.filtered += 1
            if vg_id is not None and vg_id not in key_of:
                key_of[vg_id] = key  # known but out of scope: later files filter it, not reject it
            continue
        st.seen += 1
        if vg_id is None:
            t.reject(loc, "missing or invalid 'image_id'")
            continue
        w, h = as_size(im.get("width")), as_size(im.get("height"))
        if w is None or h is None:
            state.bad_images.add(vg_id)
            t.reject(loc, "missing or invalid width/height", image_id=vg_id)
            continue
        if vg_id in key_of:
            t.reject(loc, f"duplicate image id {vg_id}", image_id=vg_id)
            continue  # the first entry stands: later files attach to it
        if coco_id is not None and coco_id in coco_seen:
            state.bad_images.add(vg_id)
            t.reject(loc, f"duplicate coco_id {coco_id}", image_id=vg_id)
            continue
        if coco is not None and coco_id is None:
            state.bad_images.add(vg_id)
            t.reject(loc, f"invalid coco_id {coco!r}", image_id=vg_id)
            continue
        key_of[vg_id] = key
        if coco_id is not None:
            coco_seen.add(coco_id)
        state.new_record(key, vg_id, w, h, coco_id)
        st.kept += 1
    state.key_of = key_of
    state.result.stats.append(st)


def _read_entries(
    path: Path, name: str, handler: Callable[[str, dict[str, Any], _State], str], state: _State
) -> None:
    """Walk the per-image entries of one file, dispatching each item to `handler`."""
    data = load_json(path, list, "a JSON list of per-image entries")
    item_key = _ITEM_KEY[name]
    entries = Tally(state.ledger, STAGE, str(path), "images")
    items = Tally(state.ledger, STAGE, str(path), item_key)
    istats = items.stats
    done: set[str] = set()
    for i, entry in enumerate(data):
        loc = f"[{i}]"
        if not isinstance(entry, dict):
            entries.stats.seen += 1
            entries.reject(loc, "entry is not an object")
            continue
        vg_id = as_id(entry.get("image_id", entry.get("id")))
        key = _key_for(vg_id, state)
        if key is not None and state.image_ids is not None and key not in state.image_ids:
            entries.stats.filtered += 1
            continue
        entries.stats.seen += 1
        if vg_id is None:
            entries.reject(loc, "missing or invalid 'image_id'")
            continue
        if key is None:
            why = "was rejected in" if vg_id in state.bad_images else "is not in"
            entries.reject(loc, f"unknown image id {vg_id} (it {why} image_data.json)", image_id=vg_id)
            continue
        lst = entry.get(item_key)
        if not isinstance(lst, list):
            entries.reject(loc, f"missing or non-list {item_key!r}", image_id=vg_id)
            continue
        if vg_id in done:
            entries.reject(loc, f"duplicate entry for image {vg_id}", image_id=vg_id)
            continue
        done.add(vg_id)
        if key not in state.result.records:  # no image_data: the image is known only by its id
            state.new_record(key, vg_id, 0, 0, None)
        entries.stats.kept += 1
        istats.seen += len(lst)
        kept = 0
        for j, item in enumerate(lst):
            # Handlers return "" or a reason; the locator string is only built for rejections.
            reason = handler(key, item, state) if type(item) is dict else f"{item_key} item is not an object"
            if reason:
                items.reject(f"[{i}].{item_key}[{j}]", reason, image_id=vg_id)
            else:
                kept += 1
        istats.kept += kept
    state.result.stats.append(entries.stats)
    state.result.stats.append(items.stats)


def _key_for(vg_id: str | None, state: _State) -> str | None:
    if vg_id is None:
        return None
    if state.key_of is None:
        return f"vg:{vg_id}"
    return state.key_of.get(vg_id)


def _parse_object(
    d: dict[str, Any], rec: ImageRecord, state: _State
) -> tuple[str | None, ObjectAnn | None, str]:
    """An object dict as found in objects.json, attributes.json and relationship ends."""
    raw_id = d.get("object_id")
    oid = as_id(raw_id if raw_id is not None else d.get("id"))
    if oid is None:
        return None, None, "missing or invalid 'object_id'"
    names = d.get("names")
    name = state.clean(names[0] if type(names) is list and names else d.get("name"))
    if name is None:
        return oid, None, "object has no name ('names' or 'name')"
    box, reason = box_from_xywh(d.get("x"), d.get("y"), d.get("w"), d.get("h"), rec.width, rec.height)
    if box is None:
        return oid, None, reason
    return oid, ObjectAnn(f"vg:{oid}", name, box, [], SOURCE), ""


def _add_object(state: _State, key: str, oid: str, obj: ObjectAnn, d: dict[str, Any]) -> None:
    state.objs[key][oid] = obj
    merged = d.get("merged_object_ids")
    if isinstance(merged, list) and merged:
        alias = state.alias.setdefault(key, {})
        for m in merged:
            mid = as_id(m)
            if mid is not None:
                alias.setdefault(mid, oid)


def _object_item(key: str, d: dict[str, Any], state: _State) -> str:
    rec = state.result.records[key]
    oid, obj, reason = _parse_object(d, rec, state)
    if obj is None or oid is None:
        return reason
    if oid in state.objs[key]:
        return f"duplicate object id {oid}"
    attrs, reason = _attributes(d, state)
    if attrs is None:
        return reason
    obj.attributes = attrs
    _add_object(state, key, oid, obj, d)
    return ""


def _attributes(d: dict[str, Any], state: _State) -> tuple[list[str] | None, str]:
    raw = d.get("attributes")
    if raw is None:  # most VG objects carry no attributes at all
        return [], ""
    if not isinstance(raw, list):
        return None, "'attributes' is not a list"
    out: list[str] = []
    for a in raw:
        text = state.clean(a)
        if text is None:
            return None, f"attribute {a!r} is not a non-empty string"
        if text not in out:  # VG repeats attributes ("white", "white ")
            out.append(text)
    return out, ""


def _attribute_item(key: str, d: dict[str, Any], state: _State) -> str:
    oid = as_id(d.get("object_id", d.get("id")))
    if oid is None:
        return "missing or invalid 'object_id'"
    attrs, reason = _attributes(d, state)
    if attrs is None:
        return reason
    obj = state.find(key, oid)
    if obj is None:  # objects.json absent or lacks it: the attribute entry carries the object itself
        _, obj, reason = _parse_object(d, state.result.records[key], state)
        if obj is None:
            return reason
        _add_object(state, key, oid, obj, d)
    for a in attrs:
        if a not in obj.attributes:
            obj.attributes.append(a)
    return ""


def _relationship_item(key: str, d: dict[str, Any], state: _State) -> str:
    predicate = clean_text(d.get("predicate"))
    if predicate is None:
        return "missing or empty 'predicate'"
    rid = as_id(d.get("relationship_id", d.get("id")))
    seen_rids = state.rel_ids.setdefault(key, set())
    if rid is not None and rid in seen_rids:
        return f"duplicate relationship id {rid}"
    rec = state.result.records[key]
    ends: list[tuple[str, str, ObjectAnn | None, dict[str, Any]]] = []  # (vg id, full id, new obj, dict)
    for role in ("subject", "object"):
        end = d.get(role)
        if not isinstance(end, dict):
            return f"missing or invalid '{role}'"
        oid = as_id(end.get("object_id", end.get("id")))
        if oid is None:
            return f"{role}: missing or invalid 'object_id'"
        existing = state.find(key, oid)
        if existing is not None:
            ends.append((oid, existing.object_id, None, end))
            continue
        _, obj, reason = _parse_object(end, rec, state)  # an end objects.json does not list
        if obj is None:
            return f"{role}: {reason}"
        ends.append((oid, obj.object_id, obj, end))
    for oid, _, new_obj, end in ends:  # add new ends only once the whole relation is valid
        if new_obj is not None and oid not in state.objs[key]:
            _add_object(state, key, oid, new_obj, end)
    if rid is not None:
        seen_rids.add(rid)
    # VG predicates come in every case ("ON", "On", "on"); one spelling keeps task text consistent.
    rec.relations.append(Relation(ends[0][1], predicate.lower(), ends[1][1], SOURCE))
    return ""


def _region_item(key: str, d: dict[str, Any], state: _State) -> str:
    rid = as_id(d.get("region_id", d.get("id")))
    if rid is None:
        return "missing or invalid 'region_id'"
    phrase = clean_text(d.get("phrase"))
    if phrase is None:
        return "missing or empty 'phrase'"
    rec = state.result.records[key]
    box, reason = box_from_xywh(
        d.get("x"), d.get("y"), d.get("width"), d.get("height"), rec.width, rec.height
    )
    if box is None:
        return reason
    seen = state.region_ids.setdefault(key, set())
    if rid in seen:
        return f"duplicate region id {rid}"
    seen.add(rid)
    rec.regions.append(Region(f"vg:{rid}", phrase, box, SOURCE))
    return ""
