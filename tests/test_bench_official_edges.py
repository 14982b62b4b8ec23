"""The official scripts' last edge cases, each pinned against the official rule (issue #13 item 4).

Every expected number is worked out by hand from the official script's arithmetic, and where the
edge is a floating-point one the test also shows that the naive computation gives another number,
so the test would fail if the scorer fell back to it.
"""

from __future__ import annotations

import json
import math

import pytest

from vitune.data.records import QA
from vitune.eval.benchmarks import get_benchmark
from vitune.eval.benchmarks.chair import ChairEvaluator
from vitune.eval.benchmarks.llava_bench import MALFORMED, parse_review_official, summarize_reviews
from vitune.eval.benchmarks.mm_vet import aggregate, np_round1
from vitune.eval.benchmarks.mmbench import EXCEL_NA_STRINGS, MMBench, as_read_back
from vitune.eval.benchmarks.mme import PERCEPTION
from vitune.eval.vqav2 import py2_lower, py2_round, score_vqa, vqa_accuracy


def _write(path, obj):
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


# ---- VQAv2: Python 2 rounding and lowercasing ---------------------------------------------------


def test_py2_round_breaks_exact_ties_away_from_zero():
    assert py2_round(3.125, 2) == 3.13 and round(3.125, 2) == 3.12  # exact binary tie
    assert py2_round(0.125, 2) == 0.13
    assert py2_round(2.675, 2) == 2.67  # 2.675 is below the tie in binary: no tie, both agree
    assert py2_round(33.333333333333336, 2) == 33.33


def test_vqav2_overall_at_a_rounding_tie_is_python2s():
    # 1 right of 32 -> 100 * 1 / 32 = 3.125 exactly: vqaEval.py (Python 2) reports 3.13.
    qas = [QA(str(i), "q", ["yes"] * 10, "yes/no", "is") for i in range(32)]
    preds = {str(i): "yes" if i == 0 else "no" for i in range(32)}
    s = score_vqa(preds, qas, protocol="official")
    assert s.overall == 3.13 and s.per_answer_type == {"yes/no": 3.13}


def test_vqav2_lowercases_non_ascii_as_python2():
    assert py2_lower("İstanbul") == "istanbul" and "İstanbul".lower() != "istanbul"
    assert py2_lower("ΟΔΟΣ") == "οδοσ" and "ΟΔΟΣ".lower() == "οδος"
    # Split answers -> normalized; Python 2 lowers "İstanbul" to "istanbul": one match -> 0.3.
    gt = ["İstanbul"] + ["paris"] * 9
    assert vqa_accuracy("istanbul", gt) == pytest.approx(0.3)
    assert vqa_accuracy("οδοσ", ["ΟΔΟΣ"] * 4 + ["road"] * 6) == 1.0  # Python 3 would give "οδος": 0
    # Non-ASCII digits are not \d in Python 2's re: "٣.٥" keeps no period (not digit-period-digit).
    assert vqa_accuracy("٣٥", ["٣.٥"] + ["x"] * 9) == pytest.approx(0.3)


# ---- TextVQA: LLaVA's eval_textvqa.py matches by image and lowercased question ---------------


def test_textvqa_questions_differing_only_in_case_share_the_last_rows_answers(tmp_path):
    rows = [
        {"question_id": 1, "image_id": "img1", "question": "What is written?", "answers": ["stop"] * 10},
        {"question_id": 2, "image_id": "img1", "question": "what is written?", "answers": ["go"] * 10},
        {"question_id": 3, "image_id": "img2", "question": "What is written?", "answers": ["exit"] * 10},
    ]
    path = _write(tmp_path / "TextVQA_0.5.1_val.json", {"data": rows})
    b = get_benchmark("textvqa")
    items = b.load(path)
    r = b.score({"1": "stop", "2": "go", "3": "exit"}, items)
    # Question 1 is looked up under (img1, "what is written?") -> row 2's answers: "stop" scores 0.
    assert r["per_item"] == {"1": 0.0, "2": 1.0, "3": 1.0}
    assert r["overall"] == 100.0 * (2.0 / 3)
    # --limit keeps the rule: the resolution was made over the whole file.
    assert b.score({"1": "go"}, [items[0]])["overall"] == 100.0


# ---- GQA and ScienceQA: divide, then multiply by 100 ------------------------------------------


