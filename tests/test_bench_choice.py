"""ScienceQA, MMBench (CircularEval), SEED-Bench and MMMU: official formats and answer parsing."""

from __future__ import annotations

import base64
import csv
import io
import json
import random

import pytest
from PIL import Image

from vitune.eval.benchmarks import get_benchmark
from vitune.eval.benchmarks.mmbench import infer_answer, infer_option
from vitune.eval.benchmarks.mmmu import eval_open, parse_multi_choice, parse_open
from vitune.eval.benchmarks.scienceqa import parse_sqa_letter

LETTER = "\nAnswer with the option's letter from the given choices directly."


def _write(path, obj):
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


# ---- ScienceQA -----------------------------------------------------------------------------------


def test_sqa_letter_parsing_as_llava():
    assert parse_sqa_letter("B") == "B"
    assert parse_sqa_letter("B. pear") == "B"
    assert parse_sqa_letter("The answer is B.") == "B"
    assert parse_sqa_letter("The answer is B") == "FAILED"  # the pattern needs a char after the letter
    assert parse_sqa_letter("The answer is A. The answer is B.") == "FAILED"  # ambiguous
    assert parse_sqa_letter("b") == "FAILED"
    assert parse_sqa_letter("B.") == "FAILED"  # neither a bare letter nor "B. ..."


def test_sqa_loader_img_subset_prompt_and_score(tmp_path):
    problems = {
        "1": {"question": "Which is a fruit?", "choices": ["rock", "pear", "car"], "answer": 1,
              "hint": "Look at the picture.", "image": "image.png", "subject": "natural science",
              "grade": "grade2", "split": "test"},
        "2": {"question": "Which word rhymes?", "choices": ["cat", "dog"], "answer": 0, "hint": "",
              "image": None, "subject": "language science", "grade": "grade1", "split": "test"},
        "3": {"question": "Which is hot?", "choices": ["ice", "fire"], "answer": 1, "hint": "",
              "image": "image.png", "subject": "natural science", "grade": "grade3", "split": "test"},
        "4": {"question": "Pick one", "choices": ["x", "y"], "answer": 0, "hint": "", "image": "image.png",
              "subject": "social science", "grade": "grade3", "split": "test"},
    }  # fmt: skip
    _write(tmp_path / "problems.json", problems)
    _write(tmp_path / "pid_splits.json", {"test": ["1", "2", "3", "4"], "train": []})
    b = get_benchmark("scienceqa")
    items = b.load(tmp_path)
    assert [it.item_id for it in items] == ["1", "3", "4"]  # IMG subset
    assert (
        items[0].question
        == "Context: Look at the picture.\nWhich is a fruit?\nA. rock\nB. pear\nC. car" + LETTER
    )
    assert items[1].question == "Which is hot?\nA. ice\nB. fire" + LETTER
    assert items[0].image == "1/image.png"
    # 1: "The answer is B." right; 3: "The answer is B" unparsed -> wrong; 4: "C" beyond 2 choices.
    r = b.score({"1": "The answer is B.", "3": "The answer is B", "4": "C"}, items)
    assert r["overall"] == pytest.approx(100 / 3)
    assert r["n_failed_parse"] == 1
    assert r["per_category"] == {"natural science": 50.0, "social science": 0.0}
    assert len(get_benchmark("scienceqa", img_only=False).load(tmp_path)) == 4


# ---- MMBench -----------------------------------------------------------------------------------


def _b64_png(color) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


COLS = [
    "index",
    "question",
    "hint",
    "A",
    "B",
    "C",
    "D",
    "answer",
    "category",
    "l2-category",
    "split",
    "image",
]


def _tsv(path, rows):
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(COLS)
        w.writerows(rows)
    return path


def _mmbench_rows():
    img = _b64_png((255, 0, 0))
    return [
        [0, "What animal?", "nan", "cat", "dog", "bird", "fish", "B", "object", "perception", "dev", img],
        [1, "Is it red?", "Look closely.", "yes", "no", "", "", "A", "color", "perception", "dev", img],
        [2, "Which colour?", "nan", "red", "green", "", "", "A", "color", "perception", "dev", img],
    ]


