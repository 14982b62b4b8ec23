"""Tasks from COCO detection, rendered from the world's COCO files (and a hand-written COCO file),
checked against the drawn scenes: object (absent) selection, region categories, positions, box
lists and the sides of a shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks_helpers import build, make_world, norm_box, parse_options, scene_of, user_input
from vitune.data.ledger import Ledger
from vitune.sources import read_coco
from vitune.tasks.builders.objects import POSITION_BANDS, SIDES
from vitune.world import WorldLayout


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("objects_world"))


def _shapes(image_id: str) -> set[str]:
    return {o.shape for o in scene_of(image_id).objects}


def _coco_boxes(root: Path) -> dict[str, list[tuple[str, tuple[float, float, float, float]]]]:
    """image id -> (category, corner box) straight from the COCO file, not through a reader."""
    data = json.loads(WorldLayout(root).coco_instances("train").read_text())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    out: dict[str, list] = {}
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        out.setdefault(str(a["image_id"]), []).append((cats[a["category_id"]], (x, y, x + w, y + h)))
    return out


def test_object_selection(world):
    _, records = world
    got = build(records, "object_selection")
    assert len(got) == sum(1 for r in records if r.objects)
    for inst in got:
        assert user_input(inst, "object_selection").startswith("Options: (a) ")
        options, _, answer = parse_options(inst)
        shapes = _shapes(inst.meta["image_id"])
        assert len(options) == 4 and answer in shapes
        assert not (set(options) - {answer}) & shapes  # every wrong option is absent from the picture


def test_object_absent_selection(world):
    _, records = world
    got = build(records, "object_absent_selection")
    for inst in got:
        options, _, answer = parse_options(inst)
        shapes = _shapes(inst.meta["image_id"])
        assert answer not in shapes and set(options) - {answer} <= shapes
        assert 2 <= len(options) <= 4


def test_region_category_open_and_mc(world):
    root, records = world
    boxes = _coco_boxes(root)
    sizes = {r.image_id: (r.width, r.height) for r in records}
    for task in ("region_category", "region_category_mc"):
        got = build(records, task)
        assert len(got) > 30
        for inst in got:
            text = user_input(inst, task)
            box = text.split("\n")[0].removeprefix("Region: ")
            w, h = sizes[inst.meta["image_id"]]
            truth = {norm_box(b, w, h): name for name, b in boxes[inst.meta["image_id"]]}
            if task == "region_category":
                assert inst.turns[1].text == truth[box]
            else:
                options, _, answer = parse_options(inst)
                assert answer == truth[box] and len(options) == 4


def test_object_position(world):
    _, records = world
    got = build(records, "object_position")
    assert len(got) > 15
    for inst in got:
        text = user_input(inst, "object_position")
        name = text.split("\n")[0].removeprefix("Object: ")
        options, _, answer = parse_options(inst)
        assert sorted(options) == ["left", "middle", "right"]
        scene = scene_of(inst.meta["image_id"])
        (obj,) = [o for o in scene.objects if o.shape == name]  # asked only about unique names
        t = obj.center[0] / scene.width
        lo, hi = next((lo, hi) for band, lo, hi in POSITION_BANDS if band == answer)
        assert lo - 0.01 <= t <= hi + 0.01


def test_object_detection_list(world):
    root, records = world
    boxes = _coco_boxes(root)
    got = build(records, "object_detection_list")
    spec_text = "Detect every object in the image."
    for inst in got:
        assert inst.turns[0].text.startswith(spec_text) and "\n\n" not in inst.turns[0].text
        rec = next(r for r in records if r.image_id == inst.meta["image_id"])
        want = sorted(boxes[rec.image_id], key=lambda nb: (nb[1][0], nb[1][1], nb[0]))
        assert inst.turns[1].text.splitlines() == [
            f"{n}: {norm_box(b, rec.width, rec.height)}" for n, b in want
        ]


def test_shape_sides_from_the_world(world):
    _, records = world
    got = build(records, "shape_sides")
    for inst in got:
        name = user_input(inst, "shape_sides").removeprefix("Object: ")
        assert [o.shape for o in scene_of(inst.meta["image_id"]).objects].count(name) == 1
        assert inst.turns[1].text == str({"triangle": 3, "square": 4, "diamond": 4, "hexagon": 6}[name])


def test_selection_and_sides_from_a_real_coco_file(tmp_path):
    """Official COCO instances layout with real category names ("stop sign" is an octagon)."""
    cats = [{"id": 1, "name": "person"}, {"id": 13, "name": "stop sign"}, {"id": 18, "name": "dog"},
            {"id": 3, "name": "car"}, {"id": 62, "name": "chair"}, {"id": 88, "name": "teddy bear"}]  # fmt: skip
    images = [
        {"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": 640, "height": 480}
        for i in (9, 25, 30)
    ]
    anns = [
        {"id": 1, "image_id": 9, "category_id": 13, "bbox": [100, 50, 80, 80], "area": 5000.0, "iscrowd": 0},
        {"id": 2, "image_id": 9, "category_id": 1, "bbox": [300, 100, 50, 200], "area": 8000.0, "iscrowd": 0},
        {
            "id": 3,
            "image_id": 25,
            "category_id": 18,
            "bbox": [10, 10, 100, 100],
            "area": 9000.0,
            "iscrowd": 0,
        },
        {"id": 4, "image_id": 30, "category_id": 3, "bbox": [10, 10, 100, 60], "area": 5000.0, "iscrowd": 0},
        {
            "id": 5,
            "image_id": 30,
            "category_id": 62,
            "bbox": [200, 10, 60, 100],
            "area": 5000.0,
            "iscrowd": 0,
        },
        {
            "id": 6,
            "image_id": 25,
            "category_id": 88,
            "bbox": [300, 10, 60, 100],
            "area": 5000.0,
            "iscrowd": 0,
        },
    ]
    path = tmp_path / "instances_train2014.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    ledger = Ledger()
    records = sorted(
        read_coco(path, image_subdir="train2014", ledger=ledger).records.values(), key=lambda r: r.image_id
    )
    assert len(ledger) == 0
    (sides,) = build(records, "shape_sides")
    assert sides.meta["image_id"] == "9" and sides.turns[1].text == str(SIDES["stop sign"]) == "8"
    assert user_input(sides, "shape_sides") == "Object: stop sign"
    got = {i.meta["image_id"]: i for i in build(records, "object_selection", seed=2)}
    present = {"9": {"stop sign", "person"}, "25": {"dog", "teddy bear"}, "30": {"car", "chair"}}
    for iid, inst in got.items():
        options, _, answer = parse_options(inst)
        # Wrong options come from the other images (the only other categories there are).
        assert (
            answer in present[iid]
            and set(options) - {answer} <= set().union(*present.values()) - present[iid]
        )
    assert got["9"].image == "train2014/COCO_train2014_000000000009.jpg"