def test_gqa_percentages_in_eval_py_order(tmp_path):
    qs = {
        str(i): {"question": "q?", "answer": "yes", "imageId": "n1", "isBalanced": True,
                 "types": {"structural": "verify", "semantic": "attr"}}
        for i in range(3)
    }  # fmt: skip
    b = get_benchmark("gqa")
    items = b.load(_write(tmp_path / "testdev_balanced_questions.json", qs))
    r = b.score({"0": "Yes.", "1": "no", "2": "no"}, items)
    assert r["overall"] == 1 / 3 * 100 == 33.33333333333333
    assert r["overall"] != 100 * 1 / 3  # 33.333333333333336: another last digit
    assert r["per_category"] == {"verify": 1 / 3 * 100}


def _sqa(tmp_path, n: int) -> list:
    problems = {
        str(i): {"question": f"Q{i}?", "choices": ["a", "b"], "answer": 0, "hint": "", "image": "image.png",
                 "subject": "natural science", "grade": "grade1", "split": "test"}
        for i in range(n)
    }  # fmt: skip
    _write(tmp_path / "problems.json", problems)
    _write(tmp_path / "pid_splits.json", {"test": list(problems)})
    return get_benchmark("scienceqa").load(tmp_path)


def test_scienceqa_missing_prediction_leaves_img_accuracy(tmp_path):
    items = _sqa(tmp_path, 3)
    b = get_benchmark("scienceqa")
    r = b.score({"0": "A", "1": "B"}, items, missing="wrong")
    # eval_science_qa.py: the missing one is FAILED (wrong) in Accuracy, 1/3, but its placeholder
    # prompt "Unknown" has no <image>, so IMG-Accuracy (the published number) is 1/2.
    assert r["accuracy"] == 1 / 3 * 100
    assert r["img_accuracy"] == r["overall"] == 50.0
    assert (r["n_img"], r["n_missing"], r["n_failed_parse"]) == (2, 1, 1)


# ---- MME: totals in calculation.py's subtask order ----------------------------------------------

# (right questions of 6, images with both right of 3) per perception subtask: a case where the
# official order and alphabetical order give different last digits.
MME_CASE = {
    "existence": (4, 1), "count": (4, 1), "position": (0, 0), "color": (2, 1), "posters": (5, 2),
    "celebrity": (4, 2), "scene": (4, 1), "landmark": (2, 1), "artwork": (4, 2), "OCR": (3, 1),
}  # fmt: skip


def _mme_preds(case):
    """Items (3 images x 2 questions per subtask, gold yes) and predictions hitting `case`."""
    from vitune.eval.benchmarks.base import BenchItem

    items, preds = [], {}
    for task, (right, both) in case.items():
        flags = [True, True] * both + [True, False] * (right - 2 * both) + [False, False] * 3
        flags = flags[:6]
        for q, ok in enumerate(flags):
            img = f"{task}/{q // 2}.jpg"
            it = BenchItem(f"{img}#{q % 2}", "q", img, ["yes"], category=task, meta={"image_key": img})
            items.append(it)
            preds[it.item_id] = "Yes" if ok else "No"
    return items, preds


def test_mme_total_sums_subtasks_in_the_official_order():
    items, preds = _mme_preds(MME_CASE)
    r = get_benchmark("mme").score(preds, items)
    expected = 0
    for task in PERCEPTION:  # calculation.py: scores += task_score, in eval_type_dict order
        right, both = MME_CASE[task]
        expected += 0 + right / 6 * 100 + both / 3 * 100
    alphabetical = sum(r["per_category"][t]["score"] for t in sorted(MME_CASE))
    assert r["overall"] == expected == 933.3333333333334
    assert alphabetical != expected  # the order matters in the last digit


# ---- CHAIR --------------------------------------------------------------------------------------


def test_chair_train_track_is_not_a_train_and_non_coco_categories_do_not_crash(tmp_path):
    ev = ChairEvaluator()
    assert ev.caption_objects("A dog walks along the train tracks.")[1] == ["dog"]
    assert ev.caption_objects("A train on the tracks.")[1] == ["train"]
    # The embedded world's COCO file names shapes: the original KeyErrors ('triangle').
    inst = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}],
        "categories": [{"id": 3, "name": "triangle"}, {"id": 4, "name": "circle"}],
    }
    path = _write(tmp_path / "instances_val2017.json", inst)
    b = get_benchmark("chair")
    items = b.load(path)
    assert items[0].answers == ["triangle"]
    r = b.score({"1": "Two red triangles and a blue circle."}, items)
    assert r["per_item"]["1"]["mentioned"] == ["triangle", "circle"]
    assert r["per_item"]["1"]["hallucinated"] == ["circle"]
    assert r["chair_i"] == 1 / 2 * 100 and r["extra_categories"] == "circle, triangle"


# ---- MM-Vet: numpy rounding ----------------------------------------------------------------------


