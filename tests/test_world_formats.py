"""The world's further formats: GQA, TextVQA + Rosetta OCR, RefCOCO refs, ScienceQA, class folders.

Each file is checked against its public format, read back through the `vitune.sources` reader
(with no rejection) and compared with the drawn scene (`scene_of`), independently of the readers.
The files the world wrote before these formats must not depend on them at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tasks_helpers import WORLD_SEED, make_world, scene_of
from vitune.data.ledger import Ledger
from vitune.sources import read_gqa, read_imagefolder, read_refcoco, read_scienceqa, read_textvqa
from vitune.sources.merge import load_world
from vitune.world import SPLITS, WorldLayout, generate_world
from vitune.world.generate import coco_image_id
from vitune.world.refs import expressions
from vitune.world.scienceqa import CORNERS


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("formats_world"))


def _load(p: Path):
    return json.loads(p.read_text())


def _hashes(root: Path, names: list[str]) -> dict[str, str]:
    return {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in names}


def test_earlier_files_do_not_depend_on_the_extra_formats(tmp_path, monkeypatch):
    """Generate once normally and once with the extra formats switched off: COCO, VG, VQAv2, the
    images and world.json are byte-identical, so the extra formats draw on no shared random stream."""
    import vitune.world.generate as gen

    generate_world(tmp_path / "a", 24, 7, workers=1)
    monkeypatch.setattr(gen, "extra_record", lambda *a, **k: {})
    monkeypatch.setattr(gen, "write_extras", lambda *a, **k: None)
    generate_world(tmp_path / "b", 24, 7, workers=1)
    old = sorted(str(p.relative_to(tmp_path / "b")) for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert any(n.startswith("coco/") for n in old) and any(n.startswith("images/train/") for n in old)
    assert _hashes(tmp_path / "a", old) == _hashes(tmp_path / "b", old)
    new = {str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*") if p.is_file()} - set(old)
    vf = {p.relative_to(tmp_path / "a").parts[0] for p in WorldLayout(tmp_path / "a").vf_files("train")}
    assert {n.split("/")[0] for n in new} == {"gqa", "textvqa", "refcoco", "scienceqa", "images", *vf}


def test_regenerating_in_place_leaves_no_stale_crops(tmp_path):
    """A smaller world generated into the folder of a bigger one: the class folders are the labels,
    so they must hold exactly this generation's crops."""
    generate_world(tmp_path, 30, 2, workers=1)
    generate_world(tmp_path, 10, 2, workers=1)
    crops = [p for p in (tmp_path / "images" / "classify").rglob("*.jpg")]
    problems = json.loads(WorldLayout(tmp_path).scienceqa_problems.read_text())
    assert len(crops) == 10
    assert len(list((tmp_path / "images" / "scienceqa").rglob("*.jpg"))) == len(problems)


def test_gqa_questions_format_and_truth(world):
    root, _ = world
    lay = WorldLayout(root)
    vg_to_coco = {im["image_id"]: im["coco_id"] for im in _load(lay.vg("image_data"))}
    n = 0
    for split in SPLITS:
        data = _load(lay.gqa_questions(split))
        ledger = Ledger()
        res = read_gqa(lay.gqa_questions(split), ledger=ledger, split=split)
        assert len(ledger) == 0 and sum(len(r.qas) for r in res.records.values()) == len(data)
        for qid, q in data.items():
            assert qid.isdigit() and q["isBalanced"] is True and q["equivalent"] == [qid]
            assert {
                "question",
                "answer",
                "fullAnswer",
                "imageId",
                "types",
                "semantic",
                "semanticStr",
            } <= q.keys()
            assert q["types"]["structural"] in ("query", "verify", "choose", "logical", "compare")
            scene = scene_of(vg_to_coco[int(q["imageId"])])
            _check_gqa_truth(q, scene)
            n += 1
    assert n > 60


