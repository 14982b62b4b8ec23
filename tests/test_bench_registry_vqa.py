"""Registry, VQAv2 / TextVQA / GQA loaders and scorers on files in the official formats."""

from __future__ import annotations

import json

import pytest

from vitune.eval.benchmarks import BenchItem, Benchmark, benchmark_names, get_benchmark, register_benchmark
from vitune.eval.benchmarks.textvqa import normalize_textvqa, textvqa_accuracy

SUFFIX = "\nAnswer the question using a single word or phrase."


def test_registry_lists_all_and_refuses_unknown_and_duplicates():
    assert set(benchmark_names()) >= {
        "vqav2", "textvqa", "gqa", "scienceqa", "pope", "mme", "mmbench", "seed_bench", "mmmu", "chair",
    }  # fmt: skip
    with pytest.raises(KeyError, match="unknown benchmark"):
        get_benchmark("nope")

    class Dup(Benchmark):
        name = "pope"

        def load(self, path):
            return []

        def score(self, preds, items, *, missing="error"):
            return {}

    with pytest.raises(ValueError, match="already registered"):
        register_benchmark(Dup)


def test_custom_benchmark_registers_in_one_class():
    @register_benchmark
    class Echo(Benchmark):
        name = "test_echo"

        def load(self, path):
            return [BenchItem("1", "q")]

        def score(self, preds, items, *, missing="error"):
            return {"overall": 100.0 * (preds["1"] == "q")}

    b = get_benchmark("test_echo")
    assert b.score({"1": "q"}, b.load(".")) == {"overall": 100.0}


def test_missing_predictions_are_never_silent(tmp_path):
    b = get_benchmark("gqa")
    items = [BenchItem("1", "q", answers=["yes"], category="verify"), BenchItem("2", "q", answers=["no"])]
    with pytest.raises(ValueError, match="no prediction"):
        b.score({"1": "yes"}, items)
    assert b.score({"1": "yes"}, items, missing="wrong")["overall"] == 50.0
    r = b.score({"1": "yes"}, items, missing="skip")
    assert (r["overall"], r["n"], r["n_missing"]) == (100.0, 1, 1)


def _write(path, obj):
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_vqav2_loads_official_files_and_keeps_exact_match_when_answers_agree(tmp_path):
    _write(
        tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json",
        {"data_subtype": "val2014", "questions": [
            {"image_id": 42, "question": "Is it sunny?", "question_id": 420},
            {"image_id": 42, "question": "How many dogs?", "question_id": 421},
        ]},
    )  # fmt: skip
    _write(
        tmp_path / "v2_mscoco_val2014_annotations.json",
        {"annotations": [
            {"question_id": 420, "image_id": 42, "question_type": "is it", "answer_type": "yes/no",
             "answers": [{"answer": "yes", "answer_id": i} for i in range(10)]},
            {"question_id": 421, "image_id": 42, "question_type": "how many", "answer_type": "number",
             "answers": [{"answer": a, "answer_id": i} for i, a in enumerate(["2"] * 9 + ["two"])]},
        ]},
    )  # fmt: skip
    b = get_benchmark("vqav2", protocol="official")
    items = b.load(tmp_path)
    assert items[0].question == "Is it sunny?" + SUFFIX
    assert items[0].image == "COCO_val2014_000000000042.jpg"
    # Ten identical "yes": no normalization, so "yes." scores 0; "two" -> "2" when answers differ.
    r = b.score({"420": "yes.", "421": "two"}, items)
    assert r["per_category"] == {"yes/no": 0.0, "number": 100.0}
    assert r["overall"] == 50.0
    # The default (paper) protocol normalizes every prediction first, as LLaVA's submission does.
    paper = get_benchmark("vqav2")
    assert paper.active_protocol == "paper"
    assert paper.score({"420": "yes.", "421": "two"}, items)["overall"] == 100.0


def test_textvqa_always_normalizes():
    # VQAv2 would give 0 here (ten identical answers); m4c normalizes anyway.
    assert textvqa_accuracy("Yes.", ["yes"] * 10) == 1.0
    assert normalize_textvqa("The Man's Hat?") == "man 's hat"
    assert normalize_textvqa("1,000 two") == "1000 2"
    assert textvqa_accuracy("The Man's hat", ["man's hat"] * 10) == 1.0
    # 3 of 10 say "two": leave-one-out (3 x 2/3 + 7 x 1) / 10.
    assert textvqa_accuracy("2", ["two"] * 3 + ["three"] * 7) == pytest.approx(0.9)
    assert textvqa_accuracy("2", ["two"] * 2 + ["three"] * 8) == pytest.approx((2 * 1 / 3 + 8 * 2 / 3) / 10)
    with pytest.raises(ValueError, match="exactly 10"):
        textvqa_accuracy("a", ["a"] * 9)


def test_textvqa_loader_and_score(tmp_path):
    _write(
        tmp_path / "TextVQA_0.5.1_val.json",
        {"dataset_name": "textvqa", "data": [
            {"question_id": 7, "image_id": "abc", "question": "what brand?", "set_name": "val",
             "answers": ["nikon"] * 10, "ocr_tokens": ["Nikon", "F3"]},
            {"question_id": 8, "image_id": "abd", "question": "what year?", "set_name": "val",
             "answers": ["1999"] * 5 + ["1998"] * 5},
        ]},
    )  # fmt: skip
    b = get_benchmark("textvqa")
    items = b.load(tmp_path / "TextVQA_0.5.1_val.json")
    assert items[0].question == "what brand?\nReference OCR token: Nikon, F3" + SUFFIX
    assert items[1].question == "what year?" + SUFFIX and items[1].image == "abd.jpg"
    assert get_benchmark("textvqa", ocr=False).load(tmp_path / "TextVQA_0.5.1_val.json")[0].question == (
        "what brand?" + SUFFIX
    )
    r = b.score({"7": "Nikon.", "8": "1998"}, items)
    assert r["overall"] == pytest.approx(100 * (1.0 + 1.0) / 2)


def test_gqa_balanced_only_and_llava_rstrip_lower(tmp_path):
    qs = {
        "q1": {"question": "Is it red?", "answer": "no", "imageId": "n1", "isBalanced": True,
               "types": {"structural": "verify", "semantic": "attr", "detailed": "verifyAttr"}},
        "q2": {"question": "Which side?", "answer": "left", "imageId": "n2", "isBalanced": True,
               "types": {"structural": "query", "semantic": "rel", "detailed": "relS"}},
        "q3": {"question": "Unbalanced?", "answer": "yes", "imageId": "n3", "isBalanced": False,
               "types": {"structural": "verify", "semantic": "obj", "detailed": "x"}},
        "q4": {"question": "What is it?", "answer": "dog", "imageId": "n4", "isBalanced": True,
               "types": {"structural": "query", "semantic": "cat", "detailed": "y"}},
    }  # fmt: skip
    b = get_benchmark("gqa")
    items = b.load(_write(tmp_path / "testdev_balanced_questions.json", qs))
    assert [it.item_id for it in items] == ["q1", "q2", "q4"]
    assert items[0].image == "n1.jpg" and items[0].question == "Is it red?" + SUFFIX
    # "No." -> "no" right; "Left.." -> "left" right; "dog " keeps its space -> wrong.
    r = b.score({"q1": "No.", "q2": "Left..", "q4": "dog "}, items)
    assert r["overall"] == pytest.approx(200 / 3)
    assert r["per_category"] == {"query": 50.0, "verify": 100.0}