def test_mmbench_loader_rotates_options_and_decodes_base64(tmp_path):
    items = get_benchmark("mmbench").load(_tsv(tmp_path / "mmbench_dev_20230712.tsv", _mmbench_rows()))
    by_id = {it.item_id: it for it in items}
    assert sorted(by_id, key=int) == ["0", "1", "2", "1000000", "1000001", "1000002", "2000000", "3000000"]
    assert [by_id[i].answers[0] for i in ("0", "1000000", "2000000", "3000000")] == ["B", "A", "D", "C"]
    assert by_id["1000000"].options == {"A": "dog", "B": "bird", "C": "fish", "D": "cat"}
    assert by_id["1"].question == "Look closely.\nIs it red?\nA. yes\nB. no" + LETTER
    assert by_id["0"].question == "What animal?\nA. cat\nB. dog\nC. bird\nD. fish" + LETTER
    assert Image.open(io.BytesIO(by_id["0"].image)).getpixel((0, 0)) == (255, 0, 0)


def test_mmbench_extraction_rules():
    ch = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}
    assert infer_answer("B", ch) == "B"
    assert infer_answer("(C) bird", ch) == "C"
    assert infer_option("A is correct because the others are wrong", ch) is None  # letter not near the end
    assert infer_answer("It is a dog.", ch) == "B"  # option text
    assert infer_answer("a cat or a dog", ch) is None  # two option texts
    assert infer_answer("Cannot determine the answer", ch) == "Z"


def test_mmbench_circular_one_wrong_pass_fails_the_question(tmp_path):
    b = get_benchmark("mmbench")
    items = b.load(_tsv(tmp_path / "dev.tsv", _mmbench_rows()))
    preds = {
        "0": "B", "1000000": "A", "2000000": "The answer is D", "3000000": "It is a dog.",  # all right
        "1": "A", "1000001": "A",  # second pass wrong (gold B)
        "2": "red", "1000002": "hmm, hard to say",  # second pass: nothing to extract
    }  # fmt: skip
    r = b.score(preds, items)
    assert r["per_question"] == {"0": True, "1": False, "2": False}
    assert r["n_failed_extraction"] == 1 and r["n_judge_calls"] == 0
    assert r["overall"] == pytest.approx(100 / 3)
    assert r["per_category"] == {"color": 0.0, "object": 100.0}

    calls = []

    def judge(question, options, prediction):
        calls.append(prediction)
        return "B"

    r = get_benchmark("mmbench", judge=judge).score(preds, items)
    assert r["per_question"] == {"0": True, "1": False, "2": True}
    assert calls == ["hmm, hard to say"]  # group 1 failed at prefetch: no judge call
    assert r["n_failed_extraction"] == 0

    vanilla = get_benchmark("mmbench", circular=False)
    v_items = vanilla.load(tmp_path / "dev.tsv")
    assert len(v_items) == 3
    assert vanilla.score({"0": "B", "1": "A", "2": "green"}, v_items)["overall"] == pytest.approx(200 / 3)


def test_mmbench_prerotated_tsv_and_image_reference(tmp_path):
    img = _b64_png((0, 255, 0))
    rows = [
        [5, "Q?", "nan", "x", "y", "", "", "A", "c", "l2", "dev", img],
        [1000005, "Q?", "nan", "y", "x", "", "", "B", "c", "l2", "dev", "5"],  # image stored once
    ]
    b = get_benchmark("mmbench")
    items = b.load(_tsv(tmp_path / "circ.tsv", rows))
    assert [it.item_id for it in items] == ["5", "1000005"]
    assert items[1].image == items[0].image
    assert b.score({"5": "A", "1000005": "B"}, items)["overall"] == 100.0


# ---- SEED-Bench ------------------------------------------------------------------------------


def test_seed_exact_letter_per_type(tmp_path):
    doc = {
        "question_type": {"Scene Understanding": 1, "Instance Identity": 2},
        "questions": [
            {"question_id": "101", "question": "Where?", "choice_a": "park", "choice_b": "beach",
             "choice_c": "room", "choice_d": "road", "answer": "A", "data_id": "1_1.jpg",
             "data_type": "image", "question_type_id": 1},
            {"question_id": "102", "question": "Which?", "choice_a": "a", "choice_b": "b",
             "choice_c": "c", "choice_d": "d", "answer": "B", "data_id": "1_2.jpg",
             "data_type": "image", "question_type_id": 1},
            {"question_id": "103", "question": "Who?", "choice_a": "a", "choice_b": "b",
             "choice_c": "c", "choice_d": "d", "answer": "C", "data_id": "1_3.jpg",
             "data_type": "image", "question_type_id": 2},
            {"question_id": "104", "question": "Video?", "choice_a": "a", "choice_b": "b",
             "choice_c": "c", "choice_d": "d", "answer": "D", "data_id": "v.mp4",
             "data_type": "video", "question_type_id": 10},
        ],
    }  # fmt: skip
    b = get_benchmark("seed_bench")
    items = b.load(_write(tmp_path / "SEED-Bench.json", doc))
    assert [it.item_id for it in items] == ["101", "102", "103"]
    assert items[0].question == "Where?\nA. park\nB. beach\nC. room\nD. road" + LETTER
    r = b.score({"101": "A", "102": "B.", "103": "C "}, items)  # exact equality only
    assert r["overall"] == pytest.approx(100 / 3)
    assert r["per_category"] == {"Instance Identity": 0.0, "Scene Understanding": 50.0}


