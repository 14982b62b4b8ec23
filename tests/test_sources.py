"""Readers for COCO / Visual Genome / VQAv2 in their real formats, path safety and JSON errors.

Every test writes tiny files in the exact public layouts (with the extra fields the real files
carry, which readers must ignore) and checks records, ledger entries and `seen == kept + rejected`.
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

import pytest

from vitune.data.ledger import Ledger
from vitune.sources import (
    UnsafePathError,
    check_rel_path,
    load_json,
    read_coco,
    read_visual_genome,
    read_vqav2,
    resolve_image,
)
from vitune.sources.stats import SourceResult


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def reasons(ledger: Ledger) -> list[tuple[str, str, str]]:
    return [(Path(r.file).name, r.locator, r.reason) for r in ledger.items]


def assert_reconciles(res: SourceResult, ledger: Ledger) -> None:
    """seen == kept + rejected for every section, and each file's rejections are in the ledger."""
    per_file: dict[str, int] = {}
    for s in res.stats:
        assert s.seen == s.kept + s.rejected, s
        assert s.reconciles
        per_file[s.file] = per_file.get(s.file, 0) + s.rejected
    for f, n in per_file.items():
        assert n == sum(1 for r in ledger.items if r.file == f), f


# ---------------------------------------------------------------- COCO


def coco_image(iid: int, w: int = 640, h: int = 480, split: str = "train2014") -> dict:
    return {
        "license": 5,
        "file_name": f"COCO_{split}_{iid:012d}.jpg",
        "coco_url": f"http://images.cocodataset.org/{split}/COCO_{split}_{iid:012d}.jpg",
        "height": h,
        "width": w,
        "date_captured": "2013-11-14 16:28:13",
        "flickr_url": "http://farm4.staticflickr.com/3153/2970773875_164f0c0b83_z.jpg",
        "id": iid,
    }


def coco_ann(aid: int, iid: int, cat: int, bbox: Any, crowd: int = 0) -> dict:
    return {
        "segmentation": [[10.0, 10.0, 20.0, 10.0, 20.0, 20.0]],
        "area": 100.0,
        "iscrowd": crowd,
        "image_id": iid,
        "bbox": bbox,
        "category_id": cat,
        "id": aid,
    }


INFO = {"description": "COCO 2014 Dataset", "url": "http://cocodataset.org", "version": "1.0", "year": 2014}
LICENSES = [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 5, "name": "Attribution"}]
CATS = [
    {"supercategory": "animal", "id": 18, "name": "dog"},
    {"supercategory": "person", "id": 1, "name": "person"},
]


def coco_files(tmp_path: Path, images: list[dict], anns: list[dict], caps: list[dict]) -> tuple[Path, Path]:
    ann_dir = tmp_path / "coco" / "annotations"
    inst = write(ann_dir / "instances_train2014.json",
                 {"info": INFO, "licenses": LICENSES, "images": images, "annotations": anns, "categories": CATS})  # fmt: skip
    cap = write(ann_dir / "captions_train2014.json",
                {"info": INFO, "licenses": LICENSES, "images": images, "annotations": caps})  # fmt: skip
    return inst, cap


def test_coco_reads_instances_and_captions(tmp_path: Path) -> None:
    images = [coco_image(57870), coco_image(9, 500, 375)]
    anns = [
        coco_ann(1768, 57870, 18, [100.5, 50.0, 200.0, 150.25]),
        coco_ann(1769, 9, 1, [0, 0, 500, 375], crowd=1),
        coco_ann(1770, 57870, 1, [10, 20, 30, 40]),
    ]
    caps = [
        {"image_id": 57870, "id": 1, "caption": "A dog  on a couch.\n"},
        {"image_id": 9, "id": 2, "caption": "People at a market."},
        {"image_id": 57870, "id": 3, "caption": "A brown dog lies down."},
    ]
    inst, cap = coco_files(tmp_path, images, anns, caps)
    ledger = Ledger()
    res = read_coco(inst, cap, image_subdir="train2014", ledger=ledger, split="train")
    assert len(ledger) == 0
    assert set(res.records) == {"57870", "9"}
    r = res.records["57870"]
    assert r.file_name == "train2014/COCO_train2014_000000057870.jpg"
    assert (r.width, r.height, r.split, r.sources) == (640, 480, "train", ["coco"])
    assert r.captions == ["A dog on a couch.", "A brown dog lies down."]  # file order, whitespace tidied
    assert [(o.object_id, o.name, o.box.to_list(), o.source) for o in r.objects] == [
        ("coco:1768", "dog", [100.5, 50.0, 200.0, 150.25], "coco"),
        ("coco:1770", "person", [10, 20, 30, 40], "coco"),
    ]
    assert res.records["9"].meta["coco_crowd"] == ["coco:1769"]
    assert res.stat("instances_train2014.json", "annotations").as_dict() == {
        "seen": 3,
        "kept": 3,
        "rejected": 0,
    }
    assert res.stat("captions_train2014.json", "annotations").as_dict() == {
        "seen": 3,
        "kept": 3,
        "rejected": 0,
    }
    assert_reconciles(res, ledger)
    assert gc.isenabled()  # readers pause the cyclic GC for speed and must restore it