def test_mm_vet_rounds_like_numpy_at_x5_edges():
    assert np_round1(0.15) == 0.2 and round(0.15, 1) == 0.1
    assert np_round1(1.05) == 1.0 and round(1.05, 1) == 1.1
    # 200 items, one graded 0.1: total 0.1 / 200 * 100 = 0.05 -> numpy 0.0 (Python's round: 0.1).
    scores = {f"v1_{i}": 0.1 if i == 0 else 0.0 for i in range(200)}
    caps = {k: ["rec"] for k in scores}
    agg = aggregate(scores, caps)
    assert round(0.1 / 200 * 100, 1) == 0.1
    assert agg["total"] == 0.0 and agg["per_capability"] == {"rec": 0.0}


# ---- LLaVA-Bench: the official score line, averaged in --------------------------------------------


def test_llava_bench_official_parse_and_minus_one_pairs_are_averaged_in():
    assert parse_review_official("8 9\nbecause") == (8.0, 9.0)
    assert parse_review_official("7.5 6") == (7.5, 6.0)
    # Commas become spaces, then split(' '): "7, 7" has three parts -> malformed.
    for bad in ("7, 7", "8  9", "8 9 10", "Assistant 1: 8", "", "eight nine"):
        assert parse_review_official(bad) == MALFORMED
    assert math.isnan(parse_review_official("nan 3")[0])  # float("nan") parses officially
    s = summarize_reviews({"conv": [(8.0, 9.0), MALFORMED], "detail": [(6.0, 3.0)]})
    # conv: ref (8 - 1) / 2 = 3.5, model (9 - 1) / 2 = 4.0 -> 114.3; all: 13/3, 11/3 -> 4.333, 3.667
    assert s["conv"] == {"relative": 114.3, "reference": 3.5, "model": 4.0, "n": 2}
    assert s["all"]["reference"] == 4.333 and s["all"]["model"] == 3.667
    assert s["all"]["relative"] == round(3.667 / 4.333 * 100, 1) == 84.6


# ---- MMBench: predictions as read back from the official .xlsx ---------------------------------


def test_mmbench_na_strings_are_read_back_empty():
    from pandas._libs.parsers import STR_NA_VALUES

    assert frozenset(STR_NA_VALUES) == EXCEL_NA_STRINGS  # pandas' read_excel defaults
    assert as_read_back("None") == "nan" and as_read_back("B") == "B" and as_read_back(" None") == " None"
    from vitune.eval.benchmarks.base import BenchItem

    opts = {"A": "yes", "B": "no"}
    items = [
        BenchItem("0", "q", None, ["B"], options=opts, meta={"index": 0, "raw_question": "q"}),
        BenchItem(
            "1000000",
            "q",
            None,
            ["A"],
            options={"A": "no", "B": "yes"},
            meta={"index": 1_000_000, "raw_question": "q"},
        ),
    ]
    b = MMBench()
    # Raw "None" contains the option text "no" -> B; read back from the .xlsx it is "nan": no option.
    r = b.score({"0": "None", "1000000": "A"}, items)
    assert r["overall"] == 0.0 and r["n_failed_extraction"] == 1
    assert b.unparsable("None", items[0]) and not b.unparsable("B", items[0])


def test_pope_unparsable_is_the_fallback_to_yes():
    b = get_benchmark("pope")
    from vitune.eval.benchmarks.base import BenchItem

    it = BenchItem("random/1", "q", None, ["yes"], category="random")
    assert b.unparsable("I cannot tell", it)
    assert not b.unparsable("Yes, there is.", it) and not b.unparsable("no", it)
    assert b.unparsable("Not sure", it)  # "Not" is not a no-word: the rule falls back to yes


def test_seed_and_mmmu_unparsable_answers():
    from vitune.eval.benchmarks.base import BenchItem

    opts = {"A": "red", "B": "blue", "C": "green", "D": "white"}
    it = BenchItem("1", "q", None, ["A"], options=opts)
    seed = get_benchmark("seed_bench")
    assert not seed.unparsable("B", it) and seed.unparsable("(B)", it) and seed.unparsable("A.", it)
    mmmu = get_benchmark("mmmu")
    mc = BenchItem("2", "q", None, ["A"], options=opts, meta={"question_type": "multiple-choice"})
    assert not mmmu.unparsable("(C)", mc) and not mmmu.unparsable("The answer is B", mc)
    assert mmmu.unparsable("I do not know", mc)  # no letter: the official picks one at random
    assert not mmmu.unparsable("42", BenchItem("3", "q", None, ["42"], meta={"question_type": "open"}))
