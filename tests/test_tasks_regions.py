"""Tasks from Visual Genome attributes/relationships/regions and RefCOCO refs, rendered from the
world's files (and hand-written Visual Genome files), checked against the drawn scenes and the raw
annotation files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks_helpers import build, make_world, norm_box, parse_options, scene_of, user_input
from vitune.data.ledger import Ledger
from vitune.sources import read_visual_genome
from vitune.tasks.builders.regions import PREDICATE_TEXT
from vitune.world import WorldLayout
from vitune.world.facts import clear_relations


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("regions_world"))


def _find(scene, phrase: str):
    """The scene object a task's phrase ("circle" or "red circle") names; exactly one must fit."""
    words = phrase.split()
    fits = [
        k
        for k, o in enumerate(scene.objects)
        if o.shape == words[-1] and (len(words) == 1 or o.color == words[0])
    ]
    assert len(fits) == 1, (phrase, fits)
    return fits[0]


def _sizes(records) -> dict[str, tuple[int, int]]:
    return {r.image_id: (r.width, r.height) for r in records}


def test_attribute_color_mc(world):
    _, records = world
    got = build(records, "attribute_color_mc")
    assert len(got) > 25
    for inst in got:
        name = user_input(inst, "attribute_color_mc").split("\n")[0].removeprefix("Object: ")
        options, _, answer = parse_options(inst)
        scene = scene_of(inst.meta["image_id"])
        assert len(options) == 4 and answer == scene.objects[_find(scene, name)].color


def test_attribute_size(world):
    _, records = world
    got = build(records, "attribute_size")
    assert len(got) > 25
    for inst in got:
        phrase = user_input(inst, "attribute_size").split("\n")[0].removeprefix("Object: ")
        options, _, answer = parse_options(inst)
        scene = scene_of(inst.meta["image_id"])
        assert sorted(options) == ["large", "medium", "small"]
        assert answer == scene.size_class(scene.objects[_find(scene, phrase)])


def test_attribute_existence(world):
    _, records = world
    got = build(records, "attribute_existence")
    answers = [i.turns[1].text for i in got]
    assert 0.25 < answers.count("Yes") / len(answers) < 0.75
    for inst in got:
        q = user_input(inst, "attribute_existence")
        color, name = q.removeprefix("Is there ").removesuffix(" in the image?").split(" ")[1:]
        exists = any(o.color == color and o.shape == name for o in scene_of(inst.meta["image_id"]).objects)
        assert inst.turns[1].text == ("Yes" if exists else "No")