def test_coco_either_file_may_be_absent(tmp_path: Path) -> None:
    inst, cap = coco_files(tmp_path, [coco_image(1)], [coco_ann(5, 1, 18, [1, 1, 5, 5])],
                           [{"image_id": 1, "id": 7, "caption": "x"}])  # fmt: skip
    only_inst = read_coco(inst)
    assert only_inst.records["1"].objects and not only_inst.records["1"].captions
    only_cap = read_coco(captions=cap)
    assert only_cap.records["1"].captions == ["x"] and not only_cap.records["1"].objects
    assert only_cap.records["1"].file_name == "COCO_train2014_000000000001.jpg"  # no subdir
    with pytest.raises(ValueError, match="instances file"):
        read_coco()


def test_coco_bad_records_go_to_ledger(tmp_path: Path) -> None:
    images = [
        coco_image(1),
        coco_image(2) | {"file_name": "../../etc/shadow"},
        coco_image(3) | {"file_name": "/etc/passwd"},
        coco_image(1),  # duplicate id
        {k: v for k, v in coco_image(4).items() if k != "width"},
        "not an image",
    ]
    anns = [
        coco_ann(10, 1, 18, [10, 10, 20, 20]),  # ok
        coco_ann(11, 999, 18, [10, 10, 20, 20]),  # unknown image
        coco_ann(12, 1, 18, [600, 400, 100, 100]),  # outside 640x480
        coco_ann(13, 1, 18, [10, 10, 0, 20]),  # zero width
        coco_ann(14, 1, 18, ["10", 10, 20, 20]),  # non-numeric
        {k: v for k, v in coco_ann(15, 1, 18, [1, 1, 2, 2]).items() if k != "bbox"},  # missing bbox
        coco_ann(10, 1, 18, [10, 10, 20, 20]),  # duplicate annotation id
        coco_ann(16, 1, 77, [10, 10, 20, 20]),  # unknown category
        coco_ann(17, 1, 18, [True, 10, 20, 20]),  # bool is not a coordinate
        coco_ann(18, 2, 18, [10, 10, 20, 20]),  # image 2 was rejected (unsafe path)
    ]
    caps = [{"image_id": 1, "id": 1, "caption": "   "}, {"image_id": 1, "id": 2, "caption": "fine"}]
    inst, cap = coco_files(tmp_path, images, anns, caps)
    ledger = Ledger()
    res = read_coco(inst, cap, ledger=ledger)
    assert list(res.records) == ["1"]
    assert [o.object_id for o in res.records["1"].objects] == ["coco:10"]
    got = [(f, loc, why) for f, loc, why in reasons(ledger) if f == "instances_train2014.json"]
    expect = {
        "images[1]": "escapes the image root",
        "images[2]": "absolute image path",
        "images[3]": "duplicate image id 1",
        "images[4]": "missing or invalid width/height",
        "images[5]": "not an object",
        "annotations[1]": "unknown image id 999",
        "annotations[2]": "outside the 640x480 image",
        "annotations[3]": "non-positive box size",
        "annotations[4]": "non-numeric box",
        "annotations[5]": "bbox must be a list",
        "annotations[6]": "duplicate annotation id 10",
        "annotations[7]": "unknown category id 77",
        "annotations[8]": "non-numeric box",
        "annotations[9]": "unknown image id 2",
    }
    assert {loc for _, loc, _ in got} == set(expect)
    for _, loc, why in got:
        assert expect[loc] in why, (loc, why)
    assert ("captions_train2014.json", "annotations[0]", "missing or empty 'caption'") in reasons(ledger)
    assert all(r.stage == "sources.coco" for r in ledger.items)
    assert res.stat("instances_train2014.json", "annotations").as_dict() == {
        "seen": 10,
        "kept": 1,
        "rejected": 9,
    }
    assert res.stat("instances_train2014.json", "images").as_dict() == {"seen": 6, "kept": 1, "rejected": 5}
    assert_reconciles(res, ledger)


