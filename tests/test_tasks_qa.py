"""GQA, TextVQA + OCR, ScienceQA and image-folder classification tasks, rendered from the world's
files and from hand-written files in the official formats, checked against the raw files and the
drawn scenes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tasks_helpers import build, make_world, parse_options, scene_of, user_input
from vitune.data.ledger import Ledger
from vitune.sources import merge_records, read_gqa, read_imagefolder, read_scienceqa, read_textvqa
from vitune.world import WorldLayout

SHORT = "Answer the question using a single word or phrase."


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("qa_world"))


def _gqa(root: Path) -> dict[str, dict]:
    return json.loads(WorldLayout(root).gqa_questions("train").read_text())


def test_gqa_short_and_full_answers(world):
    root, records = world
    gqa = _gqa(root)
    short = build(records, "gqa_short_answer")
    full = build(records, "gqa_full_answer")
    assert len(short) == len(full) == len(gqa)
    for inst in short:
        q = gqa[inst.meta["question_id"]]
        assert inst.turns[0].text == f"{q['question']}\n{SHORT}" and inst.turns[1].text == q["answer"]
    for inst in full:
        q = gqa[inst.meta["question_id"]]
        assert user_input(inst, "gqa_full_answer") == q["question"] and inst.turns[1].text == q["fullAnswer"]
        assert q["answer"].lower() in inst.turns[1].text.lower()


def test_gqa_dialog(world):
    root, records = world
    gqa = _gqa(root)
    got = build(records, "gqa_dialog")
    for inst in got:
        asked = inst.meta["question_ids"]
        assert len(inst.turns) == 2 * len(asked) >= 4
        for k, qid in enumerate(asked):
            assert inst.turns[2 * k].text == f"{gqa[qid]['question']}\n{SHORT}"
            assert inst.turns[2 * k + 1].text == gqa[qid]["answer"]
        mine = {qid for qid, q in gqa.items() if q["imageId"] == gqa[asked[0]]["imageId"]}
        assert set(asked) == mine


def test_gqa_from_an_official_file(tmp_path):
    (tmp_path / "val_balanced_questions.json").write_text(json.dumps({
        "02930152": {"semantic": [], "entailed": [], "equivalent": ["02930152"], "question": "Is the sky dark?",
                     "imageId": "2354786", "isBalanced": True, "groups": {"global": None, "local": "06-sky_dark"},
                     "answer": "yes", "semanticStr": "select: sky (2486325)->verify color: dark [0]",
                     "annotations": {"answer": {}, "question": {"2": "2486325"}, "fullAnswer": {"2": "2486325"}},
                     "types": {"detailed": "verifyAttr", "semantic": "attr", "structural": "verify"},
                     "fullAnswer": "Yes, the sky is dark."},
    }))  # fmt: skip
    records = merge_records([read_gqa(tmp_path / "val_balanced_questions.json", image_subdir="images")])
    (short,) = build(records, "gqa_short_answer")
    (full,) = build(records, "gqa_full_answer")
    assert short.image == "images/2354786.jpg" and short.turns[1].text == "yes"
    assert full.turns[1].text == "Yes, the sky is dark."


def _textvqa(root: Path) -> dict[int, dict]:
    return {
        q["question_id"]: q
        for q in json.loads(WorldLayout(root).textvqa_questions("train").read_text())["data"]
    }


def _sign(image_id: str) -> str:
    """The text drawn on the one sign of a world image (TextVQA ids are the image file stems)."""
    (text,) = [o.text for o in scene_of(int(image_id.split("_")[-1])).objects if o.text]
    return text


def test_textvqa_short_answer_and_ocr_reference(world):
    root, records = world
    tv = _textvqa(root)
    short = build(records, "textvqa_short_answer")
    ref = build(records, "textvqa_ocr_reference")
    assert len(short) == len(ref) == len(tv)
    for a, b in zip(short, ref, strict=True):
        q = tv[int(a.meta["question_id"])]
        sign = _sign(a.meta["image_id"])
        assert a.turns[0].text == f"{q['question']}\n{SHORT}"
        assert b.turns[0].text == f"{q['question']}\nReference OCR token: {sign}\n{SHORT}"
        truth = {"how many characters are written on the sign?": str(len(sign)),
                 "what is the first character on the sign?": sign[0].lower()}.get(q["question"], sign.lower())  # fmt: skip
        assert a.turns[1].text == b.turns[1].text == truth
        assert a.image == f"train/{a.meta['image_id'].removeprefix('openimages:')}.jpg"


def test_ocr_read_and_token_selection(world):
    _, records = world
    read = build(records, "ocr_read")
    assert {i.turns[0].text for i in read} == {"Read out all the text in the image, in reading order."}
    for inst in read:
        assert inst.turns[1].text == _sign(inst.meta["image_id"])
    signs = {i.meta["image_id"]: _sign(i.meta["image_id"]) for i in read}
    for inst in build(records, "ocr_token_selection"):
        options, _, answer = parse_options(inst)
        own = signs[inst.meta["image_id"]]
        assert answer == own and len(options) == 4
        assert set(options) - {answer} <= set(signs.values()) - {own}  # words of other images


def test_textvqa_with_several_ocr_tokens_from_official_files(tmp_path):
    ten = ["nokia"] * 8 + ["Nokia"] * 2
    (tmp_path / "q.json").write_text(json.dumps({"dataset_type": "train", "dataset_name": "textvqa",
        "dataset_version": "0.5.1", "data": [
            {"question": "what brand is the phone?", "image_id": "0054c91397f2fe05", "image_classes": ["Phone"],
             "flickr_original_url": "", "flickr_300k_url": "", "image_width": 1024, "image_height": 768,
             "answers": ten, "question_tokens": ["what", "brand", "is", "the", "phone"], "question_id": 34602,
             "set_name": "train"},
            {"question": "what is the logo?", "image_id": "0054c91397f2fe05", "image_classes": ["Phone"],
             "flickr_original_url": "", "flickr_300k_url": "", "image_width": 1024, "image_height": 768,
             "answers": ["TM"] * 5 + ["tm"] * 5, "question_tokens": ["what", "is", "the", "logo"],
             "question_id": 34603, "set_name": "train"}]}))  # fmt: skip
    (tmp_path / "o.json").write_text(json.dumps({"data": [
        {"image_id": "0054c91397f2fe05", "ocr_tokens": ["NOKIA", "3310", "menu"], "set_name": "train",
         "ocr_info": [{"word": w, "bounding_box": {"top_left_x": 0.1 * k, "top_left_y": 0.1, "width": 0.05,
                       "height": 0.05, "rotation": 0, "roll": 0, "pitch": 0, "yaw": 0}}
                      for k, w in enumerate(["NOKIA", "3310", "menu"])]}]}))  # fmt: skip
    records = merge_records([read_textvqa(tmp_path / "q.json", tmp_path / "o.json")])
    (read,) = build(records, "ocr_read")
    ref, logo = build(records, "textvqa_ocr_reference")
    assert read.turns[1].text == "NOKIA 3310 menu" and read.image == "train_images/0054c91397f2fe05.jpg"
    assert "Reference OCR token: NOKIA, 3310, menu" in ref.turns[0].text and ref.turns[1].text == "nokia"
    assert logo.turns[1].text == "tm"  # case is not a disagreement (the official scorer lower-cases)


def _problems(root: Path) -> dict[str, dict]:
    return json.loads(WorldLayout(root).scienceqa_problems.read_text())


def test_scienceqa_mc_and_rationale(world):
    root, records = world
    problems = _problems(root)
    mc = build(records, "scienceqa_mc")
    rationale = build(records, "scienceqa_rationale")
    assert len(mc) == len(rationale) == sum(1 for p in problems.values() if p["split"] == "train")
    for a, b in zip(mc, rationale, strict=True):
        p = problems[a.meta["question_id"]]
        options, letter, answer = parse_options(a)
        assert options == p["choices"] and answer == p["choices"][p["answer"]]  # the source's order
        hint = p["hint"] or "N/A"
        assert user_input(a, "scienceqa_mc") == (
            f"Context: {hint}\nQuestion: {p['question']}\nOptions: "
            + " ".join(f"({chr(97 + k)}) {c}" for k, c in enumerate(p["choices"]))
        )
        assert b.turns[1].text == f"The answer is ({letter}) {answer}. Because: {p['solution']}"
        assert b.turns[0].text.split("\n\n", 1)[1] == a.turns[0].text.split("\n\n", 1)[1]
        assert a.image == f"scienceqa/train/{a.meta['question_id']}/image.jpg"


def test_scienceqa_from_official_files(tmp_path):
    problems = {
        "5": {"question": "Which of these states is farthest north?", "choices": ["Texas", "Maine", "Ohio"],
              "answer": 1, "hint": "", "image": "image.png", "task": "closed choice", "grade": "grade2",
              "subject": "social science", "topic": "geography", "category": "Geography",
              "skill": "Read a map: cardinal directions", "lecture": "Maps have four cardinal directions.",
              "solution": "Maine is farthest north.", "split": "train"},
        "6": {"question": "What is 2+2?", "choices": ["3", "4"], "answer": 1, "hint": "", "image": None,
              "task": "closed choice", "grade": "grade1", "subject": "language science", "topic": "math",
              "category": "", "skill": "", "lecture": "", "solution": "", "split": "train"},
    }  # fmt: skip
    (tmp_path / "problems.json").write_text(json.dumps(problems))
    (tmp_path / "pid_splits.json").write_text(json.dumps({"train": ["5", "6"], "val": [], "test": []}))
    res = read_scienceqa(tmp_path / "problems.json", tmp_path / "pid_splits.json", split="train")
    records = merge_records([res])
    (mc,) = build(records, "scienceqa_mc")  # the text-only problem has no image record
    assert user_input(mc, "scienceqa_mc") == (
        "Context: N/A\nQuestion: Which of these states is farthest north?\nOptions: (a) Texas (b) Maine (c) Ohio"
    )
    assert mc.turns[1].text == "(b) Maine" and mc.image == "images/train/5/image.png"
    (why,) = build(records, "scienceqa_rationale")
    assert why.turns[1].text == "The answer is (b) Maine. Because: Maine is farthest north."


def test_image_classification_tasks(world):
    _, records = world
    labels = {r.image_id: r.labels[0] for r in records if r.labels}
    classes = set(labels.values())
    for task in ("image_classification_mc", "image_classification_open", "image_classification_yes_no"):
        got = build(records, task)
        assert len(got) == len(labels)
        for inst in got:
            rel = inst.image
            folder = rel.split("/")[2]  # classify/<split>/<class>/<file>
            iid = int(Path(rel).stem.split("_")[1])
            drawn = min(scene_of(iid).objects, key=lambda o: o.occlusion).shape
            assert folder == drawn == labels[inst.meta["image_id"]]
            if task == "image_classification_mc":
                options, _, answer = parse_options(inst)
                assert answer == drawn and len(options) == 4 and set(options) <= classes
            elif task == "image_classification_open":
                assert inst.turns[1].text == drawn
            else:
                q = user_input(inst, task)
                name = q.removesuffix("?").split(" ")[-1]
                assert inst.turns[1].text == ("Yes" if name == drawn else "No")
    answers = [i.turns[1].text for i in build(records, "image_classification_yes_no")]
    assert 0.25 < answers.count("Yes") / len(answers) < 0.75


def test_classification_from_an_image_folder(tmp_path):
    for cls, n in (("tabby cat", 2), ("golden retriever", 1), ("airliner", 1), ("bullet train", 1)):
        (tmp_path / cls).mkdir()
        for k in range(n):
            Image.new("RGB", (8, 8), (k * 40, 0, 0)).save(tmp_path / cls / f"{k}.png")
    ledger = Ledger()
    records = merge_records([read_imagefolder(tmp_path, ledger=ledger)])
    assert len(ledger) == 0 and len(records) == 5
    got = build(records, "image_classification_mc")
    for inst in got:
        options, _, answer = parse_options(inst)
        assert answer == inst.image.split("/")[0]
        assert sorted(options) == ["airliner", "bullet train", "golden retriever", "tabby cat"]
    yes_no = build(records, "image_classification_yes_no", seed=1)
    assert any(
        "Is this a picture of an airliner?" in i.turns[0].text
        for i in yes_no + build(records, "image_classification_yes_no", seed=2)
    )
