"""OCR-VQA, VSR and CLEVR tasks built from the session's small world, checked against the world's
ground truth: the OCR-VQA file and the covers' palettes, the drawn scenes' geometry (VSR) and the
CLEVR programs re-run on the CLEVR scenes."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from PIL import Image

from tasks_helpers import build, parse_options, user_input
from vitune.data.ledger import Ledger
from vitune.sources.merge import load_world
from vitune.tasks.spec import get_task, registry
from vitune.world.facts import referents
from vitune.world.generate import COCO_ID_BASE, build_scene
from vitune.world.layout import WorldLayout
from vitune.world.vf import clevr as world_clevr
from vitune.world.vf import ocrvqa as world_ocrvqa
from vitune.world.vf import vsr as world_vsr
from vitune.world.vf.clevr_scene import execute

SEED = 3  # conftest's tiny_world
NEW = {
    "ocrvqa_question_answering": "OCR",
    "ocrvqa_title": "OCR",
    "ocrvqa_author": "OCR",
    "ocrvqa_genre_mc": "special-domain object classification",
    "ocrvqa_genre_open": "special-domain object classification",
    "ocrvqa_genre_yes_no": "special-domain object classification",
    "vsr_true_false": "image-text matching",
    "vsr_relation_selection": "reasoning",
    "vsr_caption_selection": "image-text matching",
    "clevr_question_answering": "reasoning",
    "clevr_counting": "perception",
    "clevr_existence": "perception",
    "clevr_attribute_comparison": "reasoning",
    "clevr_number_comparison": "reasoning",
    "clevr_material": "image texture classification",
    "clevr_material_mc": "image texture classification",
}


@pytest.fixture(scope="module")
def world(tiny_world):
    root, _ = tiny_world
    ledger = Ledger()
    records = load_world(root, "train", ledger, extras=True)
    assert len(ledger) == 0, ledger.summary()
    return root, records


def test_the_new_tasks_are_in_the_catalog_with_their_categories():
    tasks = registry()
    assert {n: tasks[n].spec.category for n in NEW} == NEW


def test_every_new_task_builds_and_multiple_choice_is_well_formed(world):
    _, records = world
    for name in NEW:
        got = build(records, name)
        if get_task(name).spec.options is not None:
            for inst in got:
                parse_options(inst)


def _books(root) -> dict[str, dict]:
    return json.loads(world_ocrvqa.dataset_file(WorldLayout(root)).read_text())


def test_ocrvqa_tasks_read_the_book_file(world):
    root, records = world
    books = _books(root)
    qa = build(records, "ocrvqa_question_answering")
    assert len(qa) == sum(len(b["questions"]) for b in books.values() if b["split"] == 1)
    for inst in qa:
        book_id, k = inst.meta["question_id"].rsplit("-", 1)
        b = books[book_id]
        assert user_input(inst, "ocrvqa_question_answering") == b["questions"][int(k)]
        assert inst.turns[1].text == b["answers"][int(k)]
    for inst in build(records, "ocrvqa_title"):
        assert inst.turns[1].text == books[inst.image.split("/")[-1][:-4]]["title"]
    for inst in build(records, "ocrvqa_author"):
        b = books[inst.image.split("/")[-1][:-4]]
        assert inst.turns[1].text == f"The book was written by {b['authorName']}."
    answers = Counter()
    for inst in build(records, "ocrvqa_genre_yes_no"):
        genre = books[inst.image.split("/")[-1][:-4]]["genre"]
        asked = user_input(inst, "ocrvqa_genre_yes_no")[len("Is this book related to ") : -1]
        assert inst.turns[1].text == ("Yes" if asked == genre else "No")
        answers[inst.turns[1].text] += 1
    assert set(answers) == {"Yes", "No"}


def test_ocrvqa_genre_is_on_the_cover(world):
    """The genre tasks are learnable: each cover is painted in its genre's background colour."""
    root, records = world
    books = _books(root)
    for inst in build(records, "ocrvqa_genre_mc"):
        texts, _, answer = parse_options(inst)
        genre = books[inst.image.split("/")[-1][:-4]]["genre"]
        assert answer == genre and len(texts) == 4 and set(texts) <= set(world_ocrvqa.GENRES)
        with Image.open(WorldLayout(root).image_root / inst.image) as im:
            pixel = im.convert("RGB").getpixel((3, 100))
        assert max(abs(a - b) for a, b in zip(pixel, world_ocrvqa.GENRES[genre][0], strict=True)) < 12
    for inst in build(records, "ocrvqa_genre_open"):
        genre = books[inst.image.split("/")[-1][:-4]]["genre"]
        assert inst.turns[1].text == f"The genre of this book is {genre}."