def test_coco_unsafe_subdir_is_a_config_error(tmp_path: Path) -> None:
    inst, _ = coco_files(tmp_path, [coco_image(1)], [], [])
    with pytest.raises(ValueError, match="image_subdir"):
        read_coco(inst, image_subdir="../elsewhere")


# ---------------------------------------------------------------- JSON errors


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "instances_val2014.json"
    bad.write_text('{\n  "images": [\n    {"id": 1,}\n  ]\n}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"instances_val2014\.json: invalid JSON at line 3 column \d+"):
        read_coco(bad)
    with pytest.raises(FileNotFoundError, match=r"nope\.json: file not found"):
        load_json(tmp_path / "nope.json")
    lst = write(tmp_path / "captions.json", [1, 2])
    with pytest.raises(ValueError, match=r"captions\.json: expected a COCO object .* got a list"):
        read_coco(captions=lst)
    no_ann = write(tmp_path / "c2.json", {"images": []})
    with pytest.raises(ValueError, match=r"c2\.json: .*'annotations'"):
        read_coco(captions=no_ann)
    (tmp_path / "latin1.json").write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(ValueError, match=r"latin1\.json: not UTF-8"):
        load_json(tmp_path / "latin1.json")
    vg = tmp_path / "vg"
    write(vg / "objects.json", {"image_id": 1})
    with pytest.raises(ValueError, match=r"objects\.json: expected a JSON list"):
        read_visual_genome(vg)


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("rel", "ok"),
    [
        ("train2014/a.jpg", True),
        ("a..b.jpg", True),
        ("./a.jpg", True),
        ("../x.jpg", False),
        ("a/../../x.jpg", False),
        ("a\\..\\..\\x.jpg", False),
        ("/etc/passwd", False),
        ("C:\\Windows\\x.jpg", False),
        ("", False),
        ("a\x00.jpg", False),
        (None, False),
    ],
)
def test_check_rel_path(rel: Any, ok: bool) -> None:
    assert (check_rel_path(rel) is None) == ok


def test_resolve_image_refuses_escaping_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "train").mkdir(parents=True)
    (root / "train" / "a.jpg").write_bytes(b"x")
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    os.symlink(outside, root / "train" / "evil.jpg")
    os.symlink(tmp_path, root / "up")
    os.symlink(root / "train" / "a.jpg", root / "train" / "alias.jpg")  # inside: fine
    assert resolve_image(root, "train/a.jpg") == (root / "train" / "a.jpg").resolve()
    assert resolve_image(root, "train/alias.jpg") == (root / "train" / "a.jpg").resolve()
    assert resolve_image(root, "train/missing.jpg").name == "missing.jpg"  # existence is the caller's call
    for rel in ("train/evil.jpg", "up/secret.txt", "../secret.txt", str(outside)):
        with pytest.raises(UnsafePathError):
            resolve_image(root, rel)


# ---------------------------------------------------------------- Visual Genome


def vg_obj(oid: int, name: str, x: int, y: int, w: int, h: int, *, key: str = "names", merged=()) -> dict:
    d: dict[str, Any] = {"synsets": [f"{name}.n.01"], "h": h, "object_id": oid, "merged_object_ids": list(merged),
                         "w": w, "y": y, "x": x}  # fmt: skip
    d[key] = [name] if key == "names" else name
    return d