def test_existence_negatives_only_where_visual_genome_rules_them_out(tmp_path):
    """Hand-written VG files: one car has no colour annotation, so "is there a blue car" cannot be
    answered no; the dog is annotated brown, so other colours can."""
    objects = [{"image_id": 1, "objects": [
        {"object_id": 11, "x": 0, "y": 0, "w": 50, "h": 50, "names": ["car"], "synsets": ["car.n.01"]},
        {"object_id": 12, "x": 60, "y": 0, "w": 50, "h": 50, "names": ["car"], "synsets": ["car.n.01"]},
        {"object_id": 13, "x": 0, "y": 60, "w": 50, "h": 50, "names": ["dog"], "synsets": ["dog.n.01"]},
    ]}]  # fmt: skip
    attributes = [{"image_id": 1, "attributes": [
        {"object_id": 11, "x": 0, "y": 0, "w": 50, "h": 50, "names": ["car"], "attributes": ["red"]},
        {"object_id": 13, "x": 0, "y": 60, "w": 50, "h": 50, "names": ["dog"], "attributes": ["brown", "small"]},
    ]}]  # fmt: skip
    image_data = [{"image_id": 1, "width": 200, "height": 200, "coco_id": None, "flickr_id": None, "url": ""},
                  {"image_id": 2, "width": 200, "height": 200, "coco_id": None, "flickr_id": None, "url": ""}]  # fmt: skip
    attributes.append({"image_id": 2, "attributes": [
        {"object_id": 21, "x": 0, "y": 0, "w": 50, "h": 50, "names": ["cat"], "attributes": ["white", "blue"]},
    ]})  # fmt: skip
    for name, data in (("objects", objects), ("attributes", attributes), ("image_data", image_data)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    ledger = Ledger()
    records = list(read_visual_genome(tmp_path, ledger=ledger).records.values())
    assert len(ledger) == 0
    questions = set()
    for seed in range(40):
        for inst in build(records, "attribute_existence", seed=seed):
            q = user_input(inst, "attribute_existence")
            questions.add((inst.meta["image_id"], q, inst.turns[1].text))
    no = {q for iid, q, a in questions if a == "No" and iid == "vg:1"}
    assert no and all("dog" in q for q in no)  # never "no" about the car of unknown colour
    assert ("vg:1", "Is there a red car in the image?", "Yes") in questions
    assert all("brown" not in q for q in no) and any(" blue dog" in q or " white dog" in q for q in no)


def test_relation_predicate_mc(world):
    _, records = world
    got = build(records, "relation_predicate_mc")
    assert len(got) > 10
    for inst in got:
        sentence = user_input(inst, "relation_predicate_mc").split("\n")[0]
        subj, obj = sentence.removeprefix("The ").removesuffix(".").split(" is ___ the ")
        options, _, answer = parse_options(inst)
        scene = scene_of(inst.meta["image_id"])
        i, j = _find(scene, subj), _find(scene, obj)
        assert answer in clear_relations(scene, i, j)
        a, b = scene.objects[i], scene.objects[j]
        for wrong in set(options) - {answer}:
            assert wrong not in clear_relations(scene, i, j)
            opposite = {
                "left of": a.center[0] > b.center[0],
                "right of": a.center[0] < b.center[0],
                "above": a.center[1] > b.center[1],
                "below": a.center[1] < b.center[1],
                "bigger than": a.pixel_area < b.pixel_area,
                "smaller than": a.pixel_area > b.pixel_area,
            }
            assert opposite[wrong], (wrong, sentence)


def test_relation_verify(world):
    _, records = world
    got = build(records, "relation_verify")
    assert {i.turns[1].text for i in got} == {"Yes", "No"}
    for inst in got:
        q = user_input(inst, "relation_verify").removeprefix("Is the ").removesuffix("?")
        pred = inst.meta["predicate"]
        subj, obj = q.split(f" {PREDICATE_TEXT[pred]} the ")
        scene = scene_of(inst.meta["image_id"])
        holds = pred in clear_relations(scene, _find(scene, subj), _find(scene, obj))
        assert inst.turns[1].text == ("Yes" if holds else "No")


def _vg_regions(root: Path) -> dict[str, list[tuple[str, str]]]:
    """coco id -> (phrase, pixel corner box) from region_descriptions.json, not through a reader."""
    lay = WorldLayout(root)
    coco_of = {im["image_id"]: str(im["coco_id"]) for im in json.loads(lay.vg("image_data").read_text())}
    out: dict[str, list] = {}
    for entry in json.loads(lay.vg("region_descriptions").read_text()):
        for r in entry["regions"]:
            box = (r["x"], r["y"], r["x"] + r["width"], r["y"] + r["height"])
            out.setdefault(coco_of[r["image_id"]], []).append((r["phrase"], box))
    return out


def test_region_caption_and_phrase_grounding(world):
    root, records = world
    regions, sizes = _vg_regions(root), _sizes(records)
    for task in ("region_caption", "vg_phrase_grounding"):
        got = build(records, task)
        assert len(got) > 25
        for inst in got:
            iid = inst.meta["image_id"]
            pairs = {(p, norm_box(b, *sizes[iid])) for p, b in regions[iid]}
            text = user_input(inst, task)
            if task == "region_caption":
                assert (inst.turns[1].text, text.removeprefix("Region: ")) in pairs
            else:
                phrase = text.removeprefix("Phrase: ")
                assert [b for p, b in pairs if p == phrase] == [inst.turns[1].text]


def _refs(root: Path) -> tuple[dict[str, str], dict[int, list]]:
    """sentence+image -> COCO annotation id; annotation id -> (image id, corner box)."""
    lay = WorldLayout(root)
    sent_ann = {
        (str(r["image_id"]), s["sent"]): r["ann_id"]
        for r in json.loads(lay.refcoco_refs.read_text())
        for s in r["sentences"]
    }
    anns = {}
    for a in json.loads(lay.coco_instances("train").read_text())["annotations"]:
        x, y, w, h = a["bbox"]
        anns[a["id"]] = (str(a["image_id"]), (x, y, x + w, y + h))
    return sent_ann, anns


def test_refcoco_grounding_caption_and_selection(world):
    root, records = world
    sent_ann, anns = _refs(root)
    sizes = _sizes(records)
    for task in ("refcoco_grounding", "refcoco_region_caption", "refcoco_selection"):
        got = build(records, task)
        assert len(got) > 25
        for inst in got:
            iid = inst.meta["image_id"]
            text = user_input(inst, task)
            if task == "refcoco_region_caption":
                box = text.removeprefix("Region: ")
                ann = sent_ann[(iid, inst.turns[1].text)]
                assert norm_box(anns[ann][1], *sizes[iid]) == box
                continue
            phrase = text.split("\n")[0].removeprefix("Expression: ")
            ann = sent_ann[(iid, phrase)]
            truth = norm_box(anns[ann][1], *sizes[iid])
            assert inst.meta["object_id"] == f"coco:{ann}"
            if task == "refcoco_grounding":
                assert inst.turns[1].text == truth
            else:
                options, _, answer = parse_options(inst)
                others = {norm_box(b, *sizes[iid]) for a, (i, b) in anns.items() if i == iid and a != ann}
                assert answer == truth and set(options) - {answer} <= others