def _check_gqa_truth(q: dict, scene) -> None:
    objs = {o.shape: o for o in scene.objects}
    kind, question, answer = q["types"]["detailed"], q["question"], q["answer"]
    if kind == "queryAttr":
        shape = question.removeprefix("What color is the ").rstrip("?")
        assert answer == objs[shape].color
    elif kind == "verifyAttr":
        shape, color = question.removeprefix("Is the ").rstrip("?").split(" ")
        assert answer == ("yes" if objs[shape].color == color else "no")
    elif kind == "chooseAttr":
        shape = question.removeprefix("Is the ").split(" ")[0]
        assert answer == objs[shape].color and answer in question
    elif kind == "andObj":
        a, b = question.removeprefix("Are there both ").removesuffix(" in the picture?").split(" and ")
        present = {o.shape + "s" for o in scene.objects}
        assert answer == ("yes" if a in present and b in present else "no")
    elif kind == "sameColor":
        a, b = question.removeprefix("Do the ").removesuffix(" have the same color?").split(" and the ")
        assert answer == ("yes" if objs[a].color == objs[b].color else "no")
    elif kind == "relS":
        assert answer in {o.shape for o in scene.objects}
    else:
        assert kind == "chooseRel" and answer in ("left", "right")


def test_textvqa_and_ocr_match_the_drawn_sign(world):
    root, _ = world
    lay = WorldLayout(root)
    n = 0
    for split in SPLITS:
        qs, ocr = _load(lay.textvqa_questions(split)), _load(lay.textvqa_ocr(split))
        assert qs["dataset_name"] == "textvqa" and qs["dataset_version"] == "0.5.1"
        ledger = Ledger()
        res = read_textvqa(
            lay.textvqa_questions(split),
            lay.textvqa_ocr(split),
            ledger=ledger,
            split=split,
            image_subdir=split,
        )
        assert len(ledger) == 0 and res.reconciles
        for q in qs["data"]:
            assert len(q["answers"]) == 10 and q["set_name"] == split
            iid = int(q["image_id"].split("_")[1])
            (sign,) = [o for o in scene_of(iid).objects if o.text]
            rec = res.records[f"openimages:{q['image_id']}"]
            assert rec.ocr_tokens == [sign.text]
            assert (root / "images" / rec.file_name).is_file() and rec.file_name.startswith(f"{split}/")
            truth = {
                "what does the sign say?": sign.text.lower(),
                "how many characters are written on the sign?": str(len(sign.text)),
                "what is the first character on the sign?": sign.text[0].lower(),
            }.get(q["question"], sign.text.lower())
            assert {a.lower() for a in q["answers"]} == {truth}
            n += 1
        for entry in ocr["data"]:
            (info,) = entry["ocr_info"]
            box = info["bounding_box"]
            assert 0 <= box["top_left_x"] < box["top_left_x"] + box["width"] <= 1
            assert {"rotation", "roll", "pitch", "yaw"} <= box.keys()
    assert n > 10


def test_refcoco_refs_single_out_their_object(world):
    root, _ = world
    lay = WorldLayout(root)
    refs = _load(lay.refcoco_refs)
    assert len({r["ref_id"] for r in refs}) == len(refs)
    for split in SPLITS:
        ledger = Ledger()
        res = read_refcoco(
            lay.refcoco_refs, lay.coco_instances(split), split=split, ledger=ledger, image_subdir=split
        )
        assert len(ledger) == 0
        kept = sum(len(r.regions) for r in res.records.values())
        assert kept == sum(len(r["sentences"]) for r in refs if r["split"] == split)
    anns = {a["id"]: a for s in SPLITS for a in _load(lay.coco_instances(s))["annotations"]}
    for r in refs:
        ann = anns[r["ann_id"]]
        assert ann["image_id"] == r["image_id"] and ann["category_id"] == r["category_id"]
        scene = scene_of(r["image_id"])
        # The object with this COCO box is the one the expressions name, and they are unique to it.
        k = min(range(len(scene.objects)), key=lambda i: abs(scene.objects[i].box[0] - ann["bbox"][0]))
        assert set(s["sent"] for s in r["sentences"]) <= set(expressions(scene, k))
        for s in r["sentences"]:
            assert s["tokens"] == s["sent"].split() and s["raw"].lower() == s["sent"]


