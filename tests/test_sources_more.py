"""Readers for GQA, TextVQA (+ Rosetta OCR), ScienceQA, RefCOCO, image folders and Vision-Flan.

Each test writes tiny files in the exact public layouts, with the extra fields the real files
carry (readers must ignore them), and checks records, ledger entries (locator + reason),
`seen == kept + rejected`, path safety and that two reads give identical output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from source_helpers import assert_reconciles, reasons, write
from vitune.data.ledger import Ledger
from vitune.data.records import QA, ImageRecord
from vitune.sources import (
    merge_records,
    read_gqa,
    read_imagefolder,
    read_refcoco,
    read_scienceqa,
    read_textvqa,
    read_visionflan,
    vg_image_keys,
)
from vitune.sources.stats import SourceResult


def dump(res: SourceResult) -> list[dict]:
    return [res.records[k].to_dict() for k in sorted(res.records)]


# ---------------------------------------------------------------- GQA


def gqa_q(image: str, q: str, a: str | None, full: str | None, balanced: bool = True, **kw: Any) -> dict:
    d: dict[str, Any] = {
        "semantic": [{"operation": "select", "dependencies": [], "argument": "sky (2486325)"}],
        "entailed": ["02930160"],
        "equivalent": ["02930152"],
        "question": q,
        "imageId": image,
        "isBalanced": balanced,
        "groups": {"global": None, "local": "06-sky_dark"},
        "semanticStr": "select: sky (2486325)->verify color: dark [0]",
        "annotations": {"answer": {}, "question": {"2": "2486325"}, "fullAnswer": {"2": "2486325"}},
        "types": {"detailed": "verifyAttr", "semantic": "attr", "structural": "verify"},
    }
    if a is not None:
        d["answer"] = a
    if full is not None:
        d["fullAnswer"] = full
    d.update(kw)
    return d


def test_gqa_reads_questions_with_full_answers_and_types(tmp_path: Path) -> None:
    f = write(
        tmp_path / "val_balanced_questions.json",
        {
            "02930152": gqa_q("2354786", "Is the sky dark?", "yes", "Yes, the sky is dark."),
            "07333408": gqa_q(
                "2354786",
                "What is on the white wall?",
                "pipe",
                "The pipe is on the wall.",
                types={"semantic": "rel", "structural": "query"},  # no `detailed`: falls back
            ),
            "01": gqa_q("2375429", "Who wears the hat?", "man", "The man wears the hat.", balanced=False),
            "02": gqa_q("2375429", "   ", "x", "x"),  # empty question
            "03": gqa_q("../../etc/passwd", "What?", "x", "x"),  # traversal through imageId
            "04": gqa_q("2375429", "Color?", 7, "x"),  # answer not a string
            "05": "not an object",
        },
    )
    ledger = Ledger()
    res = read_gqa(f, ledger=ledger, split="val")
    assert_reconciles(res, ledger)
    st = res.stat("val_balanced_questions.json", "questions")
    assert (st.seen, st.kept, st.rejected, st.filtered) == (7, 3, 4, 0)
    rec = res.records["gqa:2354786"]
    assert rec.file_name == "images/2354786.jpg" and rec.split == "val" and rec.width == 0
    qa1, qa2 = rec.qas
    assert qa1.answers == ["yes"] and qa1.full_answer == "Yes, the sky is dark."
    assert qa1.question_type == "verifyAttr"
    assert qa1.meta["types"] == {"detailed": "verifyAttr", "semantic": "attr", "structural": "verify"}
    assert qa2.question_type == "rel"
    assert res.records["gqa:2375429"].qas[0].meta["is_balanced"] is False
    got = dict(reasons(ledger))
    assert got["question_id=02"] == "missing or empty 'question'"
    assert "escapes the image root" in got["question_id=03"]
    assert got["question_id=04"].startswith("'answer' must be a non-empty string")
    assert got["question_id=05"] == "question is not an object"
    assert all(r.stage == "sources.gqa" for r in ledger.items)


def test_gqa_balanced_only_multiple_files_test_split_and_keys(tmp_path: Path) -> None:
    f0 = write(
        tmp_path / "train_all_questions_0.json",
        {
            "1": gqa_q("10", "Is it red?", "no", "No, it is blue."),
            "2": gqa_q("10", "Is it big?", "yes", "Yes, it is big.", balanced=False),
        },
    )
    f1 = write(
        tmp_path / "train_all_questions_1.json",
        {"3": gqa_q("11", "What is it?", "cup", "It is a cup."), "1": gqa_q("11", "Dup?", "a", "A.")},
    )
    ledger = Ledger()
    res = read_gqa([f0, f1], ledger=ledger, balanced_only=True, image_keys={"10": "5"})
    assert_reconciles(res, ledger)
    assert res.stat("_0.json", "questions").filtered == 1
    assert res.stat("_0.json", "questions").seen == 1
    assert sorted(res.records) == ["5", "gqa:11"]  # image 10 mapped onto another record's key
    assert reasons(ledger) == [("question_id=1", "duplicate question id 1")]
    # The test split ships no answers: QAs without answers, as VQAv2 test.
    t = write(tmp_path / "test.json", {"201": gqa_q("n161313", "What is this?", None, None)})
    qa = read_gqa(t, image_subdir="gqa/images").records["gqa:n161313"].qas[0]
    assert qa.answers == [] and qa.full_answer == ""
    assert read_gqa(t, image_subdir="gqa/images").records["gqa:n161313"].file_name == "gqa/images/n161313.jpg"
    with pytest.raises(ValueError, match="image_subdir"):
        read_gqa(t, image_subdir="../up")
    # determinism
    assert dump(read_gqa([f0, f1])) == dump(read_gqa([f0, f1]))


def test_gqa_vg_key_map_merges_with_visual_genome_records() -> None:
    vg = {"42": ImageRecord("42", "vg/2354786.jpg", 500, 333, meta={"vg_image_id": 2354786, "coco_id": 42})}
    assert vg_image_keys(vg) == {"2354786": "42"}


def test_gqa_bad_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "q.json"
    bad.write_text('{"1": {"question": ', encoding="utf-8")
    with pytest.raises(ValueError, match=r"q\.json: invalid JSON at line 1"):
        read_gqa(bad)
    lst = write(tmp_path / "l.json", [1, 2])
    with pytest.raises(ValueError, match="expected a GQA object keyed by question id"):
        read_gqa(lst)


# ---------------------------------------------------------------- TextVQA


def tvqa_q(qid: int, iid: str, q: str, answers: Any, **kw: Any) -> dict:
    d = {
        "question": q,
        "image_id": iid,
        "image_classes": ["Vehicle", "Car"],
        "flickr_original_url": "https://farm2.staticflickr.com/4/1_o.jpg",
        "flickr_300k_url": "https://c5.staticflickr.com/4/1_z.jpg",
        "image_width": 1024,
        "image_height": 664,
        "question_tokens": q.lower().rstrip("?").split(),
        "question_id": qid,
        "set_name": "train",
    }
    if answers is not None:
        d["answers"] = answers
    d.update(kw)
    return d


def tvqa_file(items: list) -> dict:
    return {"dataset_type": "train", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": items}


def ocr_entry(iid: str, words: list[str]) -> dict:
    return {
        "image_id": iid,
        "ocr_tokens": words,
        "ocr_info": [
            {
                "word": w,
                "bounding_box": {
                    "width": 0.1,
                    "height": 0.05,
                    "rotation": 0,
                    "roll": 0,
                    "pitch": 0,
                    "yaw": 0,
                    "top_left_x": 0.1 * k,
                    "top_left_y": 0.2,
                },
            }
            for k, w in enumerate(words)
        ],
        "set_name": "train",
    }


def test_textvqa_questions_and_rosetta_ocr(tmp_path: Path) -> None:
    ten = ["nous les gosses"] * 7 + ["dakota"] * 3
    q = write(
        tmp_path / "TextVQA_0.5.1_train.json",
        tvqa_file(
            [
                tvqa_q(0, "0054c91397f2fe05", "what is the brand of this camera?", ten),
                tvqa_q(1, "0054c91397f2fe05", "what does the small white text spell?", ["copenhagen"] * 10),
                tvqa_q(2, "00685bc495504d61", "what team?", ["x"] * 9),  # 9 answers
                tvqa_q(3, "../secret", "what?", ["x"] * 10),
                tvqa_q(4, "00685bc495504d61", "", ["x"] * 10),
                tvqa_q(5, "00685bc495504d61", "which?", ["x"] * 9 + [3]),
                tvqa_q(1, "00685bc495504d61", "again?", ["x"] * 10),  # duplicate question id
                tvqa_q(6, "0054c91397f2fe05", "size?", ["x"] * 10, image_width=10),  # size conflict
                tvqa_q(7, "1234567890123456", "digits?", ["a"] * 10),
            ]
        ),
    )
    o = write(
        tmp_path / "TextVQA_Rosetta_OCR_v0.2_train.json",
        {
            "dataset_type": "train",
            "dataset_name": "textvqa",
            "data": [
                ocr_entry("0054c91397f2fe05", ["DAKOTA", "digital"]),
                ocr_entry("ffffffffffffffff", ["unused"]),  # no question kept: filtered
                {"image_id": "1234567890123456", "ocr_tokens": "oops", "ocr_info": []},
                ocr_entry("0054c91397f2fe05", ["again"]),
            ],
        },
    )
    ledger = Ledger()
    res = read_textvqa(q, o, ledger=ledger, split="train")
    assert_reconciles(res, ledger)
    qs, ocr = res.stat("train.json", "questions"), res.stat("OCR_v0.2_train.json", "ocr")
    assert (qs.seen, qs.kept, qs.rejected) == (9, 3, 6)
    assert (ocr.seen, ocr.kept, ocr.rejected, ocr.filtered) == (3, 1, 2, 1)
    rec = res.records["openimages:0054c91397f2fe05"]
    assert rec.file_name == "train_images/0054c91397f2fe05.jpg" and (rec.width, rec.height) == (1024, 664)
    assert [qa.question_id for qa in rec.qas] == ["0", "1"]
    assert rec.qas[0].answers == ten and rec.qas[0].majority_answer() == "nous les gosses"
    assert rec.ocr_tokens == ["DAKOTA", "digital"]
    assert rec.meta["ocr_words"] == ["DAKOTA", "digital"]
    assert rec.meta["ocr_boxes"][1] == [0.1, 0.2, 0.1, 0.05]
    assert rec.meta["image_classes"] == ["Vehicle", "Car"] and rec.meta["openimages_id"] == "0054c91397f2fe05"
    # an all-digit Open Images id stays apart from COCO's numeric ids
    assert "openimages:1234567890123456" in res.records
    got = reasons(ledger)
    assert got[0] == ("data[2]", "9 answers, expected at least 10")
    assert got[1][0] == "data[3]" and "escapes the image root" in got[1][1]
    assert got[2] == ("data[4]", "missing or empty 'question'")
    assert got[3] == ("data[5]", "answers[9] is not a non-empty string")
    assert got[4] == ("data[6]", "duplicate question id 1")
    assert got[5] == ("data[7]", "image size 10x664 differs from 1024x664 given earlier")
    assert got[6] == ("data[2]", "'ocr_tokens' must be a list of strings")
    assert got[7] == ("data[3]", "duplicate OCR entry for image 0054c91397f2fe05")
    assert dump(read_textvqa(q, o)) == dump(read_textvqa(q, o))


def test_textvqa_test_split_without_answers(tmp_path: Path) -> None:
    q = write(tmp_path / "TextVQA_0.5.1_test.json", tvqa_file([tvqa_q(9, "abc", "what?", None)]))
    res = read_textvqa(q, image_subdir="test_images")
    rec = res.records["openimages:abc"]
    assert rec.qas[0].answers == [] and rec.file_name == "test_images/abc.jpg"
    with pytest.raises(ValueError, match="'data' list"):
        read_textvqa(write(tmp_path / "x.json", {"questions": []}))


# ---------------------------------------------------------------- ScienceQA


def sqa_problem(image: str | None, split: str = "train", answer: Any = 1, **kw: Any) -> dict:
    d = {
        "question": "Which of these states is farthest north?",
        "choices": ["West Virginia", "Louisiana", "Arizona", "Oklahoma"],
        "answer": answer,
        "hint": "",
        "image": image,
        "task": "closed choice",
        "grade": "grade2",
        "subject": "social science",
        "topic": "geography",
        "category": "Geography",
        "skill": "Read a map: cardinal directions",
        "lecture": "Maps have four cardinal directions...",
        "solution": "To find the answer, look at the compass rose...",
        "split": split,
    }
    d.update(kw)
    return d


def test_scienceqa_image_problems_text_only_filtered(tmp_path: Path) -> None:
    problems = write(
        tmp_path / "problems.json",
        {
            "1": sqa_problem("image.png", answer=0),
            "2": sqa_problem(None),  # text-only
            "3": sqa_problem("image.png", hint="Figure: Mexico.", answer=3),
            "4": sqa_problem("image.png", answer=4),  # out of range
            "5": sqa_problem("../../x.png"),  # traversal through the image name
            "6": sqa_problem("image.png", choices=["only one"]),
            "7": sqa_problem("image.png", split="test"),  # not in the train split list
            "8": sqa_problem("image.png", answer=True),  # bool is not an index
        },
    )
    splits = write(
        tmp_path / "pid_splits.json",
        {"train": ["1", "2", "3", "4", "5", "6", "8", "99"], "val": [], "test": ["7"], "minitrain": ["1"]},
    )
    ledger = Ledger()
    res = read_scienceqa(problems, splits, split="train", ledger=ledger)
    assert_reconciles(res, ledger)
    st = res.stat("problems.json", "problems")
    assert (st.seen, st.kept, st.rejected, st.filtered) == (7, 2, 5, 1)
    assert res.filtered_ids["text_only"] == ["2"]
    assert list(res.records) == ["scienceqa:1", "scienceqa:3"]
    rec = res.records["scienceqa:3"]
    assert rec.file_name == "images/train/3/image.png" and rec.split == "train"
    (qa,) = rec.qas
    assert qa.choices == ["West Virginia", "Louisiana", "Arizona", "Oklahoma"]
    assert qa.answer_index == 3 and qa.answers == ["Oklahoma"]
    assert qa.context == "Figure: Mexico." and qa.rationale.startswith("To find the answer")
    assert qa.answer_type == "multiple_choice" and qa.question_type == "Geography"
    assert rec.meta["subject"] == "social science" and rec.meta["lecture"].startswith("Maps")
    got = dict(reasons(ledger))
    assert got["pid=4"] == "'answer' must be an index into the 4 choices, got 4"
    assert got["pid=5"] == "'image' must be a file name, got '../../x.png'"
    assert got["pid=6"] == "'choices' must be a list of at least 2 options"
    assert got["pid=8"] == "'answer' must be an index into the 4 choices, got True"
    assert got["pid=99"] == "pid listed in split 'train' but not in problems.json"
    # minitrain problems keep their own split's image folder
    mini = read_scienceqa(problems, splits, split="minitrain")
    assert mini.records["scienceqa:1"].file_name == "images/train/1/image.png"
    assert mini.records["scienceqa:1"].split == "minitrain"
    # without pid_splits: the problems' own split field
    test = read_scienceqa(problems, split="test")
    assert list(test.records) == ["scienceqa:7"]
    with pytest.raises(ValueError, match="no split 'dev'"):
        read_scienceqa(problems, splits, split="dev")
    assert dump(read_scienceqa(problems, splits, split="train")) == dump(res)


# ---------------------------------------------------------------- RefCOCO


def refer_instances() -> dict:
    return {
        "info": {"description": "This is stable 1.0 version of the 2014 MS COCO dataset."},
        "licenses": [],
        "images": [
            {
                "license": 1,
                "file_name": "COCO_train2014_000000581857.jpg",
                "coco_url": "http://mscoco.org/images/581857",
                "height": 640,
                "width": 427,
                "date_captured": "2013-11-16 16:11:53",
                "flickr_url": "http://farm4.staticflickr.com/1/1.jpg",
                "id": 581857,
            },
            {
                "license": 1,
                "file_name": "COCO_train2014_000000000009.jpg",
                "height": 480,
                "width": 640,
                "id": 9,
            },
        ],
        "annotations": [
            {
                "segmentation": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]],
                "area": 1000.0,
                "iscrowd": 0,
                "image_id": 581857,
                "bbox": [103.93, 299.99, 134.22, 177.42],
                "category_id": 1,
                "id": 1719310,
            },
            {
                "segmentation": [],
                "area": 1.0,
                "iscrowd": 0,
                "image_id": 9,
                "bbox": [1, 1, 10, 10],
                "category_id": 1,
                "id": 5,
            },
            {
                "segmentation": [],
                "area": 1.0,
                "iscrowd": 0,
                "image_id": 9,
                "bbox": [600, 1, 100, 10],
                "category_id": 1,
                "id": 6,
            },
        ],
        "categories": [{"supercategory": "person", "id": 1, "name": "person"}],
    }


def ref(rid: int, aid: int, iid: int, sents: list[Any], split: str = "train") -> dict:
    return {
        "sent_ids": list(range(len(sents))),
        "file_name": f"COCO_train2014_{iid:012d}_{rid}.jpg",
        "ann_id": aid,
        "ref_id": rid,
        "image_id": iid,
        "split": split,
        "sentences": [
            s
            if not isinstance(s, str)
            else {"tokens": s.split(), "raw": s.upper(), "sent_id": 100 + k, "sent": s}
            for k, s in enumerate(sents)
        ],
        "category_id": 1,
    }


def test_refcoco_refs_become_regions(tmp_path: Path) -> None:
    inst = write(tmp_path / "refcoco" / "instances.json", refer_instances())
    refs = write(
        tmp_path / "refcoco" / "refs(unc).json",
        [
            ref(
                0,
                1719310,
                581857,
                ["the lady with the blue shirt", "lady with back to us", {"sent": "", "raw": ""}],
            ),
            ref(1, 5, 9, ["man on left"], split="testA"),  # other split: filtered
            ref(2, 6, 9, ["box out of bounds"]),  # its annotation was rejected by read_coco
            ref(3, 1719310, 9, ["wrong image"]),
            ref(4, 5, 9, [{"sent": "", "raw": "  "}]),  # no usable sentence
            ref(0, 1719310, 581857, ["dup"]),
            {"ref_id": 7},
        ],
    )
    ledger = Ledger()
    res = read_refcoco(refs, inst, dataset="refcoco", split="train", ledger=ledger)
    assert_reconciles(res, ledger)
    st = res.stat("refs(unc).json", "refs")
    assert (st.seen, st.kept, st.rejected, st.filtered) == (6, 1, 5, 1)
    sst = res.stat("refs(unc).json", "sentences")
    assert (sst.seen, sst.kept, sst.rejected) == (4, 2, 2)
    assert list(res.records) == ["581857"]
    rec = res.records["581857"]
    assert rec.file_name == "train2014/COCO_train2014_000000581857.jpg" and (rec.width, rec.height) == (
        427,
        640,
    )
    assert [(r.region_id, r.phrase, r.source) for r in rec.regions] == [
        ("refcoco:0:100", "the lady with the blue shirt", "refcoco"),
        ("refcoco:0:101", "lady with back to us", "refcoco"),
    ]
    assert rec.regions[0].box.to_list() == [103.93, 299.99, 134.22, 177.42]
    assert rec.meta["region_objects"]["refcoco:0:100"] == "coco:1719310"
    assert rec.objects == [] and rec.sources == ["refcoco"]
    got = [(r.stage, r.locator, r.reason) for r in ledger.items]
    assert ("sources.coco", "annotations[2]", "box [600, 1, 100, 10] outside the 640x480 image") in got
    assert ("sources.refcoco", "[0].sentences[2]", "missing or empty 'sent' and 'raw'") in got
    assert ("sources.refcoco", "[2]", "ann_id 6 is not a valid annotation of instances.json") in got
    assert ("sources.refcoco", "[3]", "ann_id 1719310 belongs to image 581857, not 9") in got
    assert ("sources.refcoco", "[4]", "no usable sentence") in got
    assert ("sources.refcoco", "[5]", "duplicate ref_id 0") in got
    assert ("sources.refcoco", "[6]", "missing or invalid 'ref_id', 'ann_id' or 'image_id'") in got
    # refs wrapped in {"refs": [...]}, RefCOCOg naming, all splits
    wrapped = write(tmp_path / "refs.json", {"refs": [ref(1, 5, 9, ["man on left"], split="val")]})
    g = read_refcoco(wrapped, inst, dataset="refcocog")
    assert g.records["9"].regions[0].region_id == "refcocog:1:100" and g.records["9"].split == "val"
    with pytest.raises(ValueError, match="dataset must be one of"):
        read_refcoco(wrapped, inst, dataset="refclef")
    with pytest.raises(ValueError, match="expected a list of refs"):
        read_refcoco(write(tmp_path / "bad.json", {"x": 1}), inst)
    assert dump(read_refcoco(refs, inst, split="train")) == dump(res)


def test_refcoco_regions_merge_onto_coco_records(tmp_path: Path) -> None:
    from vitune.sources import read_coco

    inst = write(tmp_path / "instances.json", refer_instances())
    refs = write(tmp_path / "refs.json", [ref(0, 1719310, 581857, ["the lady"])])
    coco = read_coco(inst, image_subdir="train2014")
    out = merge_records([coco, read_refcoco(refs, inst)], Ledger())
    rec = next(r for r in out if r.image_id == "581857")
    assert [o.object_id for o in rec.objects] == ["coco:1719310"]
    assert rec.regions[0].phrase == "the lady" and rec.sources == ["coco", "refcoco"]


# ---------------------------------------------------------------- image folders


def make_image(path: Path, size: tuple[int, int] = (8, 6), fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path, format=fmt)
    return path


def test_imagefolder_labels_rejections_and_order(tmp_path: Path) -> None:
    root = tmp_path / "data" / "cifar10"
    make_image(root / "cat" / "b.png")
    make_image(root / "cat" / "a.jpg", (5, 7), "JPEG")
    make_image(root / "cat" / "sub" / "c.png")
    make_image(root / "dog" / "x.PNG")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "dog" / "empty.png").write_bytes(b"")
    (root / "dog" / "notes.txt").write_text("not an image")
    make_image(root / "dog" / ".hidden.png")
    make_image(root / ".git" / "y.png")
    make_image(root / "stray.png")
    (root / "README.md").write_text("about")
    outside = make_image(tmp_path / "elsewhere" / "o.png")
    try:
        os.symlink(outside, root / "dog" / "link.png")
    except OSError:
        pytest.skip("symlinks not available")
    ledger = Ledger()
    res = read_imagefolder(
        root, image_root=tmp_path / "data", ledger=ledger, split="train", label_map={"cat": "a cat"}
    )
    assert_reconciles(res, ledger)
    st = res.stats[0]
    assert (st.seen, st.kept, st.rejected, st.filtered) == (8, 4, 4, 2)
    assert list(res.records) == [
        "imagefolder:cat/a.jpg",
        "imagefolder:cat/b.png",
        "imagefolder:cat/sub/c.png",
        "imagefolder:dog/x.PNG",
    ]
    a = res.records["imagefolder:cat/a.jpg"]
    assert a.file_name == "cifar10/cat/a.jpg" and (a.width, a.height) == (5, 7)
    assert a.labels == ["a cat"] and a.meta["class_dir"] == "cat" and a.split == "train"
    assert res.records["imagefolder:dog/x.PNG"].labels == ["dog"]
    got = dict(reasons(ledger))
    assert got["dog/broken.jpg"].startswith("unreadable image (")
    assert got["dog/empty.png"].startswith("unreadable image (")
    assert "outside the image root" in got["dog/link.png"]
    assert got["stray.png"] == "image outside a class folder (no label)"
    assert dump(read_imagefolder(root, image_root=tmp_path / "data", label_map={"cat": "a cat"})) == dump(
        read_imagefolder(root, image_root=tmp_path / "data", label_map={"cat": "a cat"})
    )
    quick = read_imagefolder(root, verify=False)
    assert quick.records["imagefolder:dog/broken.jpg"].width == 0
    with pytest.raises(ValueError, match="not inside the image root"):
        read_imagefolder(root, image_root=tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError):
        read_imagefolder(tmp_path / "nope")


# ---------------------------------------------------------------- Vision-Flan


def vf(rid: str, task: str, image: Any, human: str, gpt: str) -> dict:
    return {
        "id": rid,
        "image": image,
        "task_name": task,
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}],
    }


def test_visionflan_unique_ids_tasks_and_rejections(tmp_path: Path) -> None:
    t1, t2 = "VQA-E+visual_question_answering", "CLEVR+question_answer"
    records = [
        vf(
            "0",
            t1,
            f"{t1}_0_COCO_train2014_000000000009.jpg",
            "<image>\nAnswer: what is on the plate?",
            "food",
        ),
        vf(
            "0",
            t2,
            f"{t2}_0_CLEVR_train_000001.png",
            "How many cubes?\n\nOptions: (a) 1 (b) 2<image>",
            "(b) 2",
        ),
        vf("1", t1, "../../etc/passwd", "<image>\nq", "a"),
        vf("2", "", f"{t1}_2_x.jpg", "<image>\nq", "a"),
        vf("3", t2, None, "q", "a"),
        {"id": "4", "image": f"{t2}_4_y.png", "task_name": t2, "conversations": [{"from": "human"}]},
        vf("5", t1, f"{t1}_5_missing.jpg", "<image>\nq", "a"),
        [1, 2],
    ]
    f = write(tmp_path / "annotation_191-task_1k.json", records)
    images = tmp_path / "images_191task_1k"
    make_image(images / f"{t1}_0_COCO_train2014_000000000009.jpg")
    make_image(images / f"{t2}_0_CLEVR_train_000001.png")
    ledger = Ledger()
    res = read_visionflan(f, ledger=ledger, image_root=images, check_images=True)
    assert res.reconciles and res.stats is not None
    assert (res.stats.seen, res.stats.kept, res.stats.rejected) == (8, 2, 6)
    assert len(ledger) == 6 and all(r.stage == "sources.visionflan" for r in ledger.items)
    a, b = res.instances
    assert (a.id, b.id) == (f"{t1}:0", f"{t2}:1")  # the shared original id "0" no longer collides
    assert a.meta == {"source": "vision_flan", "source_index": 0, "original_id": "0"}
    assert a.task == t1 and a.image == f"{t1}_0_COCO_train2014_000000000009.jpg"
    assert a.turns[0].text == "Answer: what is on the plate?" and a.turns[1].text == "food"
    assert b.turns[0].text == "How many cubes?\n\nOptions: (a) 1 (b) 2" and b.turns[1].text == "(b) 2"
    assert res.tasks == {t2: 1, t1: 1}
    got = dict(reasons(ledger))
    assert "escapes the image root" in got["[2]"]
    assert got["[3]"] == "missing or empty 'task_name'"
    assert got["[4]"] == "missing 'image' (every Vision-Flan task is visual)"
    assert got["[5]"] == "conversations[0] lacks 'from' or 'value'"
    assert got["[6]"] == f"image file missing: {t1}_5_missing.jpg"
    assert got["[7]"] == "record is not an object"
    # without checking files, a prefix for a parent image root; determinism
    again = read_visionflan(f, image_subdir="images_191task_1k")
    assert again.instances[0].image == f"images_191task_1k/{t1}_0_COCO_train2014_000000000009.jpg"
    assert [i.id for i in again.instances] == [f"{t1}:0", f"{t2}:1", f"{t1}:6"]
    assert [(i.id, i.image, i.turns) for i in read_visionflan(f).instances] == [
        (i.id, i.image, i.turns) for i in read_visionflan(f).instances
    ]
    with pytest.raises(ValueError, match="expected a JSON list"):
        read_visionflan(write(tmp_path / "o.json", {"data": []}))


# ---------------------------------------------------------------- record fields


def test_new_record_fields_round_trip_and_merge() -> None:
    qa = QA("1", "Which?", ["b"], choices=["a", "b"], answer_index=1, context="hint", rationale="because",
            full_answer="It is b.", meta={"types": {"detailed": "x"}})  # fmt: skip
    rec = ImageRecord("k", "f.jpg", 4, 3, qas=[qa], labels=["cat"], ocr_tokens=["STOP"])
    d = rec.to_dict()
    assert ImageRecord.from_dict(d) == rec
    assert ImageRecord.from_dict(json.loads(json.dumps(d))) == rec
    # dicts written before these fields existed still load; unknown QA keys are ignored
    old = {"image_id": "k", "file_name": "f.jpg", "width": 4, "height": 3,
           "qas": [{"question_id": "1", "question": "q", "answers": ["a"], "future": 1}]}  # fmt: skip
    back = ImageRecord.from_dict(old)
    assert back.labels == [] and back.ocr_tokens == [] and back.qas[0].choices == []
    other = ImageRecord("k", "", 0, 0, labels=["cat", "animal"], ocr_tokens=["GO"], sources=["x"])
    (merged,) = merge_records([{"k": rec}, {"k": other}])
    assert merged.labels == ["cat", "animal"] and merged.ocr_tokens == ["STOP"]
