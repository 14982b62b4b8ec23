"""Caption and VQAv2 tasks (paragraph, image-text matching, multiple-choice VQA, counting), rendered
from the world's COCO captions / VQAv2 files and from hand-written files in the official formats,
checked against the raw files and the drawn scenes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks_helpers import build, make_world, parse_options, scene_of, user_input
from vitune.data.ledger import Ledger
from vitune.sources import merge_records, read_coco, read_vqav2
from vitune.tasks.builders.qa import _norm
from vitune.tasks.helpers import mentions
from vitune.world import WorldLayout
from vitune.world.scene import SHAPES


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("text_world"))


def _captions(root: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in json.loads(WorldLayout(root).coco_captions("train").read_text())["annotations"]:
        out.setdefault(str(a["image_id"]), []).append(a["caption"])
    return out


def _contradicts(caption: str, image_id: str) -> bool:
    """The caption names a shape the drawn scene does not have."""
    present = {o.shape for o in scene_of(image_id).objects}
    return any(s not in present and mentions(caption, s) for s in SHAPES)


def test_coco_caption_paragraph(world):
    root, records = world
    caps = _captions(root)
    got = build(records, "coco_caption_paragraph")
    assert len(got) == len(caps)
    for inst in got:
        assert inst.turns[0].text == "Describe the image in one paragraph."
        assert inst.turns[1].text == " ".join(caps[inst.meta["image_id"]])


def test_caption_selection(world):
    root, records = world
    caps = _captions(root)
    got = build(records, "caption_selection")
    assert len(got) > 0.9 * len(caps)
    for inst in got:
        iid = inst.meta["image_id"]
        assert user_input(inst, "caption_selection").startswith("Options: (a) ")
        options, _, answer = parse_options(inst)
        assert len(options) == 4 and answer in caps[iid]
        elsewhere = {c for i, cs in caps.items() if i != iid for c in cs}
        for wrong in set(options) - {answer}:
            assert wrong in elsewhere and wrong not in caps[iid] and _contradicts(wrong, iid)


def test_caption_match(world):
    root, records = world
    caps = _captions(root)
    got = build(records, "caption_match")
    answers = [i.turns[1].text for i in got]
    assert 0.3 < answers.count("Yes") / len(answers) < 0.7
    for inst in got:
        iid = inst.meta["image_id"]
        caption = user_input(inst, "caption_match").removeprefix("Caption: ")
        if inst.turns[1].text == "Yes":
            assert caption in caps[iid]
        else:
            assert caption not in caps[iid] and _contradicts(caption, iid)


def test_caption_negatives_from_real_coco_files(tmp_path):
    """COCO captions + instances in the official layout: a generic caption of another image is never
    offered as a wrong caption, one naming an absent category is."""
    images = [
        {"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": 640, "height": 480}
        for i in (1, 2, 3, 4)
    ]
    cats = [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}, {"id": 63, "name": "couch"}]
    anns = [
        {"id": 10, "image_id": 1, "category_id": 18, "bbox": [0, 0, 10, 10], "area": 100.0, "iscrowd": 0},
        {"id": 11, "image_id": 2, "category_id": 17, "bbox": [0, 0, 10, 10], "area": 100.0, "iscrowd": 0},
        {"id": 12, "image_id": 3, "category_id": 63, "bbox": [0, 0, 10, 10], "area": 100.0, "iscrowd": 0},
        {"id": 13, "image_id": 4, "category_id": 18, "bbox": [0, 0, 10, 10], "area": 100.0, "iscrowd": 0},
    ]
    caps = [
        {"id": 1, "image_id": 1, "caption": "A dog sleeping on the floor"},
        {"id": 2, "image_id": 2, "caption": "a cat looking out of a window."},
        {"id": 3, "image_id": 3, "caption": "A red couch in a living room."},
        {"id": 4, "image_id": 4, "caption": "A picture of something nice."},  # generic: never a negative
        {"id": 5, "image_id": 2, "caption": "Two cats play."},
    ]
    (tmp_path / "i.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (tmp_path / "c.json").write_text(json.dumps({"images": images, "annotations": caps}))
    ledger = Ledger()
    records = merge_records([read_coco(tmp_path / "i.json", tmp_path / "c.json", ledger=ledger)])
    assert len(ledger) == 0
    for seed in range(10):
        for inst in build(records, "caption_selection", seed=seed):
            options, _, answer = parse_options(inst)
            assert "A picture of something nice." not in set(options) - {answer}
            if inst.meta["image_id"] == "1":
                assert answer == "A dog sleeping on the floor"
                assert set(options) - {answer} == {
                    "a cat looking out of a window.",
                    "A red couch in a living room.",
                    "Two cats play.",
                }
    # Image 4's dog means "A dog sleeping on the floor" is no negative for it: only 3 remain.
    got = {i.meta["image_id"]: i for i in build(records, "caption_selection", seed=0)}
    assert set(parse_options(got["4"])[0]) == {
        "A picture of something nice.",
        "a cat looking out of a window.",
        "A red couch in a living room.",
        "Two cats play.",
    }


def _vqa(root: Path) -> dict[int, dict]:
    lay = WorldLayout(root)
    qs = {q["question_id"]: q for q in json.loads(lay.vqa_questions("train").read_text())["questions"]}
    for a in json.loads(lay.vqa_annotations("train").read_text())["annotations"]:
        qs[a["question_id"]] |= a
    return qs


def test_vqa_multiple_choice(world):
    root, records = world
    vqa = _vqa(root)
    got = build(records, "vqa_multiple_choice")
    assert len(got) > 30
    for inst in got:
        q = vqa[int(inst.meta["question_id"])]
        assert user_input(inst, "vqa_multiple_choice").split("\n")[0] == q["question"]
        options, _, answer = parse_options(inst)
        assert answer == q["multiple_choice_answer"] and q["answer_type"] != "yes/no"
        human = {_norm(a["answer"]) for a in q["answers"]}
        same_type = {
            a["answer"]
            for o in vqa.values()
            if o["question_type"] == q["question_type"]
            for a in o["answers"]
        }
        for wrong in set(options) - {answer}:
            assert _norm(wrong) not in human and wrong in same_type


def test_vqa_multiple_choice_never_offers_a_spelling_of_an_annotator_answer(tmp_path):
    """Official VQAv2 files: "two" and "2" are one answer, so "two" is never a wrong option for "2"."""
    qs, anns = [], []
    for k, (iid, answers) in enumerate(
        [(1, ["2"] * 7 + ["two"] * 3), (2, ["two"] * 10), (3, ["3"] * 10), (4, ["4"] * 10), (5, ["5"] * 10)]
    ):
        qs.append({"image_id": iid, "question": "How many dogs are there?", "question_id": k})
        anns.append({"question_id": k, "image_id": iid, "question_type": "how many", "answer_type": "number",
                     "multiple_choice_answer": answers[0],
                     "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1} for j, a in enumerate(answers)]})  # fmt: skip
    (tmp_path / "q.json").write_text(json.dumps({"questions": qs}))
    (tmp_path / "a.json").write_text(json.dumps({"annotations": anns}))
    res = read_vqav2(
        tmp_path / "q.json", tmp_path / "a.json", file_pattern="val2014/COCO_val2014_{image_id:012d}.jpg"
    )
    records = merge_records([res])
    for seed in range(8):
        first = next(i for i in build(records, "vqa_multiple_choice", seed=seed) if i.meta["image_id"] == "1")
        options, _, answer = parse_options(first)
        assert answer == "2" and sorted(options) == ["2", "3", "4", "5"]
    counting = {i.meta["image_id"]: i for i in build(records, "vqa_counting")}
    assert counting["1"].turns[0].text == "How many dogs are there? Answer the question with a number."
    assert counting["1"].turns[1].text == "2" and counting["2"].turns[1].text == "two"


def test_vqa_counting(world):
    root, records = world
    vqa = _vqa(root)
    got = build(records, "vqa_counting")
    assert got and len(got) == sum(1 for q in vqa.values() if q["answer_type"] == "number")
    for inst in got:
        q = vqa[int(inst.meta["question_id"])]
        assert inst.turns[0].text == f"{q['question']} Answer the question with a number."
        assert inst.turns[1].text == q["multiple_choice_answer"] and q["question_type"] == "how many"
        scene = scene_of(inst.meta["image_id"])
        what = q["question"].removeprefix("How many ").removesuffix(" are there?")
        truth = sum(1 for o in scene.objects if what in (o.shape + "s", f"{o.color} objects"))
        # Annotators may miss covered objects; the majority is the truth or one less.
        assert int(q["multiple_choice_answer"]) in (truth, truth - 1)