# ---- MMMU ------------------------------------------------------------------------------------


def test_mmmu_multiple_choice_parsing():
    opts = {"A": "red apple", "B": "green pear", "C": "blue plum", "D": "black grape"}
    rng = random.Random(0)
    assert parse_multi_choice("(B)", opts, rng) == ("B", False)
    assert parse_multi_choice("It is (A), no wait, (C).", opts, rng) == ("C", False)  # last mentioned
    assert parse_multi_choice("A", opts, rng) == ("A", False)
    assert parse_multi_choice("B or D? I pick D", opts, rng) == ("D", False)
    assert parse_multi_choice("I believe the right one is the green pear here", opts, rng) == ("B", False)
    assert parse_multi_choice("green pear", opts, rng)[1] is True  # <= 5 words: no text matching


def test_mmmu_open_parsing():
    assert eval_open("3.14159", parse_open("The result is 3.14159.")) is True  # both round to 3.14
    assert eval_open("3.14159", parse_open("The result is 3.15")) is False
    assert eval_open("1,000", parse_open("so 1000")) is True
    assert eval_open("Paris", parse_open("It is paris, france")) is True
    assert eval_open("a", parse_open("the answer is b")) is False
    assert eval_open(["7", "seven"], parse_open("seven")) is True


def test_mmmu_loader_prompt_and_seeded_random_fallback(tmp_path):
    rows = [
        {"id": "validation_Art_Theory_1", "question": "Which style? <image 1>", "options": "['Baroque', 'Gothic', 'Cubist', 'Pop']",
         "answer": "B", "question_type": "multiple-choice", "image_1": "art1.png", "image_2": None},
        {"id": "validation_Math_2", "question": "Compute x.", "options": "[]", "answer": "12",
         "question_type": "open", "image_1": "m.png"},
    ] + [
        {"id": f"validation_Physics_{k}", "question": "Q", "options": "['a1', 'b1', 'c1', 'd1']",
         "answer": "A", "question_type": "multiple-choice", "image_1": "p.png"} for k in range(3, 9)
    ]  # fmt: skip
    path = tmp_path / "mmmu_val.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    b = get_benchmark("mmmu")
    items = b.load(path)
    assert items[0].question == (
        "Which style? <image 1>\n\n(A) Baroque\n(B) Gothic\n(C) Cubist\n(D) Pop\n\n\n"
        "Answer with the option's letter from the given choices directly."
    )
    assert items[1].question == "Compute x.\n\nAnswer the question using a single word or phrase."
    assert (items[0].category, items[0].subcategory, items[0].image) == (
        "Art_Theory",
        "Art and Design",
        "art1.png",
    )
    preds = {"validation_Art_Theory_1": "(B)", "validation_Math_2": "x = 12"}
    preds |= {f"validation_Physics_{k}": "no idea" for k in range(3, 9)}
    r1 = b.score(preds, items)
    r2 = get_benchmark("mmmu").score(preds, items)
    assert r1["n_random_choice"] == 6
    rng = random.Random(42)
    expected = [rng.choice(["A", "B", "C", "D"]) for _ in range(6)]
    assert [r1["parsed"][f"validation_Physics_{k}"] for k in range(3, 9)] == expected
    assert r1["parsed"] == r2["parsed"] and r1["overall"] == r2["overall"]
    n_right = 2 + expected.count("A")
    assert r1["overall"] == pytest.approx(100 * n_right / 8)
    assert r1["per_category"]["Art_Theory"] == 100.0 and r1["per_category"]["Math"] == 100.0
    other = get_benchmark("mmmu", seed=7).score(preds, items)["parsed"]
    rng7 = random.Random(7)
    assert [other[f"validation_Physics_{k}"] for k in range(3, 9)] == [rng7.choice("ABCD") for _ in range(6)]