def vg_files(tmp_path: Path, *, image_data: bool = True, extra: dict[str, list] | None = None) -> Path:
    vg = tmp_path / "vg"
    if image_data:
        write(vg / "image_data.json", [
            {"width": 800, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg", "height": 600,
             "image_id": 1, "coco_id": None, "flickr_id": None},
            {"width": 640, "url": "https://cs.stanford.edu/people/rak248/VG_100K/51.jpg", "height": 480,
             "image_id": 51, "coco_id": 57870, "flickr_id": 2970773875},
        ])  # fmt: skip
    url = "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg"
    more = extra or {}
    write(vg / "objects.json", [
        {"image_id": 1, "image_url": url, "objects": [
            vg_obj(1058549, "tree", 0, 0, 799, 557),
            vg_obj(1058534, "man", 100, 200, 50, 150, merged=[5000]),
        ]},
        {"image_id": 51, "objects": [vg_obj(200, "dog", 100, 50, 200, 150)]},
        *more.get("objects", []),
    ])  # fmt: skip
    write(vg / "attributes.json", [
        {"image_id": 1, "attributes": [
            vg_obj(1058534, "man", 100, 200, 50, 150) | {"attributes": ["tall", "smiling ", "tall"]},
            vg_obj(1058549, "tree", 0, 0, 799, 557),  # no "attributes" key, as often in VG
            vg_obj(777, "sky", 0, 0, 800, 100) | {"attributes": ["blue"]},  # not in objects.json
        ]},
        *more.get("attributes", []),
    ])  # fmt: skip
    write(vg / "relationships.json", [
        {"image_id": 1, "relationships": [
            {"relationship_id": 15927, "predicate": "ON", "synsets": ["along.r.01"],
             "subject": vg_obj(5000, "man", 100, 200, 50, 150, key="name"),  # merged id of 1058534
             "object": vg_obj(888, "street", 0, 400, 800, 200, key="name")},  # new object
            {"relationship_id": 15928, "predicate": "near", "subject": vg_obj(1058534, "man", 100, 200, 50, 150),
             "object": vg_obj(1058549, "tree", 0, 0, 799, 557)},
        ]},
        *more.get("relationships", []),
    ])  # fmt: skip
    write(vg / "region_descriptions.json", [
        {"id": 1, "regions": [
            {"region_id": 1382, "width": 82, "height": 139, "image_id": 1, "phrase": "the clock is green",
             "y": 57, "x": 421},
        ]},
        {"id": 51, "regions": [{"region_id": 9, "width": 10, "height": 10, "image_id": 51, "phrase": "a dog",
                                "y": 5, "x": 5}]},
        *more.get("region_descriptions", []),
    ])  # fmt: skip
    return vg


def test_vg_objects_attributes_relations_regions(tmp_path: Path) -> None:
    vg = vg_files(tmp_path)
    ledger = Ledger()
    res = read_visual_genome(vg, vg_image_subdir="VG_100K", ledger=ledger)
    assert len(ledger) == 0, ledger.summary()
    assert set(res.records) == {"vg:1", "57870"}  # coco_id keys the image when known
    r = res.records["vg:1"]
    assert (r.file_name, r.width, r.height, r.sources) == ("VG_100K/1.jpg", 800, 600, ["vg"])
    assert res.records["57870"].file_name == "VG_100K/51.jpg"
    assert res.records["57870"].meta == {"vg_image_id": 51, "coco_id": 57870}
    objs = r.object_by_id()
    assert list(objs) == ["vg:1058549", "vg:1058534", "vg:777", "vg:888"]
    assert objs["vg:1058534"].attributes == ["tall", "smiling"]
    assert objs["vg:1058549"].attributes == []
    assert objs["vg:777"].name == "sky" and objs["vg:777"].attributes == ["blue"]
    assert objs["vg:888"].name == "street" and objs["vg:888"].box.to_list() == [0, 400, 800, 200]
    assert all(o.source == "vg" for o in r.objects)
    # the merged id 5000 resolves to the kept object; predicates are lower-cased
    assert [(x.subject_id, x.predicate, x.object_id) for x in r.relations] == [
        ("vg:1058534", "on", "vg:888"),
        ("vg:1058534", "near", "vg:1058549"),
    ]
    assert [(g.region_id, g.phrase, g.box.to_list()) for g in r.regions] == [
        ("vg:1382", "the clock is green", [421, 57, 82, 139])
    ]
    assert res.stat("objects.json", "objects").as_dict() == {"seen": 3, "kept": 3, "rejected": 0}
    assert res.stat("relationships.json", "relationships").as_dict() == {"seen": 2, "kept": 2, "rejected": 0}
    assert_reconciles(res, ledger)


