"""The quickstart VQA evaluation: the runner's prompt and cache, majority baseline, results and table rows."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from vitune.data.records import QA, ImageRecord
from vitune.eval.vqa_eval import RESULTS_FILE, TABLE_COLUMNS, majority_baseline, run_vqa_eval, vqa_table_rows


def _qa(qid: str, qt: str, answers: list[str], at: str = "other", mc: str = "") -> QA:
    return QA(qid, f"question {qid}?", answers, answer_type=at, question_type=qt, multiple_choice_answer=mc)


def _records(root=None) -> list[ImageRecord]:
    recs = []
    for i in range(4):
        qas = [
            _qa(f"{i + 1}0", "what color", ["red"] * 10),
            _qa(f"{i + 1}1", "how many", ["2"] * 6 + ["3"] * 4, at="number"),
            _qa(f"{i + 1}2", "is there", ["yes"] * 10, at="yes/no"),
        ]
        recs.append(ImageRecord(str(10 + i), f"images/{i}.png", 32, 32, split="val", qas=qas))
        if root is not None:
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(root / "images" / f"{i}.png")
    return recs


TRAIN = [
    _qa("t1", "what color", [], mc="blue"),
    _qa("t2", "what color", [], mc="red"),
    _qa("t3", "what color", [], mc="red"),
    _qa("t4", "how many", [], mc="2"),
    _qa("t5", "is there", [], mc="no"),
    _qa("t6", "is there", [], mc="yes"),  # tie: alphabetical first ("no") wins
    _qa("t7", "why", [], mc="red"),
]


class CountingModel:
    """A stub model: answers "red" to everything and records every question it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.calls = 0

    def __call__(self, items):
        self.calls += 1
        self.asked.extend(it.text for it in items)
        return ["red" for _ in items]


def test_majority_baseline():
    b = majority_baseline(TRAIN)
    assert b.by_question_type == {"what color": "red", "how many": "2", "is there": "no", "why": "red"}
    assert b.global_answer == "red"
    assert b.predict(_qa("x", "unseen type", ["a"] * 10)) == "red"
    # Falls back to the majority of the 10 answers when multiple_choice_answer is absent.
    assert majority_baseline([_qa("y", "what", ["cat", "dog", "dog"])]).by_question_type == {"what": "dog"}
    with pytest.raises(ValueError):
        majority_baseline([])


def test_run_scores_model_and_baseline(tmp_path):
    model = CountingModel()
    recs = _records(tmp_path)
    res = run_vqa_eval(
        recs, tmp_path, TRAIN, tmp_path / "out", answer_fn=model, batch_size=2, protocol="official"
    )
    assert res["n_questions"] == 12 and res["n_images"] == 4
    # model says "red": what color 100, how many 0, is there 0 -> 33.33 overall
    assert res["model"]["overall"] == 33.33
    assert res["model"]["per_question_type"] == {"what color": 100.0, "how many": 0.0, "is there": 0.0}
    # baseline: red (100), 2 (6 of 10 -> 1.0), no (0)
    assert res["baseline"]["per_question_type"] == {"what color": 100.0, "how many": 100.0, "is there": 0.0}
    assert res["baseline"]["overall"] == 66.67
    assert model.asked[0].endswith("\nAnswer the question using a single word or phrase.")
    assert json.loads((tmp_path / "out" / RESULTS_FILE).read_text()) == res

    rows = vqa_table_rows(res)
    assert len(TABLE_COLUMNS) == 5 and all(len(r) == 5 for r in rows)
    assert rows[0] == ("overall", "12", "33.33", "66.67", "-33.34")
    assert [r[0] for r in rows[1:4]] == ["answer: number", "answer: other", "answer: yes/no"]
    assert len(vqa_table_rows(res, max_question_types=1)) == 5


def test_resume_asks_only_missing(tmp_path):
    out = tmp_path / "out"
    first = CountingModel()
    run_vqa_eval(_records(tmp_path)[:2], tmp_path, TRAIN, out, answer_fn=first, model_id="m", chunk_size=4)
    assert len(first.asked) == 6
    second = CountingModel()
    res = run_vqa_eval(_records(tmp_path), tmp_path, TRAIN, out, answer_fn=second, model_id="m", chunk_size=4)
    assert len(second.asked) == 6  # only the 6 questions of the two new images
    assert res["n_questions"] == 12 and res["model"]["n"] == 12
    third = CountingModel()
    run_vqa_eval(_records(tmp_path), tmp_path, TRAIN, out, answer_fn=third, model_id="m")
    assert third.calls == 0
    # Other generation settings (or another model) never reuse the cached answers.
    fourth = CountingModel()
    run_vqa_eval(_records(tmp_path), tmp_path, TRAIN, out, answer_fn=fourth, model_id="m", max_new_tokens=4)
    assert len(fourth.asked) == 12


def test_unsafe_image_path_refused(tmp_path):
    rec = ImageRecord("7", "../outside.png", 8, 8, qas=[_qa("1", "what", ["x"] * 10)])
    with pytest.raises(ValueError):
        run_vqa_eval([rec], tmp_path, TRAIN, tmp_path / "out", answer_fn=CountingModel())
