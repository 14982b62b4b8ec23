"""Readers for OCR-VQA (`dataset.json`), VSR (`splits/*/*.jsonl`) and CLEVR v1.0 (questions + scenes),
on hand-written files in the official layouts: good records, every rejection reason, path escapes,
`seen == kept + rejected`, the `--source` / YAML spec forms and the merge onto COCO records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from source_helpers import assert_reconciles, reasons, write
from vitune.data.ledger import Ledger
from vitune.sources import merge_records, read_clevr, read_coco, read_ocrvqa, read_vsr
from vitune.sources.spec import load_sources, load_spec_file, spec_from_pairs

# ---------------------------------------------------------------- OCR-VQA


def book(split: int = 1, **kw: Any) -> dict:
    d = {
        "imageURL": "http://ecx.images-amazon.com/images/I/51cBM8IgqGL.jpg",
        "questions": ["Who wrote this book?", "What is the title of this book?", "Is this a romantic book?"],
        "answers": ["Charles Grodin", "With Love, Ginger", "No"],
        "title": "With Love, Ginger",
        "authorName": "Charles Grodin",
        "genre": "Biographies & Memoirs",
        "split": split,
    }
    return {**d, **kw}


def test_ocrvqa_books_questions_meta_split_and_rejections(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dataset.json",
        {
            "1588345297": book(),
            "0000000002": book(split=2),  # another split: filtered
            "B00NOEXT01": book(imageURL="http://example.com/cover"),  # no extension: no suffix
            "0000000004": book(answers=["x"]),
            "0000000005": book(split=7),
            "0000000006": book(questions=["Who?", ""], answers=["a", "b"]),
            "0000000007": book(imageURL=None),
            "0000000008": book(genre=3),
            "0000000009": "not an object",
            "..": book(),
            "0000000011": book(imageURL="http://x/y.jp\\..\\..\\etc"),
        },
    )
    ledger = Ledger()
    res = read_ocrvqa(path, split="train", ledger=ledger, image_subdir="images")
    assert sorted(res.records) == ["ocrvqa:1588345297", "ocrvqa:B00NOEXT01"]
    rec = res.records["ocrvqa:1588345297"]
    assert rec.file_name == "images/1588345297.jpg" and rec.split == "train"
    assert rec.meta["ocrvqa"] == {
        "title": "With Love, Ginger",
        "author": "Charles Grodin",
        "genre": "Biographies & Memoirs",
    }
    assert (rec.qas[0].question_id, rec.qas[0].question, rec.qas[0].answers, rec.qas[0].source) == (
        "1588345297-0",
        "Who wrote this book?",
        ["Charles Grodin"],
        "ocrvqa",
    )
    assert res.records["ocrvqa:B00NOEXT01"].file_name == "images/B00NOEXT01"  # loadDataset.py's naming
    got = dict(reasons(ledger))
    assert got == {
        "id=0000000004": "3 questions but 1 answers",
        "id=0000000005": "'split' must be 1 (train), 2 (val) or 3 (test), got 7",
        "id=0000000006": "questions[1] is not a non-empty string",
        "id=0000000007": "missing or empty 'imageURL' (it names the image file)",
        "id=0000000008": "'genre' must be a string, got int",
        "id=0000000009": "entry is not an object",
        "id=..": "invalid book id '..'",
        "id=0000000011": "image file name '0000000011.\\\\etc' is not a plain file name",
    }
    st = res.stats[0]
    assert (st.seen, st.kept, st.rejected, st.filtered) == (10, 2, 8, 1)
    assert_reconciles(res, ledger, complete=True)
    everything = read_ocrvqa(path, ledger=Ledger())  # split "": every book, split from its code
    assert everything.records["ocrvqa:0000000002"].split == "val"
    with pytest.raises(ValueError, match="no split 'minival'"):
        read_ocrvqa(path, split="minival")
    with pytest.raises(ValueError, match="image_subdir"):
        read_ocrvqa(path, image_subdir="../up")
    with pytest.raises(ValueError, match=r"dataset\.json.*keyed by book id"):
        read_ocrvqa(write(tmp_path / "bad" / "dataset.json", [1, 2]))


# ---------------------------------------------------------------- VSR


def statement(image: str, caption: str, label: int, relation: str, **kw: Any) -> str:
    d = {
        "image": image,
        "image_link": f"http://images.cocodataset.org/train2017/{image}",
        "caption": caption,
        "label": label,
        "relation": relation,
        "annotator_id": 1,
        "vote_true_validator_id": "[2, 10, 1]",
        "vote_false_validator_id": "[]",
        **kw,
    }
    return json.dumps(d)


def coco_files(tmp_path: Path) -> Path:
    return write(
        tmp_path / "instances_train2017.json",
        {
            "images": [{"id": 239417, "file_name": "000000239417.jpg", "width": 640, "height": 480}],
            "annotations": [],
            "categories": [{"id": 1, "name": "bench"}],
        },
    )


def vsr_file(tmp_path: Path) -> Path:
    lines = [
        statement(
            "000000239417.jpg", "The bench is at the right side of the train.", 0, "at the right side of"
        ),
        statement(
            "000000239417.jpg", "The train is touching the bench.", 1, "touching", subj="train", obj="bench"
        ),
        statement("000000224670.jpg", "The train contains the laptop.", 1, "contains"),
        "",
        statement(
            "000000239417.jpg", "The bench is at the right side of the train.", 0, "at the right side of"
        ),
        statement("000000011111.jpg", "The cat is on the bed.", 2, "on"),
        statement("../../etc/000000011111.jpg", "The cat is on the bed.", 1, "on"),
        statement("cover.jpg", "The cat is on the bed.", 1, "on"),
        statement("000000011111.jpg", "", 1, "on"),
        "[1, 2]",
        "{not json",
        statement("000000011111.jpg", "The cat is on the bed.", True, "on"),
    ]
    path = tmp_path / "splits" / "random" / "train.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_vsr_statements_subj_obj_and_rejections(tmp_path: Path) -> None:
    ledger = Ledger()
    res = read_vsr(vsr_file(tmp_path), split="train", ledger=ledger, image_subdir="images")
    assert sorted(res.records) == ["224670", "239417"]  # COCO's keys: the id without zeros
    rec = res.records["239417"]
    assert rec.file_name == "images/000000239417.jpg"
    qa0, qa1 = rec.qas
    assert (qa0.question_id, qa0.answers, qa0.question_type, qa0.source) == (
        "train-1",
        ["false"],
        "at the right side of",
        "vsr",
    )
    assert (qa0.meta["subj"], qa0.meta["obj"], qa0.meta["label"]) == ("bench", "train", 0)  # from the caption
    assert (qa1.meta["subj"], qa1.meta["obj"], qa1.answers) == ("train", "bench", ["true"])
    verb = res.records["224670"].qas[0]
    assert (verb.meta["subj"], verb.meta["obj"]) == ("train", "laptop")  # a verb relation, no "is"
    got = reasons(ledger)
    assert [loc for loc, _ in got] == [
        "line 5",
        "line 6",
        "line 7",
        "line 8",
        "line 9",
        "line 10",
        "line 11",
        "line 12",
    ]
    assert got[0][1].startswith("duplicate caption for image 239417")
    assert got[1][1] == "'label' must be 0 (false) or 1 (true), got 2"
    assert "escapes the image root" in got[2][1]
    assert got[3][1] == "'image' 'cover.jpg' does not end with a COCO image id"
    assert got[4][1] == "missing or empty 'caption' or 'relation'"
    assert got[5][1] == "line is not a JSON object" and got[6][1].startswith("invalid JSON")
    assert got[7][1] == "'label' must be 0 (false) or 1 (true), got True"
    assert_reconciles(res, ledger, complete=True)
    known = Ledger()
    only = read_vsr(vsr_file(tmp_path), ledger=known, known_images={"239417"})
    assert sorted(only.records) == ["239417"]
    assert any(r.reason.startswith("unknown image id 224670") for r in known.items)
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        read_vsr(tmp_path / "missing.jsonl")


def test_vsr_unreadable_files_name_the_file_and_the_place(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"image": "1.jpg"}\n{"caption": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"latin1\.jsonl: not UTF-8 at byte 35 \(line 2\)"):
        read_vsr(bad)
    with pytest.raises(ValueError, match=r"is a directory, expected a JSONL file"):
        read_vsr(tmp_path)


def test_vsr_lands_on_the_coco_record(tmp_path: Path) -> None:
    ledger = Ledger()
    coco = read_coco(coco_files(tmp_path), image_subdir="train2017", ledger=ledger)
    vsr = read_vsr(vsr_file(tmp_path), ledger=ledger, known_images=set(coco.records))
    (rec,) = merge_records([coco, vsr], ledger)
    assert rec.image_id == "239417" and rec.file_name == "train2017/000000239417.jpg"
    assert (rec.width, rec.height) == (640, 480) and rec.sources == ["coco", "vsr"]
    assert len([q for q in rec.qas if q.source == "vsr"]) == 2


# ---------------------------------------------------------------- CLEVR


def program(*nodes: tuple[str, list[int], str | None]) -> list[dict]:
    return [{"inputs": i, "function": f, "value_inputs": [v] if v else []} for f, i, v in nodes]


COUNT_RED = program(("scene", [], None), ("filter_color", [0], "red"), ("count", [1], None))


def clevr_question(index: int, image_index: int, q: str, answer: Any, prog: Any, **kw: Any) -> dict:
    d = {
        "image_index": image_index,
        "program": prog,
        "question_index": index,
        "image_filename": f"CLEVR_val_{image_index:06d}.png",
        "question_family_index": 0,
        "split": "val",
        "answer": answer,
        "question": q,
    }
    return {**d, **kw}


def clevr_object(**kw: Any) -> dict:
    d = {"color": "red", "size": "large", "rotation": 12.5, "shape": "cube", "3d_coords": [1, 2, 0.7],
         "material": "metal", "pixel_coords": [120, 200, 11.2]}  # fmt: skip
    return {**d, **kw}


def clevr_files(tmp_path: Path) -> tuple[Path, Path]:
    questions = write(
        tmp_path / "CLEVR_v1.0" / "questions" / "CLEVR_val_questions.json",
        {
            "info": {"split": "val", "version": "1.0"},
            "questions": [
                clevr_question(0, 0, "How many red things are there?", 1, COUNT_RED),
                clevr_question(1, 0, "Are there any cubes?", "yes", program(("scene", [], None), ("filter_shape", [0], "cube"), ("exist", [1], None))),
                clevr_question(2, 1, "How many red things are there?", 0, COUNT_RED),
                clevr_question(2, 1, "Again?", 0, COUNT_RED),
                clevr_question(4, 1, "Bad program?", 0, program(("scene", [], None), ("count", [3], None))),
                clevr_question(5, 1, "", 0, COUNT_RED),
                clevr_question(6, 1, "Escape?", 0, COUNT_RED, image_filename="../x.png"),
                clevr_question(7, -1, "No index?", 0, COUNT_RED, image_filename="CLEVR_val_000009.png"),
                "nope",
            ],
        },
    )  # fmt: skip
    scenes = write(
        tmp_path / "CLEVR_v1.0" / "scenes" / "CLEVR_val_scenes.json",
        {
            "info": {"split": "val"},
            "scenes": [
                {"image_index": 0, "image_filename": "CLEVR_val_000000.png", "split": "val",
                 "objects": [clevr_object(), clevr_object(color="blue", material="rubber", shape="sphere")],
                 "relationships": {"left": [[], [0]], "right": [[1], []], "front": [[], []], "behind": [[], []]}},
                {"image_index": 1, "image_filename": "CLEVR_val_000001.png", "split": "val",
                 "objects": [clevr_object(material=None)]},
                {"image_index": 2, "image_filename": "CLEVR_val_000002.png", "split": "val", "objects": []},
            ],
        },
    )  # fmt: skip
    return questions, scenes


def test_clevr_questions_programs_scenes_and_rejections(tmp_path: Path) -> None:
    questions, scenes = clevr_files(tmp_path)
    ledger = Ledger()
    res = read_clevr(questions, scenes, split="val", ledger=ledger, image_subdir="images")
    assert sorted(res.records) == [
        "clevr:CLEVR_val_000000",
        "clevr:CLEVR_val_000001",
        "clevr:CLEVR_val_000002",
    ]
    rec = res.records["clevr:CLEVR_val_000000"]
    assert rec.file_name == "images/val/CLEVR_val_000000.png" and rec.sources == ["clevr"]
    assert [o["material"] for o in rec.meta["clevr_objects"]] == ["metal", "rubber"]
    assert rec.meta["clevr_relationships"]["left"] == [[], [0]]
    count, exist = rec.qas
    assert (count.question_id, count.answers, count.question_type, count.answer_type) == (
        "val-0",
        ["1"],
        "count",
        "number",
    )
    assert (exist.answers, exist.question_type, exist.answer_type) == (["yes"], "exist", "yes/no")
    assert count.meta["program"] == COUNT_RED and count.meta["question_family_index"] == 0
    assert res.records["clevr:CLEVR_val_000002"].qas == []  # a scene alone still makes a record
    got = reasons(ledger)
    assert got == [
        ("scenes[1]", "objects[0] lacks material"),
        ("questions[3]", "duplicate question_index 2"),
        ("questions[4]", "program[1] 'inputs' must index earlier nodes"),
        ("questions[5]", "missing or empty 'question'"),
        ("questions[6]", "'image_filename' must be a file name, got '../x.png'"),
        ("questions[7]", "'image_index' must be a non-negative integer, got -1"),
        ("questions[8]", "question is not an object"),
    ]
    assert_reconciles(res, ledger, complete=True)


def test_clevr_test_split_has_no_answers(tmp_path: Path) -> None:
    q = clevr_question(0, 0, "How many red things are there?", None, None, split="test",
                       image_filename="CLEVR_test_000000.png")  # fmt: skip
    del q["answer"], q["program"]
    path = write(tmp_path / "CLEVR_test_questions.json", {"info": {}, "questions": [q]})
    (rec,) = read_clevr(path, split="test").records.values()
    assert rec.file_name == "images/test/CLEVR_test_000000.png"
    assert rec.qas[0].answers == [] and rec.qas[0].meta["program"] == []


# ---------------------------------------------------------------- spec forms


def test_spec_source_pairs_yaml_and_reconciled_load(tmp_path: Path) -> None:
    questions, scenes = clevr_files(tmp_path)
    write(tmp_path / "ocr" / "dataset.json", {"1588345297": book()})
    vsr = vsr_file(tmp_path)
    spec = spec_from_pairs(
        [
            f"coco={coco_files(tmp_path)}",
            "coco_image_subdir=train2017",
            f"ocrvqa={tmp_path / 'ocr' / 'dataset.json'}",
            f"vsr={vsr}",
            f"clevr={questions}",
            f"clevr.scenes={scenes}",
            "clevr.image_subdir=CLEVR_v1.0/images",
        ],
        image_root=tmp_path,
        split="train",
    )
    assert spec.clevr is not None and spec.clevr.image_subdir == "CLEVR_v1.0/images"
    assert [p.name for p in spec.input_files()] == [
        "instances_train2017.json", "dataset.json", "train.jsonl", "CLEVR_val_questions.json", "CLEVR_val_scenes.json"
    ]  # fmt: skip
    ledger = Ledger()
    res = load_sources(spec, ledger)
    keys = {r.image_id for r in res.records}
    assert {"239417", "224670", "ocrvqa:1588345297", "clevr:CLEVR_val_000000"} <= keys
    assert res.images_in == len(res.records) + res.rejected
    yaml_path = tmp_path / "sources.yaml"
    yaml_path.write_text(
        "image_root: .\nsplit: train\nocrvqa: {dataset: ocr/dataset.json, image_subdir: covers}\n"
        "vsr: {statements: splits/random/train.jsonl}\n"
    )
    spec2 = load_spec_file(yaml_path)
    assert spec2.ocrvqa is not None and spec2.ocrvqa.dataset == tmp_path / "ocr" / "dataset.json"
    assert spec2.vsr is not None and spec2.vsr.statements == vsr
    with pytest.raises(ValueError, match=r"vsr\.oops: Extra inputs"):
        load_spec_file(
            write(tmp_path / "bad.yaml", {"image_root": ".", "vsr": {"statements": "x", "oops": 1}})
        )