def test_vg_bad_records(tmp_path: Path) -> None:
    extra = {
        "objects": [
            {"image_id": 2, "objects": [
                vg_obj(10, "cat", 1, 1, 5, 5),
                vg_obj(1, "cat", 790, 590, 50, 50),  # outside 800x600
                {"object_id": 2, "x": 1, "y": 1, "w": 5, "h": 5, "names": []},  # no name
                vg_obj(10, "tree", 0, 0, 10, 10),  # duplicate object id
                vg_obj(3, "cup", 1, 1, -5, 5),  # negative size
                {"x": 1, "y": 1, "w": 5, "h": 5, "names": ["x"]},  # no object_id
            ]},
            {"image_id": 424242, "objects": []},  # unknown image
            {"objects": []},  # no image id
            {"image_id": 51, "objects": "oops"},
        ],
        "attributes": [{"image_id": 51, "attributes": [vg_obj(200, "dog", 100, 50, 200, 150) | {"attributes": "brown"}]}],
        "relationships": [
            {"image_id": 51, "relationships": [
                {"relationship_id": 1, "subject": vg_obj(200, "dog", 100, 50, 200, 150),
                 "object": vg_obj(201, "ball", 1, 1, 5, 5)},  # no predicate
                {"relationship_id": 2, "predicate": "has", "subject": vg_obj(200, "dog", 100, 50, 200, 150),
                 "object": vg_obj(202, "ball", 1, 1, 5000, 5)},  # new end out of bounds
                {"relationship_id": 3, "predicate": "has", "subject": vg_obj(200, "dog", 100, 50, 200, 150)},
            ]},
        ],
        "region_descriptions": [
            {"id": 1, "regions": [{"region_id": 1382, "width": 5, "height": 5, "phrase": "dup", "y": 1, "x": 1}]},
        ],
    }  # fmt: skip
    vg = vg_files(tmp_path, extra=extra)
    image_data = json.loads((vg / "image_data.json").read_text())
    write(
        vg / "image_data.json", [*image_data, {"width": 800, "height": 600, "image_id": 2, "coco_id": None}]
    )
    # second entry for image 51 in region_descriptions is a duplicate entry; give one more bad region
    regions = json.loads((vg / "region_descriptions.json").read_text())
    regions[1]["regions"].append({"region_id": 10, "width": 3, "height": 3, "phrase": "  ", "y": 1, "x": 1})
    write(vg / "region_descriptions.json", regions)
    ledger = Ledger()
    res = read_visual_genome(vg, ledger=ledger)
    got = reasons(ledger)
    expect = [
        ("objects.json", "[2].objects[1]", "outside the 800x600 image"),
        ("objects.json", "[2].objects[2]", "object has no name"),
        ("objects.json", "[2].objects[3]", "duplicate object id 10"),
        ("objects.json", "[2].objects[4]", "non-positive box size"),
        ("objects.json", "[2].objects[5]", "missing or invalid 'object_id'"),
        ("objects.json", "[3]", "unknown image id 424242"),
        ("objects.json", "[4]", "missing or invalid 'image_id'"),
        ("objects.json", "[5]", "non-list 'objects'"),
        ("attributes.json", "[1].attributes[0]", "'attributes' is not a list"),
        ("relationships.json", "[1].relationships[0]", "missing or empty 'predicate'"),
        ("relationships.json", "[1].relationships[1]", "object: box"),
        ("relationships.json", "[1].relationships[2]", "missing or invalid 'object'"),
        ("region_descriptions.json", "[1].regions[1]", "missing or empty 'phrase'"),
        ("region_descriptions.json", "[2]", "duplicate entry for image 1"),
    ]
    assert len(got) == len(expect), got
    for (f, loc, why), (ef, eloc, ewhy) in zip(got, expect, strict=True):
        assert (f, loc) == (ef, eloc) and ewhy in why, (f, loc, why)
    assert all(r.stage == "sources.vg" for r in ledger.items)
    assert "vg:202" not in res.records["57870"].object_by_id()  # a rejected relation adds no ends
    assert res.stat("objects.json", "images").as_dict() == {"seen": 6, "kept": 3, "rejected": 3}
    assert res.stat("objects.json", "objects").as_dict() == {"seen": 9, "kept": 4, "rejected": 5}
    assert [o.object_id for o in res.records["vg:2"].objects] == ["vg:10"]
    assert_reconciles(res, ledger)


