"""A-OKVQA, OK-VQA and VizWiz tasks built from the session's small world (conftest `tiny_world`),
checked against the raw files and against the drawn scenes (rebuilt from the seed)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from tasks_helpers import build, parse_options, user_input
from vitune.data.ledger import Ledger
from vitune.sources.merge import load_world
from vitune.sources.okvqa import KNOWLEDGE_CATEGORIES
from vitune.tasks.build import build_instances
from vitune.tasks.spec import registry
from vitune.world import generate_world
from vitune.world.generate import COCO_ID_BASE, build_scene, coco_image_id
from vitune.world.scene import Scene, SceneObject

SEED = 3  # conftest's tiny_world
TASKS = {
    "aokvqa_mc": "outside knowledge",
    "aokvqa_direct_answer": "outside knowledge",
    "aokvqa_mc_rationale": "rationale and script generation",
    "aokvqa_answer_rationale": "rationale and script generation",
    "aokvqa_explain_answer": "rationale and script generation",
    "okvqa_short_answer": "outside knowledge",
    "okvqa_sentence_answer": "outside knowledge",
    "okvqa_mc": "outside knowledge",
    "okvqa_knowledge_category": "knowledge extraction",
    "vizwiz_answer": "perception",
    "vizwiz_answerable": "image quality classification",
    "vizwiz_answer_type": "reasoning",
}
# The knowledge the world's questions rely on, written out independently of world/vf/knowledge.py:
# question prefix -> shape or colour of the object referred to -> accepted main answer.
FACTS = {
    "How many sides": {"triangle": "3", "square": "4", "hexagon": "6", "diamond": "4"},
    "How many points": {"star": "5"},
    "How many corners": {"circle": "0"},
    "Which road sign": {"triangle": "yield sign"},
    "Which board game": {"square": "chess"},
    "Which insect": {"hexagon": "bee"},
    "Which playing card suit": {"diamond": "diamonds"},
    "Which sea animal": {"star": "starfish"},
    "Which part of a bicycle": {"circle": "wheel"},
    "Name a fruit": {"red": "strawberry", "orange": "orange", "yellow": "banana", "green": "lime",
                     "purple": "grape", "blue": "blueberry"},
    "If a traffic light": {"red": "stop", "green": "go", "yellow": "slow down"},
    "What weather": {"gray": "rain", "blue": "sunny"},
}  # fmt: skip


@pytest.fixture(scope="module")
def world(tiny_world) -> tuple[Path, list]:
    root = tiny_world[0]
    ledger = Ledger()
    records = load_world(root, "train", ledger, extras=True)
    assert len(ledger) == 0, ledger.summary()
    return root, records


def _scene(image_id: str | int) -> Scene:
    idx = (int(image_id) - COCO_ID_BASE) // 7
    assert coco_image_id(SEED, idx) == int(image_id)
    return build_scene(SEED, idx)


def _referent(scene: Scene, question: str) -> tuple[SceneObject, bool]:
    """The one object a knowledge question refers to ("the <colour> shape" or "the <shape>"), and
    whether it was named by its colour (then the question is about its shape)."""
    by_color = re.findall(r"the (\w+) shape\b", question)
    if by_color:
        (obj,) = [o for o in scene.objects if o.color == by_color[-1]]
    else:
        shape = re.search(r"the (circle|square|triangle|star|hexagon|diamond|sign)\b", question).group(1)
        (obj,) = [o for o in scene.objects if o.shape == shape]
    return obj, bool(by_color)


def _check_fact(scene: Scene, question: str, answer: str) -> None:
    obj, about_shape = _referent(scene, question)
    prefix = next(p for p in FACTS if question.startswith(p))
    assert answer == FACTS[prefix][obj.shape if about_shape else obj.color], question
    if prefix == "How many sides":  # the drawn polygon itself
        assert len(obj.polygon) == int(answer)
    if prefix == "How many points":
        assert len(obj.polygon) // 2 == int(answer)


def _aokvqa(root: Path, split: str = "train") -> dict[str, dict]:
    return {
        e["question_id"]: e for e in json.loads((root / "aokvqa" / f"aokvqa_v1p0_{split}.json").read_text())
    }


def _okvqa(root: Path, split: str = "train") -> dict[str, dict]:
    questions = json.loads((root / "okvqa" / f"OpenEnded_mscoco_{split}_questions.json").read_text())
    anns = json.loads((root / "okvqa" / f"mscoco_{split}_annotations.json").read_text())["annotations"]
    q = {x["question_id"]: x for x in questions["questions"]}
    return {str(a["question_id"]): {**a, "question": q[a["question_id"]]["question"]} for a in anns}


def test_twelve_tasks_in_vision_flan_categories_all_build(world):
    _, records = world
    assert {n: registry()[n].spec.category for n in TASKS} == TASKS
    ledger = Ledger()
    got = Counter(i.task for i in build_instances(records, sorted(TASKS), seed=0, ledger=ledger))
    assert set(got) == set(TASKS) and len(ledger) == 0, (got, ledger.summary())


def test_aokvqa_choices_direct_answers_and_the_drawn_truth(world):
    root, records = world
    entries = _aokvqa(root)
    mc = build(records, "aokvqa_mc")
    assert len(mc) == len(entries)
    for inst in mc:
        e = entries[inst.meta["question_id"]]
        texts, _, text = parse_options(inst)
        assert texts == e["choices"] and text == e["choices"][e["correct_choice_idx"]]  # the file's order
        assert user_input(inst, "aokvqa_mc").startswith(f"Question: {e['question']}\n")
        _check_fact(_scene(e["image_id"]), e["question"], text)
    direct = build(records, "aokvqa_direct_answer")
    assert len(direct) == sum(1 for e in entries.values() if not e["difficult_direct_answer"])
    for inst in direct:
        e = entries[inst.meta["question_id"]]
        assert inst.turns[1].text == Counter(e["direct_answers"]).most_common(1)[0][0]
        assert user_input(inst, "aokvqa_direct_answer") == e["question"]


def test_aokvqa_rationales_cite_the_answer_and_what_is_seen(world):
    root, records = world
    entries = _aokvqa(root)
    for task in ("aokvqa_mc_rationale", "aokvqa_answer_rationale", "aokvqa_explain_answer"):
        for inst in build(records, task):
            e = entries[inst.meta["question_id"]]
            answer = e["choices"][e["correct_choice_idx"]]
            target = inst.turns[1].text
            if task == "aokvqa_mc_rationale":
                m = re.fullmatch(r"The answer is (\([a-d]\) [^.]+)\. (.+)", target)
                assert m and m.group(2) in e["rationales"], target
                assert m.group(1) in inst.turns[0].text and m.group(1).endswith(f") {answer}")
            elif task == "aokvqa_answer_rationale":
                assert target.startswith(f"The answer is {answer}. ")
                assert target[len(f"The answer is {answer}. ") :] in e["rationales"]
            else:
                assert user_input(inst, task) == f"Question: {e['question']}\nAnswer: {answer}"
                assert target in e["rationales"]
            obj, _ = _referent(_scene(e["image_id"]), e["question"])
            assert obj.shape in target or obj.color in target


def test_okvqa_answers_options_and_knowledge_categories(world):
    root, records = world
    anns = _okvqa(root)
    short = build(records, "okvqa_short_answer")
    assert len(short) == len(anns)
    for inst in short:
        a = anns[inst.meta["question_id"]]
        answers = [x["answer"] for x in a["answers"]]
        assert inst.turns[1].text == Counter(answers).most_common(1)[0][0]
        _check_fact(_scene(a["image_id"]), a["question"], inst.turns[1].text)
    for inst in build(records, "okvqa_sentence_answer"):
        a = anns[inst.meta["question_id"]]
        assert (
            inst.turns[1].text
            == f"The answer to the question is {Counter(x['answer'] for x in a['answers']).most_common(1)[0][0]}."
        )
    for inst in build(records, "okvqa_mc"):
        texts, _, text = parse_options(inst)
        given = {x["answer"] for x in anns[inst.meta["question_id"]]["answers"]}
        assert text in given and not (set(texts) - {text}) & given
    for inst in build(records, "okvqa_knowledge_category"):
        texts, _, text = parse_options(inst)
        code = anns[inst.meta["question_id"]]["question_type"]
        assert text == KNOWLEDGE_CATEGORIES[code] and set(texts) <= set(KNOWLEDGE_CATEGORIES.values())
        assert len(texts) == 4


def _vizwiz_truth(scene: Scene, question: str) -> str:
    if question == "How many objects are in this picture?":
        return str(len(scene.objects))
    if question == "What does this sign say?":
        (sign,) = [o for o in scene.objects if o.text]
        return str(sign.text).lower()
    m = re.fullmatch(r"What color is the (\w+)\?", question)
    if m:
        (obj,) = [o for o in scene.objects if o.shape == m.group(1)]
        return obj.color
    shape = re.fullmatch(r"Is there a (\w+) in this picture\?", question).group(1)
    return "yes" if any(o.shape == shape for o in scene.objects) else "no"


def test_vizwiz_answers_are_true_and_unanswerable_photos_are_degraded(world):
    root, records = world
    entries = {
        e["image"]: e for e in json.loads((root / "vizwiz" / "annotations" / "train.json").read_text())
    }
    coco = {int(r.image_id): r for r in records if r.image_id.isdigit()}
    answers = build(records, "vizwiz_answer")
    assert len(answers) == len(entries) and {e["answerable"] for e in entries.values()} == {0, 1}
    for inst in answers:
        e = entries[Path(inst.image).name]
        idx = int(Path(inst.image).stem.rsplit("_", 1)[1])
        scene = build_scene(SEED, idx)
        photo = Image.open(root / "images" / inst.image).convert("RGB")
        original = Image.open(root / "images" / coco[coco_image_id(SEED, idx)].file_name).convert("RGB")
        if e["answerable"]:
            assert inst.turns[1].text == _vizwiz_truth(scene, e["question"])
            assert photo.size == original.size  # a copy of the image (re-encoded)
            means = zip(ImageStat.Stat(photo).mean, ImageStat.Stat(original).mean, strict=True)
            assert max(abs(a - b) for a, b in means) < 3
        else:
            assert inst.turns[1].text == "unanswerable" and e["answer_type"] == "unanswerable"
            dark = max(ImageStat.Stat(photo).mean) < 20
            cut = photo.size != original.size
            blurred = (
                ImageStat.Stat(photo.convert("L")).stddev[0]
                < 0.8 * ImageStat.Stat(original.convert("L")).stddev[0]
            )
            assert dark or cut or (blurred and e["question"] == "What does this sign say?"), e
    for inst in build(records, "vizwiz_answerable"):
        _, _, text = parse_options(inst)
        assert text == ("yes" if entries[Path(inst.image).name]["answerable"] else "no")
    for inst in build(records, "vizwiz_answer_type"):
        texts, _, text = parse_options(inst)
        assert text == entries[Path(inst.image).name]["answer_type"]
        assert sorted(texts) == ["number", "other", "unanswerable", "yes/no"]


def test_test_split_has_questions_without_answers_and_builds_nothing(tiny_world):
    root = tiny_world[0]
    test = json.loads((root / "aokvqa" / "aokvqa_v1p0_test.json").read_text())
    assert test and all(set(e) == {"split", "image_id", "question_id", "question", "choices",
                                   "difficult_direct_answer"} for e in test)  # fmt: skip
    viz = json.loads((root / "vizwiz" / "annotations" / "test.json").read_text())
    assert all(set(e) == {"image", "question"} for e in viz)
    assert not (root / "okvqa" / "OpenEnded_mscoco_test_questions.json").exists()  # no OK-VQA test split
    records = load_world(root, "test", extras=True)
    assert any(qa.source == "aokvqa" for r in records for qa in r.qas)
    assert build_instances(records, sorted(TASKS), seed=0) == []


def test_world_copies_do_not_depend_on_the_number_of_workers(tmp_path):
    def digest(root: Path) -> dict[str, str]:
        files = [
            p
            for d in ("aokvqa", "okvqa", "vizwiz", "images/vizwiz")
            for p in (root / d).rglob("*")
            if p.is_file()
        ]
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    generate_world(tmp_path / "a", 16, 11, workers=1)
    generate_world(tmp_path / "b", 16, 11, workers=2)
    a = digest(tmp_path / "a")
    assert a == digest(tmp_path / "b") and any(n.startswith("images/vizwiz/") for n in a)
