"""The first built-in tasks: rendering, seeding, capping and the catalog."""

from __future__ import annotations

import pytest

from conftest import make_record
from vitune.data.ledger import Ledger
from vitune.tasks.build import BuildReport, build_instances
from vitune.tasks.spec import _parse_catalog, registry


def test_catalog_tasks_all_have_builders_and_categories():
    tasks = registry()
    assert {
        "coco_caption_coarse",
        "vqa_short_answer",
        "object_counting",
        "object_color",
        "object_existence",
    } <= set(tasks)
    for t in tasks.values():
        assert t.spec.instruction and t.spec.category


def test_catalog_errors_name_the_task():
    with pytest.raises(ValueError, match="task 'x': missing source"):
        _parse_catalog({"x": {"category": "c", "instruction": "i", "output": "o"}}, "cat.yaml")
    with pytest.raises(ValueError, match="unknown keys"):
        _parse_catalog(
            {"x": {"category": "c", "source": "s", "instruction": "i", "output": "o", "oops": 1}}, "cat.yaml"
        )


def test_rendered_instances(records):
    got = build_instances(records[:1], ["vqa_short_answer", "object_counting", "object_color"], seed=0)
    by_task = {i.task: i for i in got}
    vqa = by_task["vqa_short_answer"]
    assert (
        vqa.turns[0].text == "What color is the circle?\nAnswer the question using a single word or phrase."
    )
    assert vqa.turns[1].text == "red"
    count = by_task["object_counting"]
    # Counting uses COCO objects only (VG repeats them after merging): 1 circle or 2 squares.
    assert count.turns[0].text.endswith(
        ("How many circles are there in the image?", "How many squares are there in the image?")
    )
    assert count.turns[1].text == ("1" if "circles" in count.turns[0].text else "2")
    assert count.turns[0].text.startswith(
        "Count the objects of the named category in the image and answer with a number.\n\n"
    )
    color = by_task["object_color"]
    # Squares are not unique, so only the circle qualifies.
    assert color.turns[0].text.endswith("Object: circle") and color.turns[1].text == "The circle is red."
    assert vqa.image == "train/1.jpg" and vqa.meta["category"] == "perception"


def test_shape_task_needs_unique_colour():
    rec = make_record("9")
    got = build_instances([rec], ["object_shape"], seed=0)
    assert got[0].turns[1].text == "The red object is a circle."


def test_existence_is_balanced_and_truthful():
    recs = [make_record(str(i)) for i in range(400)]
    recs.append(make_record("extra", objects=[], captions=[]))
    recs[0].objects[0].name = "triangle"  # gives the vocabulary an absent category
    got = build_instances(recs, ["object_existence"], seed=3)
    yes = [i for i in got if i.turns[1].text == "Yes"]
    assert 0.4 < len(yes) / len(got) < 0.6
    for inst in got:
        name = inst.turns[0].text.split("Is there a ")[1].split(" in")[0]
        rec = next(r for r in recs if r.image_id == inst.meta["image_id"])
        present = name in {o.name for o in rec.objects if o.source == "coco"}
        assert present == (inst.turns[1].text == "Yes")


def test_same_seed_same_instances_cap_and_report():
    recs = [make_record(str(i)) for i in range(50)]
    report = BuildReport()
    a = build_instances(recs, ["object_counting", "coco_caption_coarse"], cap=20, seed=1, report=report)
    b = build_instances(recs, ["object_counting", "coco_caption_coarse"], cap=20, seed=1)
    c = build_instances(recs, ["object_counting", "coco_caption_coarse"], cap=20, seed=2)
    assert a == b and a != c
    assert report.candidates == {"object_counting": 50, "coco_caption_coarse": 50}
    assert report.kept == {"object_counting": 20, "coco_caption_coarse": 20}
    # Adding a task does not change another task's instances.
    d = build_instances(recs, ["object_color", "object_counting"], cap=20, seed=1)
    assert [i for i in d if i.task == "object_counting"] == [i for i in a if i.task == "object_counting"]


def test_template_errors_go_to_ledger_and_counts_reconcile():
    from dataclasses import replace

    from vitune.tasks.build import build_task, context_for
    from vitune.tasks.spec import get_task

    good = get_task("coco_caption_coarse")
    broken = type(good)(replace(good.spec, output="{missing_field}"), good.build)
    recs = [make_record("1"), make_record("2", captions=[])]
    ledger = Ledger()
    got = build_task(broken, recs, context_for(recs), 0, ledger)
    assert got == []
    assert [(r.locator, r.reason) for r in ledger.items] == [
        ("task=coco_caption_coarse image_id=1", "template field missing: 'missing_field'")
    ]


def test_inventory_tasks_list_sorted_unique_sets():
    rec = make_record("7")
    got = {i.task: i for i in build_instances([rec], ["color_inventory", "object_inventory"], seed=0)}
    assert got["color_inventory"].turns[1].text == "blue, green, red"
    assert got["object_inventory"].turns[1].text == "circle, square"
    assert "alphabetical order" in got["color_inventory"].turns[0].text


def test_vqa_dialog_groups_all_questions_of_an_image():
    from vitune.data.records import QA

    qas = [QA(f"q{k}", f"Question {k}?", [f"a{k}"] * 10, "other", "what") for k in range(4)]
    qas.append(QA("q9", "Unanswered?", [], "other", "what"))
    got = build_instances([make_record("3", qas=qas)], ["vqa_dialog"], seed=5)
    assert len(got) == 1
    turns = got[0].turns
    assert len(turns) == 8 and [t.role for t in turns] == ["user", "assistant"] * 4
    asked = {t.text.split("\n")[0]: turns[i + 1].text for i, t in enumerate(turns) if t.role == "user"}
    assert asked == {f"Question {k}?": f"a{k}" for k in range(4)}
    assert all(t.text.endswith("Answer the question using a single word or phrase.") for t in turns[::2])
