"""The grown catalog as a whole: size and categories, catalog validation, the multiple-choice and
paraphrase engine, determinism, and that the first tasks ignore the newly merged sources."""

from __future__ import annotations

import pickle
import random
from collections import Counter

import pytest

from tasks_helpers import build, make_world, parse_options
from vitune.data.ledger import Ledger
from vitune.data.records import Box, ImageRecord, ObjectAnn
from vitune.sources.merge import load_world
from vitune.tasks.build import build_instances
from vitune.tasks.spec import BuildContext, Sample, _parse_catalog, get_task, registry

# Vision-Flan's categories (REFERENCE.md section 1); every catalog category must be one of them.
VISION_FLAN_CATEGORIES = {
    "perception", "outside knowledge", "reasoning", "OCR", "knowledge extraction",
    "semantic art understanding", "visual dialogue", "rationale and script generation",
    "coarse-grained captioning", "fine-grained captioning", "scene classification",
    "animal classification", "vehicle classification", "human activity", "facial recognition",
    "anomaly detection", "general object", "complex reasoning", "image-text matching",
    "special-domain object classification", "image style classification",
    "image quality classification", "image texture classification",
}  # fmt: skip
# The quickstart's tasks (pipeline/quickstart.py DEFAULT_TASKS) plus the VQA dialog.
FIRST_TASKS = [
    "vqa_short_answer", "object_color", "object_shape", "object_counting", "object_existence",
    "coco_caption_coarse", "color_inventory", "object_inventory", "vqa_dialog",
]  # fmt: skip


RATIONALE_MC = ("scienceqa_rationale", "aokvqa_mc_rationale")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("catalog_world"))


def test_catalog_has_40_tasks_in_8_vision_flan_categories():
    tasks = registry()
    cats = Counter(t.spec.category for t in tasks.values())
    assert len(tasks) >= 40
    assert len(cats) >= 8
    assert set(cats) <= VISION_FLAN_CATEGORIES, set(cats) - VISION_FLAN_CATEGORIES
    mc = [t for t in tasks.values() if t.spec.options is not None]
    assert len(mc) >= 10 and {t.spec.options.negatives for t in mc} == {
        "other_images",
        "other_classes",
        "given",
    }
    assert sum(1 for t in tasks.values() if t.spec.paraphrases) >= 15


def test_every_task_builds_from_the_world_and_every_mc_target_is_well_formed(world):
    _, records = world
    ledger = Ledger()
    got = build_instances(records, sorted(registry()), seed=0, ledger=ledger)
    per_task = Counter(i.task for i in got)
    assert set(per_task) == set(registry()), set(registry()) - set(per_task)
    # The only refusals a 48-image world may cause: too few distinct count answers for 4 options.
    assert all("vqa_multiple_choice" in r.locator and "wrong options" in r.reason for r in ledger.items)
    for inst in got:
        assert inst.turns and all(t.text.strip() for t in inst.turns), inst.id
        # The rationale tasks wrap the choice in a sentence ("The answer is (a) X. Because ...").
        if get_task(inst.task).spec.options is not None and inst.task not in RATIONALE_MC:
            parse_options(inst)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_task_shows_samples_from_a_40_image_world(tmp_path, seed):
    """What `vitune tasks show NAME` renders (a 40-image world, train split, 3 samples per task),
    once it reads the world with `extras=True`."""
    from vitune.world import generate_world

    generate_world(tmp_path, 40, seed, workers=1)
    records = load_world(tmp_path, "train", Ledger(), extras=True)
    got = Counter(i.task for i in build_instances(records, sorted(registry()), cap=3, seed=seed))
    assert {t for t in registry() if got[t] == 0} == set()


def test_first_tasks_ignore_the_extra_sources(world):
    """The records of `extras=True` carry GQA QAs, RefCOCO regions and whole new records (TextVQA,
    ScienceQA, class folders); the first tasks must build exactly what they build without them."""
    root, with_extras = world
    plain = load_world(root, "train", Ledger())
    assert len(with_extras) > len(plain)
    assert any(qa.source == "gqa" for r in with_extras for qa in r.qas)
    a = build_instances(plain, FIRST_TASKS, seed=4)
    b = build_instances(with_extras, FIRST_TASKS, seed=4)
    assert a == b and a


def test_same_seed_same_instances_other_seed_other_options(world):
    _, records = world
    names = ["object_selection", "caption_selection", "vqa_multiple_choice", "image_classification_mc"]
    a = build_instances(records, names, seed=1)
    assert a == build_instances(records, names, seed=1)
    c = build_instances(records, names, seed=2)
    assert [i.meta.get("options") for i in a] != [i.meta.get("options") for i in c]
    # Option order is shuffled: the answer's letter is not always the same.
    letters = Counter(i.meta["answer"] for i in a if i.task == "object_selection")
    assert len(letters) >= 3


