"""The embedded world generator: determinism, public formats, geometry and answer statistics."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitune.utils.hashing import derive_seed
from vitune.world import SPLITS, WorldLayout, generate_world
from vitune.world.generate import build_scene
from vitune.world.questions import FAMILIES, QUESTION_TYPE, make_questions
from vitune.world.scene import MAX_OCCLUSION, SHAPES, object_mask, occlusions

N = 40
SEED = 3


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, dict, list[int]]:
    root = tmp_path_factory.mktemp("world1")
    ticks: list[int] = []
    summary = generate_world(root, N, SEED, workers=1, progress=ticks.append)
    return root, summary, ticks


def _load(path: Path):
    return json.loads(path.read_text())


def test_byte_identical_across_workers_and_seed_matters(world, tmp_path):
    root, _, _ = world
    generate_world(tmp_path / "w2", N, SEED, workers=2)
    a, b = _files(root), _files(tmp_path / "w2")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    generate_world(tmp_path / "other", N, SEED + 1, workers=1)
    c = _files(tmp_path / "other")
    lay = WorldLayout(root)
    rel = str(lay.coco_instances("train").relative_to(root))
    assert c[rel] != a[rel]
    images_a = sorted(v for k, v in a.items() if k.endswith(".jpg"))
    images_c = sorted(v for k, v in c.items() if k.endswith(".jpg"))
    assert images_a != images_c


def test_summary_and_progress(world):
    root, summary, ticks = world
    assert sum(ticks) == N and all(t > 0 for t in ticks)
    assert _load(WorldLayout(root).meta) == summary
    assert summary["seed"] == SEED and summary["n_images"] == N
    assert sum(s["images"] for s in summary["splits"].values()) == N
    assert {"vitune_version", "generator_version"} <= summary.keys()


def test_coco_files_and_splits(world):
    root, summary, _ = world
    lay = WorldLayout(root)
    seen: dict[int, str] = {}
    ann_ids, cap_ids = set(), set()
    for split in SPLITS:
        inst = _load(lay.coco_instances(split))
        caps = _load(lay.coco_captions(split))
        assert {"info", "licenses", "images", "annotations", "categories"} <= inst.keys()
        assert [c["name"] for c in inst["categories"]] == list(SHAPES)
        assert caps["images"] == inst["images"]
        sizes = {}
        for im in inst["images"]:
            assert {
                "id",
                "file_name",
                "width",
                "height",
                "license",
                "coco_url",
                "date_captured",
                "flickr_url",
            } <= im.keys()
            assert im["id"] not in seen
            seen[im["id"]] = split
            path = lay.image_root / lay.image_subdir(split) / im["file_name"]
            assert im["file_name"] == lay.image_file_name(split, im["id"])
            with Image.open(path) as img:
                assert img.size == (im["width"], im["height"])
            sizes[im["id"]] = (im["width"], im["height"])
        assert summary["splits"][split]["images"] == len(inst["images"])
        for a in inst["annotations"]:
            assert a["id"] not in ann_ids
            ann_ids.add(a["id"])
            assert a["iscrowd"] == 0 and 1 <= a["category_id"] <= len(SHAPES)
            w, h = sizes[a["image_id"]]
            x, y, bw, bh = a["bbox"]
            assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h and bw > 0 and bh > 0
            poly = a["segmentation"][0]
            xs, ys = poly[0::2], poly[1::2]
            assert min(xs) == pytest.approx(x, abs=0.02) and max(ys) == pytest.approx(y + bh, abs=0.02)
            assert 0 < a["area"] <= bw * bh + 1
        per_image = Counter(c["image_id"] for c in caps["annotations"])
        assert set(per_image) == set(sizes) and set(per_image.values()) == {5}
        for c in caps["annotations"]:
            assert c["id"] not in cap_ids and len(c["caption"]) > 10
            cap_ids.add(c["id"])
        texts = {}
        for c in caps["annotations"]:
            texts.setdefault(c["image_id"], set()).add(c["caption"])
        assert all(len(t) == 5 for t in texts.values())
    assert len(seen) == N  # disjoint (checked above) and covering
    assert Counter(seen.values())["train"] == round(0.8 * N)


def test_visual_genome(world):
    root, _, _ = world
    lay = WorldLayout(root)
    image_data = _load(lay.vg("image_data"))
    objects = _load(lay.vg("objects"))
    attributes = _load(lay.vg("attributes"))
    relationships = _load(lay.vg("relationships"))
    regions = _load(lay.vg("region_descriptions"))
    coco_ids = set()
    for split in SPLITS:
        coco_ids |= {im["id"] for im in _load(lay.coco_instances(split))["images"]}
    assert {d["coco_id"] for d in image_data} == coco_ids
    assert all(d["image_id"] != d["coco_id"] for d in image_data)
    assert all({"image_id", "url", "width", "height", "coco_id", "flickr_id"} <= d.keys() for d in image_data)
    dims = {d["image_id"]: (d["width"], d["height"]) for d in image_data}
    obj_ids = set()
    for entry in objects:
        assert {"image_id", "image_url", "objects"} <= entry.keys()
        for o in entry["objects"]:
            assert {"object_id", "x", "y", "w", "h", "names", "synsets"} <= o.keys()
            w, h = dims[entry["image_id"]]
            assert o["x"] >= 0 and o["x"] + o["w"] <= w and o["y"] >= 0 and o["y"] + o["h"] <= h
            assert o["object_id"] not in obj_ids
            obj_ids.add(o["object_id"])
    n_text = 0
    for entry in attributes:
        for a in entry["attributes"]:
            assert a["object_id"] in obj_ids and len(a["attributes"]) >= 2
            n_text += any(x.startswith("text:") for x in a["attributes"])
            assert a["names"] == ["sign"] or not any(x.startswith("text:") for x in a["attributes"])
    assert n_text > 0
    predicates = Counter()
    for entry in relationships:
        for r in entry["relationships"]:
            assert {"relationship_id", "predicate", "synsets", "subject", "object"} <= r.keys()
            assert r["subject"]["object_id"] in obj_ids and "name" in r["object"]
            predicates[r["predicate"]] += 1
    assert {"left of", "right of", "above", "below"} <= set(predicates)
    for entry in regions:
        assert {"id", "regions"} <= entry.keys()
        for g in entry["regions"]:
            assert {"region_id", "image_id", "phrase", "x", "y", "width", "height"} <= g.keys()
            assert g["image_id"] == entry["id"]


def test_vqav2_files(world):
    root, _, _ = world
    lay = WorldLayout(root)
    qids = set()
    types = Counter()
    for split in SPLITS:
        qs = _load(lay.vqa_questions(split))
        an = _load(lay.vqa_annotations(split))
        assert qs["task_type"] == "Open-Ended" and qs["data_type"] == "mscoco" and qs["data_subtype"] == split
        assert {"info", "license", "questions"} <= qs.keys() and {
            "info",
            "license",
            "annotations",
        } <= an.keys()
        images = {im["id"] for im in _load(lay.coco_instances(split))["images"]}
        by_id = {q["question_id"]: q for q in qs["questions"]}
        assert len(by_id) == len(qs["questions"]) == len(an["annotations"])
        per_image = Counter(q["image_id"] for q in qs["questions"])
        assert set(per_image) == images and min(per_image.values()) >= 3 and max(per_image.values()) <= 6
        for a in an["annotations"]:
            q = by_id[a["question_id"]]
            assert q["image_id"] == a["image_id"] and a["question_id"] // 1000 == a["image_id"]
            assert a["question_id"] not in qids
            qids.add(a["question_id"])
            assert [x["answer_id"] for x in a["answers"]] == list(range(1, 11))
            assert all(x["answer_confidence"] in ("yes", "maybe", "no") for x in a["answers"])
            counts = Counter(x["answer"] for x in a["answers"])
            assert counts[a["multiple_choice_answer"]] == max(counts.values())
            assert a["question_type"] in QUESTION_TYPE.values()
            assert q["question"].lower().startswith(a["question_type"])
            expected = {"how many": "number", "is there a": "yes/no", "is the": "yes/no"}
            assert a["answer_type"] == expected.get(a["question_type"], "other")
            types[a["question_type"]] += 1
    assert set(types) == set(QUESTION_TYPE.values())


def test_scene_geometry_and_occlusion_bound():
    for idx in range(150):
        scene = build_scene(SEED, idx)
        assert 1 <= len(scene.objects) <= 6
        occ = occlusions(scene)
        assert max(occ) <= MAX_OCCLUSION + 1e-9
        short = min(scene.width, scene.height)
        masks = [object_mask(o, scene.width, scene.height) for o in scene.objects]
        for i, o in enumerate(scene.objects):
            x0, y0, x1, y1 = o.box
            assert min(x1 - x0, y1 - y0) >= 0.13 * short
            assert o.occlusion == pytest.approx(occ[i], abs=1e-9)
            if o.text:
                tx0, ty0, tx1, ty1 = o.text_box
                for m in masks[i + 1 :]:
                    assert not m[ty0:ty1, tx0:tx1].any(), "sign text must never be covered"


def test_pixels_show_object_colour(world):
    root, _, _ = world
    lay = WorldLayout(root)
    # The generator numbers VG images 1..n in index order; image_data links them to COCO ids.
    index_of = {d["coco_id"]: d["image_id"] - 1 for d in _load(lay.vg("image_data"))}
    checked = 0
    for split in SPLITS:
        for im in _load(lay.coco_instances(split))["images"]:
            scene = build_scene(SEED, index_of[im["id"]])
            arr = np.asarray(Image.open(lay.image_root / split / im["file_name"]).convert("RGB"), dtype=int)
            for o in scene.objects:
                if o.text or o.occlusion > 0:
                    continue
                cx, cy = (round(v) for v in o.center)
                patch = arr[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3).mean(axis=0)
                assert np.abs(patch - np.array(o.rgb)).max() < 30, (im["file_name"], o.shape, o.color)
                checked += 1
    assert checked > N


def test_question_statistics():
    fams: dict[str, list[dict]] = {f: [] for f in FAMILIES}
    for idx in range(300):
        scene = build_scene(SEED, idx)
        for q in make_questions(scene, random.Random(derive_seed(SEED, "image", idx, "questions"))):
            fams[q["family"]].append(q)
            assert len(q["answers"]) == 10
    total = sum(len(v) for v in fams.values())
    for fam, qs in fams.items():
        assert len(qs) > total / len(FAMILIES) / 2.5, (fam, len(qs))  # every family, roughly balanced
    yes = sum(q["truth"] == "yes" for q in fams["exist"]) / len(fams["exist"])
    assert 0.3 < yes < 0.7
    yes = sum(q["truth"] == "yes" for q in fams["relation"]) / len(fams["relation"])
    assert 0.3 < yes < 0.7
    assert len({q["truth"] for q in fams["color"]}) > 3
    assert len({q["truth"] for q in fams["shape"]}) > 3
    assert len({q["truth"] for q in fams["count"]}) >= 3
    all_q = [q for qs in fams.values() for q in qs]
    split = [q for q in all_q if len({a["answer"] for a in q["answers"]}) > 1]
    assert 0.05 < len(split) / len(all_q) < 0.5  # annotators mostly agree, but not always
    spellings = {a["answer"] for q in all_q for a in q["answers"]}
    assert "grey" in spellings or any(w in spellings for w in ("one", "two", "three"))
