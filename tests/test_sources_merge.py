"""Merging per-source records per image, and `load(SourceSpec)` over a user's file layout."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from vitune.data.ledger import Ledger
from vitune.data.records import QA, Box, ImageRecord, ObjectAnn, Region, Relation
from vitune.sources import SourceSpec, load, merge_records
from vitune.sources.merge import image_sort_key


def coco_rec(iid: str, w: int = 640, h: int = 480) -> ImageRecord:
    return ImageRecord(iid, f"train2014/{iid}.jpg", w, h, captions=[f"caption {iid}"], sources=["coco"],
                       objects=[ObjectAnn(f"coco:{iid}1", "dog", Box(10, 10, 100, 100), [], "coco")],
                       meta={"coco_id": int(iid)})  # fmt: skip


def vg_rec(key: str, w: int = 640, h: int = 480, box: Box | None = None) -> ImageRecord:
    b = box or Box(20, 20, 200, 100)
    return ImageRecord(
        key, f"vg/{key}.jpg", w, h, sources=["vg"],
        objects=[ObjectAnn("vg:1", "dog", b, ["brown"], "vg"), ObjectAnn("vg:2", "couch", Box(0, 0, 40, 40), [], "vg")],
        relations=[Relation("vg:1", "on", "vg:2", "vg")],
        regions=[Region("vg:9", "a brown dog", b, "vg")],
        meta={"vg_image_id": 51},
    )  # fmt: skip


def vqa_rec(iid: str) -> ImageRecord:
    return ImageRecord(iid, "", 0, 0, sources=["vqav2"],
                       qas=[QA(f"{iid}000", "Is there a dog?", ["yes"] * 10, "yes/no", "is there a", "yes", "vqav2")])  # fmt: skip


def test_merge_unions_sources_by_image_id() -> None:
    coco = {"10": coco_rec("10"), "2": coco_rec("2")}
    vg = {"10": vg_rec("10"), "vg:7": vg_rec("vg:7", 800, 600)}
    vqa = {"2": vqa_rec("2"), "10": vqa_rec("10")}
    before = copy.deepcopy([coco, vg, vqa])
    ledger = Ledger()
    out = merge_records([coco, vg, vqa], ledger, split="train")
    assert len(ledger) == 0
    assert [r.image_id for r in out] == ["2", "10", "vg:7"]  # numeric order, then other ids
    r = out[1]
    assert r.file_name == "train2014/10.jpg"  # the first source's file name wins
    assert r.sources == ["coco", "vg", "vqav2"]
    assert [o.object_id for o in r.objects] == ["coco:101", "vg:1", "vg:2"]
    assert r.relations[0].predicate == "on" and r.regions[0].phrase == "a brown dog"
    assert r.captions == ["caption 10"] and len(r.qas[0].answers) == 10
    assert r.meta == {"coco_id": 10, "vg_image_id": 51}
    assert all(x.split == "train" for x in out)
    assert [coco, vg, vqa] == before  # inputs untouched
    # deterministic whatever the dict order of the inputs
    again = merge_records([dict(reversed(coco.items())), dict(reversed(vg.items())), vqa], split="train")
    assert [x.to_dict() for x in again] == [x.to_dict() for x in out]


def test_merge_size_conflict_and_rescale() -> None:
    ledger = Ledger()
    # 800x600 is 640x480 scaled: boxes are rescaled onto the COCO size
    out = merge_records([{"5": coco_rec("5")}, {"5": vg_rec("5", 800, 600, Box(100, 100, 200, 100))}], ledger)
    assert len(ledger) == 0
    vg_dog = out[0].object_by_id()["vg:1"]
    assert vg_dog.box.to_list() == [80.0, 80.0, 160.0, 80.0]
    assert out[0].regions[0].box.to_list() == [80.0, 80.0, 160.0, 80.0]
    assert out[0].meta["rescaled"] == {"vg": [800, 600]}
    # a different aspect ratio is a real conflict: VG's annotations are dropped with a ledger entry
    out = merge_records([{"5": coco_rec("5")}, {"5": vg_rec("5", 500, 500)}], ledger)
    assert out[0].sources == ["coco"] and [o.source for o in out[0].objects] == ["coco"]
    assert len(ledger) == 1
    rej = ledger.items[0]
    assert (rej.stage, rej.locator) == ("sources.merge", "image_id=5")
    assert "conflicting image size" in rej.reason and "640x480" in rej.reason and "500x500" in rej.reason
    # with rescaling off, even the same aspect ratio conflicts
    ledger = Ledger()
    merge_records([{"5": coco_rec("5")}, {"5": vg_rec("5", 800, 600)}], ledger, rescale=False)
    assert len(ledger) == 1


def test_merge_unknown_sizes_and_missing_files() -> None:
    ledger = Ledger()
    # VG read without image_data has no size: its boxes are checked against COCO's on merge
    vg = vg_rec("5", 0, 0, Box(600, 400, 100, 100))  # outside 640x480
    out = merge_records([{"5": coco_rec("5")}, {"5": vg}, {"99": vqa_rec("99")}], ledger)
    assert [r.image_id for r in out] == ["5"]  # 99: only VQAv2 knows it, no image file
    r = out[0]
    assert [o.object_id for o in r.objects] == ["coco:51", "vg:2"]
    assert r.relations == [] and r.regions == []
    why = [x.reason for x in ledger.items]
    assert any("object vg:1" in w and "outside" in w for w in why)
    assert any("region vg:9" in w for w in why)
    assert any("relation vg:1 on vg:2 lost an end" in w for w in why)
    assert any(
        x.locator == "image_id=99" and "no source gives an image file" in x.reason for x in ledger.items
    )
    # the first source lacks the size: it is adopted from a later one
    out = merge_records([{"5": vqa_rec("5")}, {"5": coco_rec("5")}])
    assert (out[0].width, out[0].height, out[0].file_name) == (640, 480, "train2014/5.jpg")
    assert out[0].sources == ["vqav2", "coco"]
    # without require_file, records lacking a file are kept
    assert [r.image_id for r in merge_records([{"99": vqa_rec("99")}], require_file=False)] == ["99"]


def test_image_sort_key() -> None:
    ids = ["vg:10", "100", "9", "vg:2", "abc"]
    assert sorted(ids, key=image_sort_key) == ["9", "100", "abc", "vg:10", "vg:2"]


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _spec_files(tmp_path: Path) -> SourceSpec:
    images = [
        {"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100, "license": 1} for i in (1, 2, 3)
    ]
    inst = _write(tmp_path / "ann" / "instances_val2014.json", {
        "images": images, "categories": [{"id": 1, "name": "dog", "supercategory": "animal"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0}],
    })  # fmt: skip
    _write(tmp_path / "vg" / "image_data.json", [
        {"image_id": 11, "width": 200, "height": 200, "coco_id": 1},
        {"image_id": 12, "width": 50, "height": 50, "coco_id": None},
    ])  # fmt: skip
    _write(tmp_path / "vg" / "objects.json", [
        {"image_id": 11, "objects": [{"object_id": 5, "names": ["dog"], "x": 2, "y": 2, "w": 20, "h": 20}]},
        {"image_id": 12, "objects": [{"object_id": 6, "names": ["cat"], "x": 2, "y": 2, "w": 20, "h": 20}]},
    ])  # fmt: skip
    q = _write(tmp_path / "vqa" / "q.json", {"questions": [
        {"image_id": 2, "question": "Is it a dog?", "question_id": 20}, {"image_id": 77, "question": "?", "question_id": 770},
    ]})  # fmt: skip
    root = tmp_path / "images"
    (root / "val2014").mkdir(parents=True)
    (root / "vg").mkdir()
    from PIL import Image

    for name in ("val2014/1.jpg", "val2014/2.jpg", "vg/12.jpg"):  # real JPEGs: check_images decodes
        Image.new("RGB", (40, 30), "red").save(root / name)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"secret")
    os.symlink(outside, root / "val2014" / "3.jpg")  # an image that escapes the root via a symlink
    return SourceSpec(image_root=root, split="val", coco_instances=inst, coco_image_subdir="val2014",
                      vg_dir=tmp_path / "vg", vqa_questions=q)  # fmt: skip


def test_load_spec_merges_and_refuses_escaping_symlinks(tmp_path: Path) -> None:
    spec = _spec_files(tmp_path)
    ledger, stats = Ledger(), []
    out = load(spec, ledger, stats=stats)
    assert [r.image_id for r in out] == ["1", "2", "vg:12"]
    r1 = out[0]
    assert r1.sources == ["coco", "vg"] and r1.meta["rescaled"] == {"vg": [200, 200]}
    assert r1.object_by_id()["vg:5"].box.to_list() == [1.0, 1.0, 10.0, 10.0]
    assert [qa.question_id for qa in out[1].qas] == ["20"] and all(r.split == "val" for r in out)
    by_loc = {x.locator: x for x in ledger.items}
    assert (
        "outside the image root" in by_loc["image_id=3"].reason
        and by_loc["image_id=3"].stage == "sources.load"
    )
    assert "no source gives an image file" in by_loc["image_id=77"].reason
    assert all(s.seen == s.kept + s.rejected for s in stats) and len(stats) == 7
    # restrict_to_coco keeps VG/VQAv2 only for COCO images; check_images drops missing files
    ledger = Ledger()
    spec2 = spec.model_copy(update={"restrict_to_coco": True, "check_images": True})
    (spec.image_root / "val2014" / "2.jpg").unlink()
    out = load(spec2, ledger)
    assert [r.image_id for r in out] == ["1"]
    assert any("image file missing" in x.reason for x in ledger.items)
    assert any(x.stage == "sources.vqav2" and "unknown image id 77" in x.reason for x in ledger.items)