def test_vg_without_image_data_and_filter(tmp_path: Path) -> None:
    vg = vg_files(tmp_path, image_data=False)
    res = read_visual_genome(vg, vg_image_subdir="")
    assert set(res.records) == {"vg:1", "vg:51"}
    r = res.records["vg:1"]
    assert (r.file_name, r.width, r.height) == ("1.jpg", 0, 0)  # size unknown until merged
    # image_ids restricts to some keys: the rest are counted as filtered, not rejected
    vg2 = vg_files(tmp_path / "b")
    ledger = Ledger()
    res2 = read_visual_genome(vg2, ledger=ledger, image_ids={"57870"})
    assert list(res2.records) == ["57870"] and len(ledger) == 0
    st = res2.stat("objects.json", "images")
    assert (st.seen, st.kept, st.filtered) == (1, 1, 1)
    assert res2.stat("objects.json", "objects").seen == 1
    assert_reconciles(res2, ledger)


def test_vg_image_data_rejections(tmp_path: Path) -> None:
    vg = tmp_path / "vg"
    write(vg / "image_data.json", [
        {"width": 800, "height": 600, "image_id": 1, "coco_id": 5},
        {"width": 800, "height": 600, "image_id": 2, "coco_id": 5},  # duplicate coco_id
        {"width": "800", "height": 600, "image_id": 3, "coco_id": None},  # bad width
        {"width": 800, "height": 600, "image_id": 1, "coco_id": None},  # duplicate image id
    ])  # fmt: skip
    write(vg / "objects.json", [{"image_id": 2, "objects": []}])
    ledger = Ledger()
    res = read_visual_genome(vg, ledger=ledger)
    assert list(res.records) == ["5"]
    assert [(f, loc) for f, loc, _ in reasons(ledger)] == [
        ("image_data.json", "[1]"), ("image_data.json", "[2]"), ("image_data.json", "[3]"), ("objects.json", "[0]"),
    ]  # fmt: skip
    assert "was rejected in image_data.json" in ledger.items[-1].reason
    assert_reconciles(res, ledger)


# ---------------------------------------------------------------- VQAv2


def vqa_answers(words: list[str]) -> list[dict]:
    return [{"answer": w, "answer_confidence": "yes", "answer_id": i + 1} for i, w in enumerate(words)]


def vqa_files(
    tmp_path: Path, questions: list[dict], annotations: list[dict] | None
) -> tuple[Path, Path | None]:
    d = tmp_path / "vqav2"
    lic = {"url": "http://creativecommons.org/licenses/by/4.0/", "name": "Creative Commons Attribution 4.0"}
    q = write(d / "v2_OpenEnded_mscoco_train2014_questions.json",
              {"info": {"year": 2017}, "task_type": "Open-Ended", "data_type": "mscoco", "license": lic,
               "data_subtype": "train2014", "questions": questions})  # fmt: skip
    if annotations is None:
        return q, None
    a = write(d / "v2_mscoco_train2014_annotations.json",
              {"info": {"year": 2017}, "license": lic, "data_subtype": "train2014", "annotations": annotations})  # fmt: skip
    return q, a


def vqa_ann(qid: int, iid: int, answers: list[str], mc: str = "yes") -> dict:
    return {"question_type": "is the", "multiple_choice_answer": mc, "answers": vqa_answers(answers),
            "image_id": iid, "answer_type": "yes/no", "question_id": qid}  # fmt: skip


