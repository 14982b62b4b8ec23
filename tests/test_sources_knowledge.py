"""Readers for A-OKVQA, OK-VQA and VizWiz-VQA on hand-written files in the official layouts.

Each test writes tiny files with the keys the real files carry, and checks the records, every
ledger rejection (locator + reason), `seen == kept + rejected`, path safety, merging onto COCO's
record of the same image, and the `SourceSpec` / `--source` forms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from source_helpers import assert_reconciles, reasons, write
from vitune.data.ledger import Ledger
from vitune.sources import merge_records, read_aokvqa, read_coco, read_okvqa, read_vizwiz, read_vqav2
from vitune.sources.spec import SpecError, load_sources, load_spec_file, spec_from_pairs
from vitune.sources.stats import SourceResult


def dump(res: SourceResult) -> list[dict]:
    return [res.records[k].to_dict() for k in sorted(res.records)]


# ---------------------------------------------------------------- A-OKVQA


def aok(qid: str, image_id: Any = 299207, split: str = "train", **kw: Any) -> dict:
    d: dict[str, Any] = {
        "split": split,
        "image_id": image_id,
        "question_id": qid,
        "question": "What is the man by the bags awaiting?",
        "choices": ["skateboarder", "train", "delivery", "cab"],
        "correct_choice_idx": 3,
        "direct_answers": ["cab"] * 7 + ["taxi"] * 3,
        "difficult_direct_answer": False,
        "rationales": [
            "A train would not be on the street, so a cab is the only possible answer.",
            "He has bags and is standing at the curb like someone waiting for a taxi.",
            "People with luggage at a street corner are usually waiting for a cab.",
        ],
    }
    d.update(kw)
    return d


def test_aokvqa_reads_questions_onto_coco_image_keys(tmp_path: Path) -> None:
    test_entry = {
        k: v
        for k, v in aok("t1", 57).items()
        if k not in ("correct_choice_idx", "direct_answers", "rationales")
    }
    f = write(
        tmp_path / "aokvqa_v1p0_train.json",
        [
            aok("22MexNkBPpdZGX6sxbxVBH"),
            aok("q2", question="Why is he there?  "),
            {**test_entry, "split": "test"},
        ],
    )
    ledger = Ledger()
    res = read_aokvqa(f, ledger=ledger, split="train")
    assert len(ledger) == 0 and sorted(res.records) == ["299207", "57"]
    rec = res.records["299207"]
    assert rec.file_name == "train2017/000000299207.jpg" and rec.sources == ["aokvqa"] and rec.width == 0
    qa = rec.qas[0]
    assert (qa.question_id, qa.source, qa.answer_type) == (
        "22MexNkBPpdZGX6sxbxVBH",
        "aokvqa",
        "multiple_choice",
    )
    assert qa.choices[qa.answer_index] == "cab" and qa.majority_answer() == "cab" and len(qa.answers) == 10
    assert qa.rationale.startswith("A train") and len(qa.meta["rationales"]) == 3
    assert qa.meta["difficult_direct_answer"] is False
    assert rec.qas[1].question == "Why is he there?"
    test_qa = res.records["57"].qas[0]  # the entry's own split names the COCO folder
    assert res.records["57"].file_name == "test2017/000000000057.jpg"
    assert test_qa.answers == [] and test_qa.answer_index is None and len(test_qa.choices) == 4
    assert dump(res) == dump(read_aokvqa(f, split="train"))
    assert read_aokvqa(f, file_pattern=None).records["57"].file_name == ""
    # An entry without its own split, read without a split: nothing names the COCO folder.
    ledger = Ledger()
    read_aokvqa(write(tmp_path / "nosplit.json", [aok("s", split="")]), ledger=ledger)
    assert reasons(ledger) == [("[0]", "no 'split' to name the COCO image folder")]


def test_aokvqa_rejections_are_ledgered_with_position_and_reason(tmp_path: Path) -> None:
    f = write(
        tmp_path / "aokvqa_v1p0_val.json",
        [
            aok("ok", split="val"),
            "not an object",
            aok(None),
            aok("a", image_id="../../etc/passwd"),
            aok("b", question="  "),
            aok("ok", split="val"),  # duplicate id
            aok("c", choices="cab"),
            aok("d", choices=["cab", ""]),
            aok("e", correct_choice_idx=4),
            aok("f", correct_choice_idx=True),
            aok("g", direct_answers=None),
            aok("h", correct_choice_idx=None),
            aok("i", direct_answers=["cab", 3]),
            aok("j", rationales="because"),
            aok("k", split="../.."),  # the split names a folder: it must not leave the image root
            aok("l", image_id=1234),
        ],
    )
    ledger = Ledger()
    res = read_aokvqa(f, ledger=ledger, split="val", known_images={"299207"})
    assert [qa.question_id for r in res.records.values() for qa in r.qas] == ["ok"]
    got = reasons(ledger)
    assert got[:6] == [
        ("[1]", "entry is not an object"),
        ("[2]", "missing or invalid 'question_id' or 'image_id'"),
        ("[3]", "'image_id' must be a COCO image number, got '../../etc/passwd'"),
        ("[4]", "missing or empty 'question'"),
        ("[5]", "duplicate question id ok"),
        ("[6]", "'choices' must be a list of at least 2 strings"),
    ]
    assert got[6] == ("[7]", "choices[1] is not a non-empty string")
    assert got[7] == ("[8]", "'correct_choice_idx' must be an index into the 4 choices, got 4")
    assert got[8] == ("[9]", "'correct_choice_idx' must be an index into the 4 choices, got True")
    assert got[9][1].startswith("'correct_choice_idx' without 'direct_answers'")
    assert got[10][1].startswith("'direct_answers' without 'correct_choice_idx'")
    assert got[11] == ("[12]", "direct_answers[1] is not a non-empty string")
    assert got[12] == ("[13]", "'rationales' must be a list of at least 0 strings")
    assert got[13][0] == "[14]" and "escapes the image root" in got[13][1]
    assert got[14] == ("[15]", "unknown image id 1234")
    assert_reconciles(res, ledger)
    assert res.stats[0].seen == 16 and res.stats[0].kept == 1


def test_aokvqa_malformed_file_names_the_file(tmp_path: Path) -> None:
    f = write(tmp_path / "aokvqa_v1p0_val.json", {"questions": []})
    with pytest.raises(ValueError, match=r"aokvqa_v1p0_val\.json"):
        read_aokvqa(f)
    with pytest.raises(ValueError, match="file_pattern"):
        read_aokvqa(write(tmp_path / "x.json", [aok("q")]), file_pattern="{folder}/{image_id}.jpg")


def coco_instances(tmp_path: Path, image_id: int, name: str) -> Path:
    return write(
        tmp_path / "annotations" / "instances_val2017.json",
        {
            "images": [{"id": image_id, "file_name": name, "width": 640, "height": 480}],
            "annotations": [],
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
        },
    )


def test_aokvqa_merges_onto_the_coco_record_and_spec_forms(tmp_path: Path) -> None:
    inst = coco_instances(tmp_path, 299207, "000000299207.jpg")
    f = write(tmp_path / "aokvqa" / "aokvqa_v1p0_val.json", [aok("q1", split="val")])
    coco = read_coco(inst, image_subdir="val2017")
    (rec,) = merge_records([coco, read_aokvqa(f)])
    assert rec.image_id == "299207" and rec.sources == ["coco", "aokvqa"]
    assert (rec.file_name, rec.width, rec.height) == ("val2017/000000299207.jpg", 640, 480)
    # The `--source` form and the YAML form give the same spec and records.
    spec = spec_from_pairs(
        [
            f"coco={inst}",
            "coco_image_subdir=val2017",
            f"aokvqa={f}",
            "aokvqa.file_pattern=val2017/{image_id:012d}.jpg",
        ],
        image_root=tmp_path,
        split="val",
    )
    assert spec.aokvqa is not None and spec.aokvqa.questions == f and f in spec.input_files()
    res = load_sources(spec)
    assert [r.sources for r in res.records] == [["coco", "aokvqa"]] and res.images_in == 1
    y = tmp_path / "sources.yaml"
    y.write_text(
        "image_root: .\nsplit: val\ncoco_instances: annotations/instances_val2017.json\n"
        "coco_image_subdir: val2017\naokvqa: {questions: aokvqa/aokvqa_v1p0_val.json}\n"
    )
    assert load_spec_file(y).aokvqa.questions == f  # relative to the YAML file
    with pytest.raises(SpecError, match="aokvqa"):
        spec_from_pairs([f"aokvqa={f}", "aokvqa.colour=red"], image_root=tmp_path)


# ---------------------------------------------------------------- OK-VQA


def okvqa_files(tmp_path: Path) -> tuple[Path, Path]:
    questions = [
        {"image_id": 297147, "question": "What sport can you use this for?", "question_id": 2971475},
        {"image_id": 297147, "question": "Which brand makes this?", "question_id": 2971476},
        {"image_id": 393225, "question": "What is this made of?", "question_id": 3932255},
        {"image_id": 393225, "question": "What is the weather like?", "question_id": 3932256},
    ]

    def ann(qid: int, iid: int, code: str, answer: str | None) -> dict:
        answers = [
            {"answer_id": k + 1, "raw_answer": answer, "answer_confidence": "yes", "answer": answer}
            for k in range(10)
        ]
        return {"image_id": iid, "answer_type": "other", "question_type": code, "question_id": qid,
                "confidence": 3, "answers": answers}  # fmt: skip

    annotations = [
        ann(2971475, 297147, "four", "race"),
        ann(2971476, 297147, "eleven", "nike"),  # a code OK-VQA does not define: no category
        ann(3932255, 393225, "three", None),  # an answer without text
        ann(3932256, 393225, "ten", "sunny"),
        ann(9999995, 1, "one", "car"),  # no such question
    ]
    head = {"info": {}, "license": {}, "data_subtype": "val2014", "data_type": "mscoco"}
    q = write(
        tmp_path / "OpenEnded_mscoco_val2014_questions.json",
        {**head, "task_type": "Open-Ended", "questions": questions},
    )
    a = write(tmp_path / "mscoco_val2014_annotations.json", {**head, "annotations": annotations})
    return q, a


def test_okvqa_reads_the_vqav2_layout_as_its_own_source(tmp_path: Path) -> None:
    q, a = okvqa_files(tmp_path)
    ledger = Ledger()
    res = read_okvqa(q, a, ledger=ledger, split="val")
    assert res.source == "okvqa" and sorted(res.records) == ["297147", "393225"]
    qas = {qa.question_id: qa for r in res.records.values() for qa in r.qas}
    assert sorted(qas) == ["2971475", "2971476", "3932256"]
    assert all(qa.source == "okvqa" and qa.answer_type == "other" for qa in qas.values())
    assert qas["2971475"].question_type == "four" and qas["2971475"].majority_answer() == "race"
    assert qas["2971475"].meta["knowledge_category"] == "Sports and Recreation"
    assert qas["3932256"].meta["knowledge_category"] == "Weather and Climate"
    assert "knowledge_category" not in qas["2971476"].meta
    assert {(r.stage, r.locator, r.reason) for r in ledger.items} == {
        ("sources.okvqa", "annotations[2]", "answers[0] has no 'answer' text"),
        ("sources.okvqa", "annotations[4]", "annotation for unknown question 9999995"),
        ("sources.okvqa", "questions[2]", "no annotation for question 3932255"),
    }
    assert_reconciles(res, ledger)
    # The VQAv2 reader itself still labels its QAs vqav2.
    plain = read_vqav2(q, a)
    assert {qa.source for r in plain.records.values() for qa in r.qas} == {"vqav2"}


def test_okvqa_spec_forms(tmp_path: Path) -> None:
    q, a = okvqa_files(tmp_path)
    spec = spec_from_pairs(
        [
            f"okvqa={q}",
            f"okvqa.annotations={a}",
            "okvqa.file_pattern=val2014/COCO_val2014_{image_id:012d}.jpg",
        ],
        image_root=tmp_path,
        split="val",
    )
    assert spec.input_files() == [q, a]
    res = load_sources(spec)
    assert [r.file_name for r in res.records] == [
        "val2014/COCO_val2014_000000297147.jpg",
        "val2014/COCO_val2014_000000393225.jpg",
    ]
    # Without a file pattern and without COCO, no source gives the image files: rejected, reconciled.
    bare = load_sources(spec_from_pairs([f"okvqa={q}", f"okvqa.annotations={a}"], image_root=tmp_path))
    assert bare.records == [] and bare.images_in == bare.rejected == 2


# ---------------------------------------------------------------- VizWiz


def viz(image: Any, question: Any = "What is this?", **kw: Any) -> dict:
    d: dict[str, Any] = {
        "image": image,
        "question": question,
        "answers": [{"answer": "soup", "answer_confidence": "yes"}] * 9
        + [{"answer": "unanswerable", "answer_confidence": "maybe"}],
        "answer_type": "other",
        "answerable": 1,
    }
    d.update(kw)
    return d


def test_vizwiz_reads_photos_with_one_question_each(tmp_path: Path) -> None:
    blurry = viz("VizWiz_val_00000002.jpg", answer_type="unanswerable", answerable=0,
                 answers=[{"answer": "unanswerable", "answer_confidence": "yes"}] * 10)  # fmt: skip
    f = write(
        tmp_path / "annotations" / "val.json",
        [viz("VizWiz_val_00000001.jpg"), blurry, {"image": "VizWiz_val_00000003.jpg", "question": "Color?"}],
    )
    ledger = Ledger()
    res = read_vizwiz(f, ledger=ledger, split="val", image_subdir="val")
    assert len(ledger) == 0
    assert sorted(res.records) == [f"vizwiz:VizWiz_val_0000000{k}" for k in (1, 2, 3)]
    rec = res.records["vizwiz:VizWiz_val_00000001"]
    assert rec.file_name == "val/VizWiz_val_00000001.jpg" and rec.sources == ["vizwiz"]
    (qa,) = rec.qas
    assert qa.question_id == "VizWiz_val_00000001" and qa.majority_answer() == "soup"
    assert qa.meta["answerable"] == 1 and qa.meta["answer_confidence"][-1] == "maybe"
    assert res.records["vizwiz:VizWiz_val_00000002"].qas[0].answer_type == "unanswerable"
    test_qa = res.records["vizwiz:VizWiz_val_00000003"].qas[0]
    assert test_qa.answers == [] and "answerable" not in test_qa.meta
    assert dump(res) == dump(read_vizwiz(f, split="val", image_subdir="val"))


def test_vizwiz_rejections_and_path_safety(tmp_path: Path) -> None:
    f = write(
        tmp_path / "annotations" / "train.json",
        [
            viz("VizWiz_train_00000000.jpg"),
            7,
            viz("../../etc/passwd"),
            viz("sub\\x.jpg"),
            viz(".."),
            viz(None),
            viz("a.jpg", question=""),
            viz("b.jpg", answers=[{"answer": "x", "answer_confidence": "yes"}] * 3),
            viz("c.jpg", answers=[{"answer": "x"}] * 9 + [{"answer_confidence": "yes"}]),
            viz("d.jpg", answer_type="color"),
            viz("e.jpg", answerable=True),
            viz("f.jpg", answerable=None),
            viz("VizWiz_train_00000000.jpg"),
        ],
    )
    ledger = Ledger()
    res = read_vizwiz(f, ledger=ledger, split="train", image_subdir="train")
    assert list(res.records) == ["vizwiz:VizWiz_train_00000000"]
    assert reasons(ledger) == [
        ("[1]", "entry is not an object"),
        ("[2]", "'image' must be a file name, got '../../etc/passwd'"),
        ("[3]", "'image' must be a file name, got 'sub\\\\x.jpg'"),
        ("[4]", "'image' must be a file name, got '..'"),
        ("[5]", "missing or empty 'image'"),
        ("[6]", "missing or empty 'question'"),
        ("[7]", "'answers' must be a list of at least 10 answers"),
        ("[8]", "answers[9] has no 'answer' text"),
        ("[9]", "'answer_type' must be one of other, yes/no, number, unanswerable, got 'color'"),
        ("[10]", "'answerable' must be 0 or 1, got True"),
        ("[11]", "'answerable' must be 0 or 1, got None"),
        ("[12]", "duplicate image VizWiz_train_00000000.jpg"),
    ]
    assert_reconciles(res, ledger)
    # Home-made files with fewer answers: relax min_answers.
    assert "vizwiz:b" in read_vizwiz(f, min_answers=3).records
    with pytest.raises(ValueError, match="VizWiz image_subdir"):
        read_vizwiz(f, image_subdir="../photos")
    with pytest.raises(ValueError, match=r"train\.json"):
        read_vizwiz(write(tmp_path / "annotations" / "train.json", {"data": []}))


def test_vizwiz_spec_defaults_the_image_folder_to_the_split(tmp_path: Path) -> None:
    f = write(tmp_path / "annotations" / "val.json", [viz("VizWiz_val_00000001.jpg")])
    spec = spec_from_pairs([f"vizwiz={f}"], image_root=tmp_path, split="val")
    (rec,) = load_sources(spec).records
    assert rec.file_name == "val/VizWiz_val_00000001.jpg"
    spec = spec_from_pairs([f"vizwiz={f}", "vizwiz.image_subdir=photos/val"], image_root=tmp_path)
    (rec,) = load_sources(spec).records
    assert rec.file_name == "photos/val/VizWiz_val_00000001.jpg" and rec.split == ""