def _scene(image_id: str):
    return build_scene(SEED, (int(image_id) - COCO_ID_BASE) // 7)


def _holds(image_id: str, subj: str, relation: str, obj: str) -> bool:
    scene = _scene(image_id)
    names = referents(scene)
    return relation in world_vsr.true_relations(scene, names.index(subj), names.index(obj))


def test_vsr_statements_agree_with_the_drawn_scene(world):
    _, records = world
    got = build(records, "vsr_true_false")
    labels = Counter()
    for inst in got:
        qa = next(q for q in _record(records, inst).qas if q.question_id == inst.meta["question_id"])
        truth = _holds(inst.meta["image_id"], qa.meta["subj"], qa.meta["relation"], qa.meta["obj"])
        assert inst.turns[1].text == ("True" if truth else "False")
        assert user_input(inst, "vsr_true_false") == f"Statement: {qa.question}"
        labels[inst.turns[1].text] += 1
    assert labels["True"] and labels["False"]


def _record(records, inst):
    return next(r for r in records if r.image_id == inst.meta["image_id"])


def test_vsr_relation_and_caption_selection_have_one_true_option(world):
    _, records = world
    for inst in build(records, "vsr_relation_selection"):
        texts, _, answer = parse_options(inst)
        first = user_input(inst, "vsr_relation_selection").splitlines()[0]
        subj, obj = first[len("The ") : -1].split(" is ___ the ")
        assert [t for t in texts if _holds(inst.meta["image_id"], subj, t, obj)] == [answer]
    for inst in build(records, "vsr_caption_selection"):
        texts, _, answer = parse_options(inst)
        statements = {q.question: q for q in _record(records, inst).qas if q.source == "vsr"}
        assert statements[answer].meta["label"] == 1
        for t in texts:
            if t != answer and t in statements:
                assert statements[t].meta["label"] == 0


def _clevr(root) -> tuple[dict, dict]:
    layout = WorldLayout(root)
    qs = json.loads(world_clevr.questions_file(layout, "train").read_text())["questions"]
    scenes = json.loads(world_clevr.scenes_file(layout, "train").read_text())["scenes"]
    return {f"train-{q['question_index']}": q for q in qs}, {s["image_filename"]: s for s in scenes}


def test_clevr_answers_are_the_programs_run_on_the_scenes(world):
    root, records = world
    questions, scenes = _clevr(root)
    qa = build(records, "clevr_question_answering")
    assert len(qa) == len(questions)
    for inst in qa:
        q = questions[inst.meta["question_id"]]
        objects = scenes[q["image_filename"]]["objects"]
        assert inst.turns[1].text == q["answer"] == execute(q["program"], objects)
        assert inst.image == f"clevr/train/{q['image_filename']}"
    families = {
        "clevr_counting": lambda t: t == "count",
        "clevr_existence": lambda t: t == "exist",
        "clevr_attribute_comparison": lambda t: t.startswith("equal_") and t != "equal_integer",
        "clevr_number_comparison": lambda t: t in ("greater_than", "less_than", "equal_integer"),
    }
    for task, keep in families.items():
        for inst in build(records, task):
            q = questions[inst.meta["question_id"]]
            assert keep(q["program"][-1]["function"]) and user_input(inst, task) == q["question"]
            if task == "clevr_counting":
                assert inst.turns[1].text.isdigit()
            else:
                assert inst.turns[1].text in ("yes", "no")


def test_clevr_material_names_one_object_and_its_material(world):
    root, records = world
    _, scenes = _clevr(root)
    for task in ("clevr_material", "clevr_material_mc"):
        for inst in build(records, task):
            objects = scenes[inst.image.split("/")[-1]]["objects"]
            name = user_input(inst, task).splitlines()[0][len("Object: the ") :]
            (obj,) = [o for o in objects if f"{o['size']} {o['color']} {o['shape']}" == name]
            if task == "clevr_material":
                assert inst.turns[1].text == f"The {name} is made of {obj['material']}."
            else:
                texts, _, answer = parse_options(inst)
                assert sorted(texts) == ["metal", "rubber"] and answer == obj["material"]