def test_vqav2_ten_answers(tmp_path: Path) -> None:
    ten = ["yes"] * 9 + ["no"]
    qs = [{"image_id": 9, "question": "Is the dog brown?", "question_id": 9000},
          {"image_id": 9, "question": "Is it sunny?", "question_id": 9001},
          {"image_id": 57870, "question": "Is there a couch?", "question_id": 57870000}]  # fmt: skip
    anns = [vqa_ann(57870000, 57870, ten), vqa_ann(9001, 9, ["no"] * 10, "no"), vqa_ann(9000, 9, ten)]
    q, a = vqa_files(tmp_path, qs, anns)
    ledger = Ledger()
    res = read_vqav2(q, a, ledger=ledger, split="train")
    assert len(ledger) == 0
    assert list(res.records) == ["9", "57870"]
    r = res.records["9"]
    assert (r.file_name, r.width, r.height, r.sources) == ("", 0, 0, ["vqav2"])
    qa = r.qas[0]
    assert (qa.question_id, qa.question, qa.answers, qa.answer_type, qa.question_type, qa.multiple_choice_answer) == (
        "9000", "Is the dog brown?", ten, "yes/no", "is the", "yes"
    )  # fmt: skip
    assert len(qa.answers) == 10 and qa.source == "vqav2"
    assert [x.question_id for x in r.qas] == ["9000", "9001"]
    assert res.stat("annotations.json", "annotations").as_dict() == {"seen": 3, "kept": 3, "rejected": 0}
    assert_reconciles(res, ledger)
    # with a file pattern VQAv2 stands alone
    res2 = read_vqav2(q, a, file_pattern="train2014/COCO_train2014_{image_id:012d}.jpg")
    assert res2.records["9"].file_name == "train2014/COCO_train2014_000000000009.jpg"


def test_vqav2_test_split_without_annotations(tmp_path: Path) -> None:
    q, _ = vqa_files(tmp_path, [{"image_id": 1, "question": "What is this?", "question_id": 1000}], None)
    res = read_vqav2(q)
    assert res.records["1"].qas[0].answers == []
    assert [s.section for s in res.stats] == ["questions"]


def test_vqav2_bad_records(tmp_path: Path) -> None:
    ten = ["yes"] * 10
    qs = [
        {"image_id": 1, "question": "Ok?", "question_id": 1},
        {"image_id": 1, "question": "Ok again?", "question_id": 1},  # duplicate question id
        {"image_id": 2, "question": "No annotation?", "question_id": 2},
        {"image_id": 3, "question": "Mismatch?", "question_id": 3},
        {"image_id": 404, "question": "Unknown image?", "question_id": 4},
        {"image_id": 1, "question": "", "question_id": 5},
        {"image_id": 1, "question_id": 6},
    ]
    anns = [
        vqa_ann(1, 1, ten),
        vqa_ann(3, 33, ten),  # image differs from its question
        vqa_ann(4, 404, ten),
        vqa_ann(99, 1, ten),  # no question
        vqa_ann(7, 1, []),  # no answers
        vqa_ann(8, 1, ten) | {"answers": [{"answer_id": 1}]},  # answer lacks text
        vqa_ann(1, 1, ten),  # duplicate
    ]
    q, a = vqa_files(tmp_path, qs, anns)
    ledger = Ledger()
    res = read_vqav2(q, a, ledger=ledger, known_images={"1", "2", "3"})
    assert [x.question_id for x in res.records["1"].qas] == ["1"]
    assert set(res.records) == {"1"}
    got = {(f.split("_")[-1], loc): why for f, loc, why in reasons(ledger)}
    assert "duplicate question id 1" in got[("questions.json", "questions[1]")]
    assert "no annotation for question 2" in got[("questions.json", "questions[2]")]
    assert "about image 3 but its annotation about 33" in got[("questions.json", "questions[3]")]
    assert "unknown image id 404" in got[("questions.json", "questions[4]")]
    assert "empty 'question'" in got[("questions.json", "questions[5]")]
    assert "empty 'question'" in got[("questions.json", "questions[6]")]
    assert "its question was rejected" in got[("annotations.json", "annotations[1]")]
    assert "unknown image id 404" in got[("annotations.json", "annotations[2]")]
    assert "unknown question 99" in got[("annotations.json", "annotations[3]")]
    assert "empty 'answers'" in got[("annotations.json", "annotations[4]")]
    assert "no 'answer' text" in got[("annotations.json", "annotations[5]")]
    assert "duplicate annotation" in got[("annotations.json", "annotations[6]")]
    assert res.stat("questions.json", "questions").as_dict() == {"seen": 7, "kept": 1, "rejected": 6}
    assert res.stat("annotations.json", "annotations").as_dict() == {"seen": 7, "kept": 1, "rejected": 6}
    assert_reconciles(res, ledger)
