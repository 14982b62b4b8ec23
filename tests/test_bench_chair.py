"""CHAIR: synonyms, two-word terms, plurals and the toilet-seat rule, on both ground-truth forms."""

from __future__ import annotations

import json

import pytest

from vitune.eval.benchmarks import get_benchmark
from vitune.eval.benchmarks.chair import ChairEvaluator


def test_caption_objects_rules():
    ev = ChairEvaluator()
    assert ev.caption_objects("Two men walk their dogs.")[1] == ["person", "dog"]  # plurals + synonyms
    assert ev.caption_objects("A hot dog stand.")[1] == ["hot dog"]  # two-word term, not "dog"
    assert ev.caption_objects("A baby bird and a passenger train.")[1] == ["bird", "train"]  # not person
    assert ev.caption_objects("The seat of the toilet is up.")[1] == ["toilet"]  # seat is not a chair
    assert ev.caption_objects("Wine glasses on a dining table.")[1] == ["wine glass", "dining table"]
    assert ev.caption_objects("A sedan and a puppy.")[1] == ["car", "dog"]


def test_chair_scores_on_detection_style_gt(tmp_path):
    gt = {"1": ["dog", "person"], "2": ["car"], "3": ["toilet"], "4": ["bird"]}
    path = tmp_path / "gt_objects.json"
    path.write_text(json.dumps(gt), encoding="utf-8")
    b = get_benchmark("chair")
    items = b.load(path)
    assert items[0].question == "Please describe this image in detail."
    caps = {
        "1": "Two men walk their dogs past a cat.",  # person, dog, cat (hallucinated)
        "2": "A red hot dog stand next to a sedan.",  # hot dog (hallucinated), car
        "3": "The seat of the toilet is up.",  # toilet
        "4": "A baby bird on a branch.",  # bird
    }
    r = b.score(caps, items)
    assert r["n_mentions"] == 7
    assert r["chair_i"] == pytest.approx(100 * 2 / 7)
    assert r["chair_s"] == pytest.approx(50.0)
    assert r["recall"] == pytest.approx(100.0)
    assert r["per_item"]["2"]["hallucinated"] == ["hot dog"]
    with pytest.raises(ValueError, match="no 'wrong' caption"):
        b.score(caps, items, missing="wrong")


def test_chair_gt_from_coco_instances_and_captions(tmp_path):
    inst = {
        "images": [{"id": 9, "file_name": "COCO_val2014_000000000009.jpg", "width": 4, "height": 4}],
        "annotations": [{"id": 1, "image_id": 9, "category_id": 18, "bbox": [0, 0, 1, 1]}],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }
    caps = {"annotations": [{"id": 5, "image_id": 9, "caption": "A man throws a frisbee to his dog."}]}
    (tmp_path / "instances_val2014.json").write_text(json.dumps(inst), encoding="utf-8")
    (tmp_path / "captions_val2014.json").write_text(json.dumps(caps), encoding="utf-8")
    items = get_benchmark("chair").load(tmp_path / "instances_val2014.json")
    assert items[0].answers == ["dog", "frisbee", "person"]  # objects from captions added
    assert items[0].image == "COCO_val2014_000000000009.jpg"
