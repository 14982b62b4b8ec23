"""VizWiz, OK-VQA and A-OKVQA benchmarks: loading, prompts, both protocols' scores by hand, errors.

Expected values are worked out by hand from each official rule (see the benchmark modules):
leave-one-out over 10 answers gives 1 match -> 0.3, 2 -> 0.6, 3 -> 0.9, >= 4 -> 1.0; A-OKVQA's DA
rule has no leave-one-out (1 -> 1/3, 2 -> 2/3, 3 -> 1.0).
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from vitune.data.records import QA
from vitune.eval.benchmarks import get_benchmark
from vitune.eval.benchmarks.aokvqa import aokvqa_da_accuracy, parse_aokvqa_letter
from vitune.eval.benchmarks.base import BenchmarkDataError
from vitune.eval.benchmarks.vizwiz import vizwiz_normalize
from vitune.eval.runner import BenchSpec, run_benchmarks
from vitune.eval.vqav2 import score_vqa, vqa_accuracy

HINT = "\nWhen the provided information is insufficient, respond with 'Unanswerable'."
SHORT = "\nAnswer the question using a single word or phrase."


def _ans(*groups):
    return [a for n, text in groups for a in [text] * n]


# ---- VizWiz -------------------------------------------------------------------------------------


def _vizwiz(root):
    rows = [
        ("Is this red?", _ans((10, "yes")), "yes/no", 1),
        ("How many are there?", _ans((2, "2"), (5, "two"), (3, "unanswerable")), "number", 1),
        ("What is this? ", _ans((10, "unanswerable")), "unanswerable", 0),
        ("Whose phone is it?", _ans((3, "dad's phone"), (7, "phone")), "other", 1),
    ]
    doc = [
        {
            "image": f"VizWiz_val_{i:08d}.jpg",
            "question": q,
            "answers": [{"answer": a, "answer_confidence": "yes"} for a in answers],
            "answer_type": at,
            "answerable": ok,
        }
        for i, (q, answers, at, ok) in enumerate(rows)
    ]
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "val.json").write_text(json.dumps(doc))
    return root


VIZWIZ_PREDS = {
    "VizWiz_val_00000000": "Yes",
    "VizWiz_val_00000001": "Two.",
    "VizWiz_val_00000002": "Unanswerable",
    "VizWiz_val_00000003": "Dad's phone.",
}


def test_vizwiz_load_and_prompt(tmp_path):
    items = get_benchmark("vizwiz").load(_vizwiz(tmp_path / "vw"))
    assert [it.item_id for it in items] == [f"VizWiz_val_{i:08d}" for i in range(4)]
    assert items[0].image == "val/VizWiz_val_00000000.jpg" and items[0].category == "yes/no"
    assert items[0].question == "Is this red?" + HINT + SHORT
    assert items[2].question == "What is this? " + HINT + SHORT  # as written, trailing space kept
    assert items[2].meta["answerable"] == 0 and len(items[1].answers) == 10
    # The annotation file itself loads too (images then need --images).
    assert len(get_benchmark("vizwiz").load(tmp_path / "vw" / "annotations" / "val.json")) == 4


def test_vizwiz_official_rule():
    # The prediction is always normalized; the answers never are.
    assert vizwiz_normalize("Two.") == "2" and vizwiz_normalize("Unanswerable") == "unanswerable"
    assert vizwiz_normalize("dont") == "don\u2019t"  # the official table's curly apostrophe
    assert vizwiz_normalize("Coca-Cola.") == "coca cola"


@pytest.mark.parametrize(
    ("protocol", "overall", "per_type", "per_answerable"),
    [
        # official: "Dad's phone." -> "dad's phone", 3 matches -> 0.9; "Two." -> "2", 2 matches -> 0.6
        ("official", 87.5, {"number": 60.0, "other": 90.0, "unanswerable": 100.0, "yes/no": 100.0},
         {"answerable": 83.33, "unanswerable": 100.0}),
        # paper: the EvalAI processor splits "'s" ("dad 's phone"), which no raw answer equals -> 0
        ("paper", 65.0, {"number": 60.0, "other": 0.0, "unanswerable": 100.0, "yes/no": 100.0},
         {"answerable": 53.33, "unanswerable": 100.0}),
    ],
)  # fmt: skip
def test_vizwiz_scores_by_protocol(tmp_path, protocol, overall, per_type, per_answerable):
    bench = get_benchmark("vizwiz", protocol=protocol)
    items = bench.load(_vizwiz(tmp_path / "vw"))
    s = bench.score(VIZWIZ_PREDS, items)
    assert s["overall"] == overall and s["per_category"] == per_type
    assert s["per_answerable"] == per_answerable and s["n_per_answerable"] == {
        "answerable": 3,
        "unanswerable": 1,
    }
    assert s["unanswerable"] == {"precision": 100.0, "recall": 100.0, "f1": 100.0}
    assert s["per_item"]["VizWiz_val_00000001"] == pytest.approx(0.6)
    # "Unanswerable" said on an answerable question: a false positive, and a wrong answer.
    s = bench.score({**VIZWIZ_PREDS, "VizWiz_val_00000000": "Unanswerable"}, items)
    assert s["unanswerable"] == {"precision": 50.0, "recall": 100.0, "f1": 66.67}
    assert s["per_category"]["yes/no"] == 0.0


def test_vizwiz_missing_and_bad_file(tmp_path):
    bench = get_benchmark("vizwiz")
    items = bench.load(_vizwiz(tmp_path / "vw"))
    with pytest.raises(ValueError, match="no prediction"):
        bench.score({}, items)
    assert bench.score({}, items, missing="wrong")["overall"] == 0.0
    bad = tmp_path / "bad" / "annotations"
    bad.mkdir(parents=True)
    (bad / "val.json").write_text(json.dumps([{"image": "x.jpg", "question": "q?", "answers": 3}]))
    with pytest.raises(BenchmarkDataError, match=r"annotations/val\.json.*\[0\]"):
        bench.load(tmp_path / "bad")
    (bad / "val.json").write_text(json.dumps({"questions": []}))
    with pytest.raises(BenchmarkDataError, match=r"val\.json is not a VizWiz list"):
        bench.load(tmp_path / "bad")
    with pytest.raises(BenchmarkDataError, match="no annotation file"):
        bench.load(tmp_path)


# ---- OK-VQA -------------------------------------------------------------------------------------


def _okvqa(root):
    rows = [
        (1, "one", "Is this vehicle used on rails?", _ans((10, "yes"))),
        (2, "two", "Which restaurant made this burger?", _ans((3, "mcdonald's"), (7, "burger king"))),
        (3, "eight", "How many legs does this animal have?", _ans((1, "2"), (1, "two"), (8, "4"))),
    ]
    root.mkdir(parents=True)
    questions = [{"image_id": 100 + q, "question": t, "question_id": q} for q, _, t, _ in rows]
    anns = [
        {"image_id": 100 + q, "question_id": q, "question_type": code, "answer_type": "other",
         "answers": [{"answer_id": k + 1, "answer": a, "raw_answer": a, "answer_confidence": "yes"}
                     for k, a in enumerate(answers)]}
        for q, code, _, answers in rows
    ]  # fmt: skip
    (root / "OpenEnded_mscoco_val2014_questions.json").write_text(
        json.dumps({"data_subtype": "val2014", "questions": questions})
    )
    (root / "mscoco_val2014_annotations.json").write_text(json.dumps({"annotations": anns}))
    return root


OKVQA_PREDS = {"1": "Yes", "2": "McDonald's", "3": "Two."}


def test_okvqa_load_and_prompt(tmp_path):
    items = get_benchmark("okvqa").load(_okvqa(tmp_path / "ok"))
    assert items[0].question == "Is this vehicle used on rails?" + SHORT
    assert items[0].image == "COCO_val2014_000000000101.jpg"
    assert [(it.category, it.subcategory) for it in items] == [
        ("Vehicles and Transportation", "one"),
        ("Brands, Companies and Products", "two"),
        ("Plants and Animals", "eight"),
    ]


def test_okvqa_scores_by_protocol(tmp_path):
    folder = _okvqa(tmp_path / "ok")
    official = get_benchmark("okvqa", protocol="official")
    s = official.score(OKVQA_PREDS, official.load(folder))
    # unanimous "yes": exact and case-sensitive, "Yes" scores 0; "McDonald's" -> "mcdonald's", 3
    # matches -> 0.9; "Two." -> "2" against normalized "2", "2" -> 2 matches -> 0.6.
    assert s["overall"] == 50.0 and s["n"] == 3
    assert s["per_category"] == {
        "Brands, Companies and Products": 90.0,
        "Plants and Animals": 60.0,
        "Vehicles and Transportation": 0.0,
    }
    paper = get_benchmark("okvqa")
    assert paper.active_protocol == "paper"
    s = paper.score(OKVQA_PREDS, paper.load(folder))
    # lmms-eval ok_vqa: EvalAI on both sides: "Yes" -> 1.0, "mcdonald 's" on both sides -> 0.9, 0.6
    assert s["overall"] == pytest.approx(250 / 3)
    assert s["per_category"]["Vehicles and Transportation"] == 100.0
    assert s["per_category"]["Brands, Companies and Products"] == pytest.approx(90.0)
    # VQAv2's paper protocol would miss the possessive: its answers keep "'s" joined.
    qa = QA("2", "", _ans((3, "mcdonald's"), (7, "burger king")))
    assert score_vqa({"2": "McDonald's"}, [qa], protocol="paper").overall == 0.0


def test_okvqa_bad_file(tmp_path):
    folder = _okvqa(tmp_path / "ok")
    (folder / "mscoco_val2014_annotations.json").write_text(json.dumps({"anns": []}))
    with pytest.raises(BenchmarkDataError, match=r"mscoco_val2014_annotations\.json has no 'annotations'"):
        get_benchmark("okvqa").load(folder)


# ---- A-OKVQA ------------------------------------------------------------------------------------


def _aokvqa(path):
    rows = [
        ("a1", ["red", "blue", "green", "yellow"], 1, _ans((6, "blue"), (4, "navy")), False),
        ("a2", ["1", "2", "3", "4"], 1, _ans((1, "2"), (2, "two"), (7, "3")), False),
        ("a3", ["cat", "dog", "bird", "fish"], 0, _ans((10, "cat")), True),
        ("a4", ["red", "blue", "green", "yellow"], 3, _ans((2, "yellow"), (8, "gold")), False),
    ]
    doc = [
        {"split": "val", "image_id": 7 + i, "question_id": qid, "question": f"Question {qid}?",
         "choices": ch, "correct_choice_idx": idx, "direct_answers": da,
         "difficult_direct_answer": hard, "rationales": ["r1", "r2", "r3"]}
        for i, (qid, ch, idx, da, hard) in enumerate(rows)
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_aokvqa_mc_load_prompt_and_score(tmp_path):
    bench = get_benchmark("aokvqa_mc")
    items = bench.load(_aokvqa(tmp_path / "ak" / "aokvqa_v1p0_val.json").parent)  # a folder works too
    assert len(items) == 4 and items[0].image == "val2017/000000000007.jpg"
    assert items[0].question == (
        "Question a1?\nA. red\nB. blue\nC. green\nD. yellow\n"
        "Answer with the option's letter from the given choices directly."
    )
    preds = {"a1": "B", "a2": "B. 2", "a3": "Unanswerable", "a4": "yellow"}
    s = bench.score(preds, items)
    assert s["overall"] == 75.0 and s["n_failed_parse"] == 1
    assert s["per_category"] == {"difficult": 0.0, "regular": 100.0}
    assert bench.unparsable("Unanswerable", items[2]) and not bench.unparsable("(B)", items[2])
    assert (
        bench.active_protocol == "official"
        and get_benchmark("aokvqa_mc", protocol="paper").protocol == "official"
    )


def test_aokvqa_letter_parsing():
    opts = {"A": "red", "B": "blue", "C": "green", "D": "yellow"}
    assert [parse_aokvqa_letter(p, opts) for p in ("C", " C.", "(C)", "C) green", "Green.", "E", "blue or red")] == [
        "C", "C", "C", "C", "C", None, None,
    ]  # fmt: skip


def test_aokvqa_da_scores_by_protocol(tmp_path):
    path = _aokvqa(tmp_path / "aokvqa_v1p0_val.json")
    official = get_benchmark("aokvqa_da", protocol="official")
    items = official.load(path)
    assert [it.item_id for it in items] == ["a1", "a2", "a4"]  # difficult_direct_answer left out
    assert items[0].question == "Question a1?" + SHORT
    preds = {"a1": "Blue.", "a2": "Two.", "a4": "Yellow"}
    assert official.score(preds, items)["overall"] == 0.0  # exact match: nothing is equal
    assert get_benchmark("aokvqa_da").active_protocol == "official"  # no published pipeline to follow
    paper = get_benchmark("aokvqa_da", protocol="paper")
    s = paper.score(preds, items)
    # "blue": 6 matches -> 1; "2": 1 match -> 1/3 ("two" is never normalized); "yellow": 2 -> 2/3
    assert s["per_item"] == pytest.approx({"a1": 1.0, "a2": 1 / 3, "a4": 2 / 3})
    assert s["overall"] == pytest.approx(200 / 3)
    # No leave-one-out: 3 matches give 1.0 where VQAv2's rule gives 0.9.
    gt = _ans((3, "navy"), (7, "blue"))
    assert aokvqa_da_accuracy("navy", gt) == 1.0 and vqa_accuracy("navy", gt) == pytest.approx(0.9)


def test_aokvqa_bad_file(tmp_path):
    path = tmp_path / "aokvqa_v1p0_val.json"
    path.write_text(json.dumps([{"question_id": "q", "question": "?", "image_id": 1, "choices": "abc"}]))
    with pytest.raises(BenchmarkDataError, match=r"aokvqa_v1p0_val\.json: entry \[0\]"):
        get_benchmark("aokvqa_da").load(path)
    path.write_text("{}")
    with pytest.raises(BenchmarkDataError, match="not an A-OKVQA list"):
        get_benchmark("aokvqa_mc").load(path)


# ---- `vitune eval`'s runner: NAME=PATH specs, images checked, answers scored ---------------------


class _Stub:
    def __init__(self, answer):
        self.answer, self.asked = answer, []

    def __call__(self, items):
        self.asked.extend(it.text for it in items)
        return [self.answer for _ in items]


def test_runner_scores_the_new_benchmarks(tmp_path):
    vw = _vizwiz(tmp_path / "vw")
    (vw / "val").mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(vw / "val" / f"VizWiz_val_{i:08d}.jpg")
    coco = tmp_path / "val2014"
    coco.mkdir()
    for q in (1, 2, 3):
        Image.new("RGB", (8, 8)).save(coco / f"COCO_val2014_{100 + q:012d}.jpg")
    specs = [BenchSpec("vizwiz", vw), BenchSpec("okvqa", _okvqa(tmp_path / "ok"), image_root=coco)]
    stub = _Stub("Unanswerable")
    r = run_benchmarks(specs, tmp_path / "out", answer_fn=stub, show_progress=False, model_id="stub")
    assert len(stub.asked) == 7 and stub.asked[0].endswith(HINT + SHORT)
    vizwiz = r["benchmarks"]["vizwiz"]
    assert vizwiz["protocol"] == "paper" and vizwiz["n"] == 4
    # "unanswerable" 3 of 10 on question 1 (-> 0.9) and 10 of 10 on question 2 (-> 1.0)
    assert vizwiz["overall"] == 47.5 and r["benchmarks"]["okvqa"]["overall"] == 0.0