def test_scienceqa_problems_are_answerable_from_the_scene(world):
    root, _ = world
    lay = WorldLayout(root)
    problems, splits = _load(lay.scienceqa_problems), _load(lay.scienceqa_pid_splits)
    assert splits["trainval"] == splits["train"] + splits["val"]
    assert sorted(p for s in SPLITS for p in splits[s]) == sorted(problems)
    for split in SPLITS:
        ledger = Ledger()
        res = read_scienceqa(
            lay.scienceqa_problems,
            lay.scienceqa_pid_splits,
            split=split,
            ledger=ledger,
            image_subdir="scienceqa",
        )
        assert len(ledger) == 0 and len(res.records) == len(splits[split])
    for pid, p in problems.items():
        assert {
            "question",
            "choices",
            "answer",
            "hint",
            "image",
            "subject",
            "lecture",
            "solution",
            "split",
        } <= p.keys()
        img = root / "images" / "scienceqa" / p["split"] / pid / p["image"]
        # The problem image is the world image it was made from (idx = pid - 1).
        iid = coco_image_id(WORLD_SEED, int(pid) - 1)
        coco = root / "images" / p["split"] / f"{p['split']}_{iid:012d}.jpg"
        assert img.read_bytes() == coco.read_bytes()
        scene, answer = scene_of(iid), p["choices"][p["answer"]]
        shapes = [o.shape for o in scene.objects]
        if p["question"].startswith("How many corners"):
            shape = p["question"].split(" do the ")[1].split("s in the")[0]
            assert answer == str(shapes.count(shape) * CORNERS[shape])
        elif p["question"].startswith("Which shape in the picture has"):
            assert answer in shapes and sum(CORNERS.get(s, 0) == CORNERS[answer] for s in set(shapes)) == 1
        else:
            biggest = max(scene.objects, key=lambda o: o.pixel_area)
            assert answer.endswith(biggest.shape)


def test_class_folders_hold_one_crop_per_image_labelled_by_its_object(world):
    root, _ = world
    lay = WorldLayout(root)
    for split in SPLITS:
        n_images = len(_load(lay.coco_instances(split))["images"])
        if not n_images:
            continue
        ledger = Ledger()
        res = read_imagefolder(lay.classify_dir(split), image_root=lay.image_root, ledger=ledger)
        assert len(ledger) == 0 and len(res.records) == n_images
        for rec in res.records.values():
            (label,) = rec.labels
            iid = int(Path(rec.file_name).stem.split("_")[1])
            scene = scene_of(iid)
            obj = min(scene.objects, key=lambda o: o.occlusion)
            assert label == obj.shape
            with Image.open(root / "images" / rec.file_name) as im:
                # The crop is the object box plus a margin: the object's colour fills its centre.
                w, h = im.size
                assert w <= scene.width and h <= scene.height
                centre = im.convert("RGB").getpixel((w // 2, h // 2))
            if obj.shape not in ("star", "sign"):  # a star's centre is inside it; a sign has text
                assert sum(abs(a - b) for a, b in zip(centre, obj.rgb, strict=True)) < 60


def test_load_world_extras(world, tmp_path, caplog):
    root, records = world
    sources = {tuple(r.sources) for r in records}
    assert any({"gqa", "refcoco"} <= set(s) for s in sources)
    assert {("textvqa",), ("scienceqa",), ("imagefolder",)} <= sources
    plain = load_world(root, "train")
    assert all(r.sources == ["coco", "vg", "vqav2"] for r in plain)
    # A world from before the extra formats: read without them, with a warning.
    old = tmp_path / "old"
    generate_world(old, 6, 1, workers=1)
    lay = WorldLayout(old)
    for p in lay.annotation_files("train", extras=True):
        if p not in lay.annotation_files("train"):
            p.unlink()  # the extra files of the split read below (other splits' files do not matter)
    shutil.rmtree(lay.image_root / "classify")
    with caplog.at_level(logging.WARNING):
        recs = load_world(old, "train", extras=True)
    assert recs and "no extra formats" in caplog.text
    # Half a set of extra files is a broken world: an error naming what is missing.
    (old / "gqa" / "questions" / "train_balanced_questions.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="extra formats incomplete"):
        load_world(old, "train", extras=True)