def test_paraphrases_off_by_default_and_seeded_when_on(world):
    _, records = world
    task = get_task("object_selection")
    allowed = {task.spec.instruction, *task.spec.paraphrases}
    off = build(records, "object_selection", seed=3)
    assert {i.turns[0].text.split("\n\n")[0] for i in off} == {task.spec.instruction}
    ctx = BuildContext.from_records(records, paraphrase=True)
    on = []
    for rec in records:
        for s in task.build(rec, random.Random(hash_seed(rec.image_id)), ctx):
            on.append((s, task.spec.render(s)))
    used = {user.split("\n\n")[0] for _, ((user, _),) in on}
    assert used <= allowed and len(used) >= 3
    # Paraphrases change only the instruction: the same options and answers as with them off.
    ctx_off = BuildContext.from_records(records)
    again = [s for rec in records for s in task.build(rec, random.Random(hash_seed(rec.image_id)), ctx_off)]
    assert [s.meta for s, _ in on] == [s.meta for s in again]


def test_paraphrase_build_option(world):
    """`build_instances(paraphrase=True)`: instructions vary over the catalog's phrasings, everything
    else (options, targets) is what the default build gives."""
    _, records = world
    names = ["object_selection", "ocr_read", "vqa_short_answer"]
    plain = build_instances(records, names, seed=6)
    para = build_instances(records, names, seed=6, paraphrase=True)
    assert para == build_instances(records, names, seed=6, paraphrase=True)
    assert [(i.id, i.turns[1].text, i.meta) for i in plain] == [(i.id, i.turns[1].text, i.meta) for i in para]
    for task in ("object_selection", "ocr_read"):
        spec = get_task(task).spec
        used = {i.turns[0].text.split("\n\n")[0].split("\nOptions")[0] for i in para if i.task == task}
        assert used <= {spec.instruction, *spec.paraphrases} and len(used) >= 2
    # A task without paraphrases is unchanged.
    assert [i for i in plain if i.task == "vqa_short_answer"] == [
        i for i in para if i.task == "vqa_short_answer"
    ]


def hash_seed(image_id: str) -> int:
    from vitune.utils.hashing import derive_seed

    return derive_seed(0, "paraphrase-test", image_id)


def test_tasks_pickle_for_worker_processes():
    task = get_task("object_selection")
    back = pickle.loads(pickle.dumps(task))
    assert back.spec == task.spec and back.name == "object_selection"


def _rec(image_id: str, names: list[str]) -> ImageRecord:
    objs = [
        ObjectAnn(f"coco:{image_id}{k}", n, Box(10 * k, 10, 20, 20), [], "coco") for k, n in enumerate(names)
    ]
    return ImageRecord(image_id, f"i/{image_id}.jpg", 200, 100, objects=objs, sources=["coco"])


def test_too_few_negatives_is_a_ledgered_reason_not_a_silent_drop():
    recs = [_rec("1", ["cat", "dog"]), _rec("2", ["dog"]), _rec("3", ["cat", "bird"])]
    ledger = Ledger()
    got = build_instances(recs, ["object_selection"], seed=0, ledger=ledger)
    assert got == []  # only "bird" (or "dog") exists elsewhere: never 3 wrong options
    assert len(ledger) == 3
    assert all(
        "only" in r.reason and "wrong options" in r.reason and "pool 'objects'" in r.reason
        for r in ledger.items
    )


def test_other_images_negatives_follow_the_data_and_never_name_present_objects():
    recs = [_rec(str(i), ["cat"]) for i in range(30)]
    recs += [_rec("a", ["dog"]), _rec("b", ["bird"]), _rec("c", ["fish"]), _rec("d", ["cat", "cow"])]
    got = build_instances(recs, ["object_selection"], seed=0)
    for inst in got:
        options, _, answer = parse_options(inst)
        present = {o.name for r in recs if r.image_id == inst.meta["image_id"] for o in r.objects}
        assert answer in present and not (set(options) - {answer}) & present


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"options": {"count": 4, "negatives": "elsewhere", "pool": "objects"}}, "negatives must be one of"),
        (
            {"options": {"count": 1, "negatives": "other_images", "pool": "objects"}},
            "count must be an integer",
        ),
        ({"options": {"count": 4, "negatives": "other_images", "pool": "nope"}}, "pool must be one of"),
        ({"options": {"negatives": "other_images", "pool": "objects"}}, "count is required"),
        ({"options": {"count": 4, "negatives": "given", "colour": 1}}, "unknown option keys"),
        ({"input": "{x}", "options": {"count": 3, "negatives": "given"}}, "place {options}"),
        (
            {"output": "{answer}", "options": {"count": 3, "negatives": "given"}},
            "must use {choice} or {letter}",
        ),
        ({"paraphrases": "one"}, "'paraphrases' must be a list"),
        ({"paraphrases": ["Do it."]}, "repeats the instruction"),
    ],
)
def test_catalog_validation_names_task_and_problem(entry, message):
    base = {
        "category": "c",
        "source": "s",
        "instruction": "Do it.",
        "input": "{options}",
        "output": "{choice}",
    }
    with pytest.raises(ValueError, match="task 'x'") as e:
        _parse_catalog({"x": base | entry}, "cat.yaml")
    assert message in str(e.value)


def test_mc_sample_without_answer_is_an_error():
    spec = get_task("object_selection").spec
    from vitune.tasks.options import add_options

    with pytest.raises(ValueError, match="without an 'answer'"):
        add_options(spec, Sample({}), _rec("1", ["cat"]), random.Random(0), BuildContext())
