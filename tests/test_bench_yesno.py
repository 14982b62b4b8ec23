"""POPE and MME: official file layouts and the official yes/no parsing edge cases."""

from __future__ import annotations

import json

import pytest

from vitune.eval.benchmarks import get_benchmark
from vitune.eval.benchmarks.mme import mme_parse
from vitune.eval.benchmarks.pope import pope_yes_no


def test_pope_rule():
    assert pope_yes_no("No, there is not.") == "no"
    assert pope_yes_no("not sure") == "no"
    assert pope_yes_no("Not sure") == "yes"  # capital "Not" is not in the official word list
    assert pope_yes_no("NO") == "yes"
    assert pope_yes_no("Yes. There is no dog.") == "yes"  # only the text before the first "."
    assert pope_yes_no("No\nthere is") == "yes"  # split(' '): "No\nthere" is one word
    assert pope_yes_no("There is no, dog") == "no"


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_pope_loader_and_metrics(tmp_path):
    rnd = [("yes", "Yes, there is a dog."), ("yes", "Not sure"), ("no", "No, there is not."),
           ("no", "not sure"), ("no", "There is no. Yes"), ("no", "NO"), ("no", "No\nthere is")]  # fmt: skip
    pop = [("yes", "no"), ("no", "No")]
    for split, rows in (("random", rnd), ("popular", pop)):
        _jsonl(
            tmp_path / f"coco_pope_{split}.json",
            [{"question_id": i + 1, "image": f"COCO_val2014_{i:012d}.jpg", "text": "Is there a dog in the image?",
              "label": lab} for i, (lab, _) in enumerate(rows)],
        )  # fmt: skip
    b = get_benchmark("pope")
    items = b.load(tmp_path)
    assert len(items) == 9 and {it.category for it in items} == {"random", "popular"}
    assert (
        items[0].question
        == "Is there a dog in the image?\nAnswer the question using a single word or phrase."
    )
    preds = {f"random/{i + 1}": p for i, (_, p) in enumerate(rnd)}
    preds |= {f"popular/{i + 1}": p for i, (_, p) in enumerate(pop)}
    r = b.score(preds, items)
    rm = r["per_category"]["random"]
    # TP=2 (dog, "Not sure"), FP=2 ("NO", "No\nthere is"), TN=3, FN=0.
    assert (rm["tp"], rm["fp"], rm["tn"], rm["fn"]) == (2, 2, 3, 0)
    assert rm["precision"] == pytest.approx(50.0)
    assert rm["recall"] == pytest.approx(100.0)
    assert rm["f1"] == pytest.approx(200 / 3)
    assert rm["accuracy"] == pytest.approx(500 / 7)
    assert rm["yes_ratio"] == pytest.approx(400 / 7)  # of predictions, not labels (2/7)
    pm = r["per_category"]["popular"]
    assert (pm["f1"], pm["accuracy"], pm["yes_ratio"]) == (0.0, 50.0, 0.0)  # no positives: 0, no crash
    assert r["overall"] == pytest.approx((200 / 3 + 0.0) / 2)


def test_mme_first_four_characters_rule():
    assert mme_parse("Yes, it is") == "yes"
    assert mme_parse("yesterday") == "yes"  # only "yest" is looked at
    assert mme_parse("not sure") == "no"
    assert mme_parse("No") == "no"
    assert mme_parse("I think yes") == "other"
    assert mme_parse("Maybe") == "other"


def _mme_release(root):
    ex = root / "existence"
    (ex / "images").mkdir(parents=True)
    (ex / "questions_answers_YN").mkdir()
    for stem, lines in (("a", "Is there a dog? Please answer yes or no.\tYes\nIs there a cat? Please answer yes or no.\tNo\n"),
                        ("b", "Is there a car? Please answer yes or no.\tYes\nIs there a bus? Please answer yes or no.\tNo\n")):  # fmt: skip
        (ex / "images" / f"{stem}.jpg").write_bytes(b"x")
        (ex / "questions_answers_YN" / f"{stem}.txt").write_text(lines, encoding="utf-8")
    for task, stem in (("OCR", "c"), ("code_reasoning", "d")):
        d = root / task  # the other official layout: image and txt side by side
        d.mkdir()
        (d / f"{stem}.png").write_bytes(b"x")
        (d / f"{stem}.txt").write_text(
            "Is the text hello? Please answer yes or no.\tYes\nIs the text bye? Please answer yes or no.\tNo\n",
            encoding="utf-8",
        )


PREDS = {
    "existence/images/a.jpg#0": "Yes, it is",  # yes, right
    "existence/images/a.jpg#1": "No",  # right -> image a counts for acc+
    "existence/images/b.jpg#0": "yesterday",  # yes, right
    "existence/images/b.jpg#1": "I think no",  # other, wrong -> b not in acc+
    "OCR/c.png#0": "not sure",  # no, wrong
    "OCR/c.png#1": "No.",  # right
    "code_reasoning/d.png#0": "Yes",
    "code_reasoning/d.png#1": "no",
}


def test_mme_release_layouts_and_scores(tmp_path):
    root = tmp_path / "MME_Benchmark_release_version"
    _mme_release(root)
    b = get_benchmark("mme")
    items = b.load(root)
    assert len(items) == 8
    a0 = next(it for it in items if it.item_id == "existence/images/a.jpg#0")
    assert a0.image == "existence/images/a.jpg"
    assert a0.question == (
        "Is there a dog? Please answer yes or no.\nAnswer the question using a single word or phrase."
    )
    r = b.score(PREDS, items)
    ex = r["per_category"]["existence"]
    assert (ex["acc"], ex["acc_plus"], ex["score"], ex["n_other"]) == (75.0, 50.0, 125.0, 1)
    assert r["per_category"]["OCR"]["score"] == 50.0  # acc 50 + acc+ 0
    assert r["perception"] == 175.0 and r["overall"] == 175.0
    assert r["cognition"] == 200.0


def test_mme_llava_jsonl_form_matches_release_answers(tmp_path):
    root = tmp_path / "MME_Benchmark_release_version"
    _mme_release(root)
    suffix = "\nAnswer the question using a single word or phrase."
    _jsonl(
        tmp_path / "llava_mme.jsonl",
        [{"question_id": "existence/a.jpg", "image": "existence/images/a.jpg",
          "text": "Is there a dog? Please answer yes or no." + suffix, "category": "existence"},
         {"question_id": "existence/a.jpg", "image": "existence/images/a.jpg",
          "text": "Is there a cat? Please answer yes or no." + suffix, "category": "existence"}],
    )  # fmt: skip
    items = get_benchmark("mme").load(tmp_path / "llava_mme.jsonl")
    assert [(it.item_id, it.answers) for it in items] == [
        ("existence/images/a.jpg#0", ["yes"]),
        ("existence/images/a.jpg#1", ["no"]),
    ]
