"""Pinned edge cases of the official VQAv2 accuracy (GT-Vision-Lab/VQA vqaEval.py, master), hand-computed."""

from __future__ import annotations

import pytest

from vitune.data.records import QA
from vitune.eval.vqav2 import normalize_answer, process_punctuation, score_vqa, vqa_accuracy


def gts(*pairs: tuple[str, int]) -> list[str]:
    out = [a for a, k in pairs for _ in range(k)]
    assert len(out) == 10
    return out


# -- leave-one-out: m matching answers -> (m * min(1, (m-1)/3) + (10-m) * min(1, m/3)) / 10 --------
@pytest.mark.parametrize(("m", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out(m, expected):
    answers = gts(("cat", m), ("dog", 10 - m)) if m < 10 else ["cat"] * 10
    assert vqa_accuracy("cat", answers) == pytest.approx(expected)


def test_leave_one_out_position_does_not_matter():
    a = ["cat", "dog", "dog", "cat", "dog", "dog", "dog", "dog", "dog", "dog"]
    assert vqa_accuracy("cat", a) == pytest.approx(0.6)


# -- all ten answers identical: only newline/tab replacement and strip, exact case-sensitive match --
def test_identical_answers_no_number_words():
    assert vqa_accuracy("two", ["2"] * 10) == 0.0
    assert vqa_accuracy("2", ["2"] * 10) == 1.0


def test_identical_answers_case_and_punctuation_matter():
    assert vqa_accuracy("Yes", ["yes"] * 10) == 0.0
    assert vqa_accuracy("yes.", ["yes"] * 10) == 0.0
    assert vqa_accuracy("the dog", ["dog"] * 10) == 0.0


def test_identical_answers_strip_and_newlines():
    assert vqa_accuracy("  yes\n", ["yes"] * 10) == 1.0
    assert vqa_accuracy("red\tcar", ["red car"] * 10) == 1.0
    # "identical" is decided after stripping: one " yes" among nine "yes" still counts as identical.
    assert vqa_accuracy("Yes", ["yes"] * 9 + [" yes"]) == 0.0


# -- answers differ: full normalization of the prediction and of every gt answer --------------------
def test_differing_number_word_and_period():
    assert vqa_accuracy("Two.", gts(("2", 9), ("two", 1))) == 1.0
    assert vqa_accuracy("two", gts(("2", 2), ("3", 8))) == pytest.approx(0.6)
    assert vqa_accuracy("none", gts(("0", 3), ("1", 7))) == pytest.approx(0.9)  # manualMap has none -> 0


def test_differing_articles_and_case():
    assert vqa_accuracy("dog", gts(("dog", 2), ("the dog", 1), ("cat", 7))) == pytest.approx(0.9)
    assert vqa_accuracy("The Dog", gts(("dog", 1), ("A dog", 1), ("cat", 8))) == pytest.approx(0.6)


def test_differing_contractions():
    assert vqa_accuracy("dont", gts(("don't", 2), ("no", 8))) == pytest.approx(0.6)
    assert vqa_accuracy("don't", gts(("dont", 1), ("no", 9))) == pytest.approx(0.3)


def test_comma_between_digits():
    assert vqa_accuracy("1,000", gts(("1000", 1), ("500", 9))) == pytest.approx(0.3)
    assert vqa_accuracy("1000", gts(("1,000", 4), ("500", 6))) == 1.0
    assert vqa_accuracy("red blue", gts(("red,blue", 3), ("red", 7))) == pytest.approx(0.9)


def test_differing_newline():
    assert vqa_accuracy("blue\nsky", gts(("blue sky", 1), ("sky", 9))) == pytest.approx(0.3)
    assert vqa_accuracy("sky", gts(("\tsky ", 1), ("blue", 9))) == pytest.approx(0.3)


def test_decimal_point_kept():
    assert vqa_accuracy("2.5", gts(("2.5", 3), ("25", 7))) == pytest.approx(0.9)
    assert vqa_accuracy("2.5", gts(("25", 3), ("2", 7))) == 0.0


# -- punctuation quirks -----------------------------------------------------------------------------
def test_punctuation_rule():
    assert process_punctuation("red,blue") == "red blue"  # no space next to it -> space
    assert process_punctuation("yes, no") == "yes no"  # touches a space -> deleted
    assert process_punctuation("a-b - c") == "ab  c"  # test on the original text: every "-" deleted
    assert process_punctuation("1,000 (about)") == "1000 about"  # digit,digit anywhere: delete all
    assert process_punctuation("(about)") == " about "
    assert process_punctuation("end.") == "end"
    assert process_punctuation(".5") == ".5"
    assert process_punctuation("it's: ok*") == "it's: ok*"  # ' : * are not in the list


def test_period_count_quirk():
    # The official call passes re.UNICODE (32) as `count`: only the first 32 periods go.
    assert process_punctuation("." * 40) == "." * 8


def test_normalize_answer():
    assert normalize_answer("The two dogs") == "2 dogs"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("Isnt it") == "isn't it"
    assert normalize_answer("Im") == "im"  # the table's capitalized keys never match (lowercased first)


# -- aggregation -------------------------------------------------------------------------------------
def _qa(qid: str, answers: list[str], at: str, qt: str) -> QA:
    return QA(question_id=qid, question="?", answers=answers, answer_type=at, question_type=qt)


def test_score_vqa_aggregation():
    qas = [
        _qa("1", ["yes"] * 10, "yes/no", "is the"),
        _qa("2", gts(("2", 2), ("3", 8)), "number", "how many"),
        _qa("3", gts(("red", 1), ("blue", 9)), "other", "what color"),
        _qa("4", ["no"] * 10, "yes/no", "is the"),
    ]
    preds = {"1": "yes", "2": "two", "3": "red", "4": "yes", "99": "ignored"}
    s = score_vqa(preds, qas)
    assert s.n == 4
    assert s.per_question == pytest.approx({"1": 1.0, "2": 0.6, "3": 0.3, "4": 0.0})
    assert s.overall == 47.5  # 100 * 1.9 / 4
    assert s.per_answer_type == {"yes/no": 50.0, "number": 60.0, "other": 30.0}
    assert s.per_question_type == {"is the": 50.0, "how many": 60.0, "what color": 30.0}
    assert s.n_per_answer_type == {"yes/no": 2, "number": 1, "other": 1}


def test_score_vqa_rounding_two_decimals():
    qas = [_qa(str(i), gts(("a b", 1), ("c", 9)), "other", "what") for i in range(3)]
    s = score_vqa({"0": "a b", "1": "c", "2": "x"}, qas)  # (0.3 + 1 + 0) / 3 * 100 = 43.333...
    assert s.overall == 43.33


def test_score_vqa_missing():
    qas = [_qa("1", ["yes"] * 10, "yes/no", "is"), _qa("2", ["no"] * 10, "yes/no", "is")]
    with pytest.raises(ValueError, match="1 question"):
        score_vqa({"1": "yes"}, qas)
    assert score_vqa({"1": "yes"}, qas, missing="skip").overall == 100.0
    z = score_vqa({"1": "yes"}, qas, missing="zero")
    assert (z.overall, z.n, z.n_missing) == (50.0, 2, 1)
