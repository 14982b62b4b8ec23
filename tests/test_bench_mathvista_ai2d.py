"""MathVista (testmini) and AI2D from their official file layouts, scored on adversarial answers.

Every expected value is derived by hand from the official rules (MathVista's `extract_answer.py` +
`calculate_score.py`; lmms-eval's `ai2d` filter + `exact_match`), including their surprises: a bare
letter goes to the judge, an empty extraction still picks the nearest choice, " B" is not "B".
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vitune.eval.benchmarks import benchmark_names, get_benchmark
from vitune.eval.benchmarks.ai2d import ai2d_match
from vitune.eval.benchmarks.mathvista import build_query, levenshtein, normalize_extraction
from vitune.eval.judge import make_judge
from vitune.eval.runner import BenchSpec, run_benchmarks
from vitune.synth.fakeserver import FakeChatServer

SKILL_A, SKILL_B = ["arithmetic reasoning"], ["logical reasoning", "numeric commonsense"]
# pid: (question_type, answer_type, precision, choices, answer, unit, skills)
PROBLEMS = {
    "1": ("multi_choice", "text", None, ["3/11", "8/11", "6/11", "3/5"], "8/11", None, SKILL_A),
    "2": ("free_form", "integer", None, None, "14", "g", SKILL_A),
    "3": ("free_form", "float", 1, None, "1.2", None, SKILL_A),
    "4": ("free_form", "float", 2, None, "1.45", None, SKILL_A),
    "5": ("free_form", "list", None, None, "[2007, 2008]", None, SKILL_A),
    "6": ("multi_choice", "text", None, ["yes", "no"], "no", None, SKILL_B),
    "7": ("multi_choice", "text", None, ["145°", "140°", "135°", "150°"], "145°", None, SKILL_B),
    "8": ("multi_choice", "text", None, ["ab", "xyz"], "ab", None, SKILL_B),
    "9": ("free_form", "integer", None, None, "3", None, SKILL_B),
    "10": ("free_form", "float", 1, None, "0.6", None, SKILL_B),
}
PREDS = {
    "1": "B",  # not a choice, not a number: the judge extracts it
    "2": "14",  # int rule
    "3": "1.20",  # float rule -> "1.2"
    "4": "1.454",  # float rule, rounded to 2 places -> "1.45"
    "5": "[2007, 2008]",  # lists always go to the judge
    "6": "no",  # is one of the choices
    "7": "(C) 135°",  # judge -> "(C) 135°" -> C -> wrong
    # "8": missing -> wrong, although the nearest choice to "" would be the answer
    "9": "3.0",  # int("3.0") fails: judge -> "3.0" -> int(float()) -> "3"
    "10": "0.6 ",  # float() accepts surrounding spaces
}
JUDGE_REPLIES = {"B": "B", "[2007, 2008]": "[2007, 2008]", "(C) 135°": "(C) 135°", "3.0": "3.0"}


def _mathvista(tmp_path: Path) -> Path:
    d = tmp_path / "MathVista" / "data"
    (d / "images").mkdir(parents=True)
    rows = {}
    for pid, (qt, at, prec, choices, answer, unit, skills) in PROBLEMS.items():
        Image.new("RGB", (24, 16), (int(pid) * 20, 90, 30)).save(d / "images" / f"{pid}.jpg")
        rows[pid] = {
            "question": f"What is asked in problem {pid}?",
            "image": f"images/{pid}.jpg",
            "choices": choices,
            "unit": unit,
            "precision": prec,
            "answer": answer,
            "question_type": qt,
            "answer_type": at,
            "pid": pid,
            "metadata": {"split": "testmini", "language": "english", "source": "S" + pid[-1],
                         "category": "math-targeted-vqa", "task": "textbook question answering" if int(pid) <= 5
                         else "figure question answering", "context": "scientific figure",
                         "grade": "college", "skills": skills},
        }  # fmt: skip
    (d / "testmini.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (d / "query.json").write_text(json.dumps({"1": "QUERY ONE"}), encoding="utf-8")
    return d


def _response_in(body: dict) -> str:
    text = body["messages"][0]["content"]
    return re.search(r"\n\n([^\n]*)\n\nExtracted answer: $", text).group(1)


def test_registered():
    assert {"mathvista", "ai2d"} <= set(benchmark_names())


def test_mathvista_query_as_official(tmp_path):
    items = {it.item_id: it for it in get_benchmark("mathvista").load(_mathvista(tmp_path))}
    assert items["1"].question == "QUERY ONE"  # query.json wins
    assert items["2"].question == (
        "Hint: Please answer the question requiring an integer answer and provide the final value, "
        "e.g., 1, 2, 3, at the end.\nQuestion: What is asked in problem 2? (Unit: g)"
    )
    assert items["7"].question.endswith("Choices:\n(A) 145°\n(B) 140°\n(C) 135°\n(D) 150°")
    assert items["7"].image == "images/7.jpg" and items["7"].answers == ["145°"]
    fmt = build_query({"question": "Q?", "choices": ["x", "y"], "question_type": "multi_choice",
                       "answer_type": "text"}, "format")  # fmt: skip
    assert fmt == "Q?\nA. x\nB. y\nAnswer with the option's letter from the given choices directly."


def test_mathvista_normalization_rules():
    mc = {"question_type": "multi_choice", "answer_type": "text", "choices": ["145°", "140°", "135°"]}
    assert normalize_extraction(" (b) whatever", mc) == "140°"  # "(b)" -> B
    assert normalize_extraction("C", mc) == "135°"
    assert normalize_extraction("", mc) == "145°"  # nearest to "": first of the equals
    assert normalize_extraction("139°", mc) == "135°"  # distances 2, 2, 1
    assert normalize_extraction("14O°", mc) == "145°"  # distances 1, 1, 2: the first of the equals
    num = {"question_type": "free_form", "answer_type": "integer"}
    assert normalize_extraction("7.9", num) == "7" and normalize_extraction("seven", num) is None
    flt = {"question_type": "free_form", "answer_type": "float", "precision": 2}
    assert normalize_extraction("2.005", flt) == str(round(2.005, 2))  # Python's float rounding
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3


def test_mathvista_rules_only(tmp_path):
    bench = get_benchmark("mathvista", extract="rules")
    assert not bench.needs_judge
    items = bench.load(_mathvista(tmp_path))
    res = bench.score(PREDS, items, missing="wrong")
    # right: 2, 3, 4, 6, 10 by the rules, and 7 by the nearest-choice-to-"" rule; wrong: 1 ("" -> 3/5),
    # 5 ("" != list), 8 (missing), 9 ("" is no integer).
    assert [k for k, v in res["items"].items() if v["true_false"]] == ["2", "3", "4", "6", "7", "10"]
    assert res["overall"] == 60.0 and res["n"] == 10 and res["n_missing"] == 1
    assert res["extracted_by"] == {"missing": 1, "rule": 5, "unextracted": 4} and res["n_unextracted"] == 4
    assert res["items"]["1"]["prediction"] == "3/5"


def test_mathvista_judge_extraction(tmp_path):
    bench = get_benchmark("mathvista")
    items = bench.load(_mathvista(tmp_path))
    bodies: list[dict] = []

    def reply(body: dict) -> str:
        bodies.append(body)
        return JUDGE_REPLIES[_response_in(body)]

    with FakeChatServer(reply_fn=reply) as srv:
        judge = make_judge(srv.url, "judge", cache=tmp_path / "j.sqlite", api_key="k", backoff_base=0.01)
        res = bench.score(PREDS, items, missing="wrong", judge=judge)
    sent = [b["messages"][0]["content"] for b in bodies]
    assert len(sent) == 4 and all(s.startswith("Please read the following example.") for s in sent)
    assert any(s.endswith("QUERY ONE\n\nB\n\nExtracted answer: ") for s in sent)
    assert {b["temperature"] for b in bodies} == {0}
    right = [k for k, v in res["items"].items() if v["true_false"]]
    assert right == ["1", "2", "3", "4", "5", "6", "9", "10"] and res["overall"] == 80.0
    assert res["per_skill"] == {"arithmetic reasoning": 100.0, "logical reasoning": 60.0,
                                "numeric commonsense": 60.0}  # fmt: skip
    assert res["per_category"] == {"figure question answering": 60.0, "textbook question answering": 100.0}
    assert res["breakdowns"]["answer_type"] == {"float": 100.0, "integer": 100.0, "list": 100.0,
                                                "text": 50.0}  # fmt: skip


def _ai2d_release(tmp_path: Path) -> Path:
    d = tmp_path / "ai2d"
    (d / "questions").mkdir(parents=True)
    (d / "images").mkdir()
    for img, qs in {"1.png": {"Which is a producer?": (["fox", "grass", "hawk"], 1, "q1"),
                              "What eats grass?": (["rabbit", "sun", "soil", "water"], 0, "q2")},
                    "2.png": {"Not in the test split?": (["a", "b"], 0, "q3")}}.items():  # fmt: skip
        Image.new("RGB", (20, 20), "white").save(d / "images" / img)
        questions = {
            t: {"answerTexts": o, "correctAnswer": a, "abcLabel": False, "questionId": i}
            for t, (o, a, i) in qs.items()
        }
        (d / "questions" / f"{img}.json").write_text(json.dumps({"imageName": img, "questions": questions}))
    (d / "ai2d_test_ids.csv").write_text("1\n")
    return d


@pytest.mark.parametrize(
    ("response", "right"),
    [("B", True), ("b", True), ("B.", True), ("(B)", True), ("B. grass", True), ("  B. grass", True),
     (" B", False), ("B ", False), ("The answer is B", False), ("grass", False), ("C", False), ("", False)],
)  # fmt: skip
def test_ai2d_match_as_lmms_eval(response, right):
    assert ai2d_match(response, "B") is right


def test_ai2d_release_layout_and_runner(tmp_path):
    d = _ai2d_release(tmp_path)
    bench = get_benchmark("ai2d")
    items = bench.load(d)
    assert [it.item_id for it in items] == ["q1", "q2"]  # image 2 is not in the test list
    assert items[0].question == (
        "Which is a producer?\nA. fox\nB. grass\nC. hawk\n"
        "Answer with the option's letter from the given choices directly."
    )
    assert items[0].answers == ["B"] and items[1].answers == ["A"]
    answers = {"Which is a producer?": "B.", "What eats grass?": " A"}

    def answer(gen_items):
        return [answers[it.text.split("\n")[0]] for it in gen_items]

    res = run_benchmarks([BenchSpec("ai2d", d)], tmp_path / "out", answer_fn=answer, model_id="m",
                         show_progress=False)  # fmt: skip
    scores = json.loads((tmp_path / "out" / "ai2d" / "scores.json").read_text())
    assert scores["overall"] == 50.0 and scores["n"] == 2 and scores["n_failed_parse"] == 1
    assert res is not None


def test_ai2d_parquet_layout(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "PNG")
    table = pa.table({"question": ["Q1?", "Q2?"], "options": [["x", "y"], ["u", "v", "w"]],
                      "answer": ["1", "2"], "image": [{"bytes": buf.getvalue(), "path": None}] * 2})  # fmt: skip
    (tmp_path / "ai2d" / "data").mkdir(parents=True)
    pq.write_table(table, tmp_path / "ai2d" / "data" / "test-00000-of-00001.parquet")
    items = get_benchmark("ai2d").load(tmp_path / "ai2d")
    assert [it.answers[0] for it in items] == ["B", "C"] and isinstance(items[0].image, bytes)
    res = get_benchmark("ai2d").score({items[0].item_id: "B", items[1].item_id: "A"}, items)
    assert res["overall"] == 50.0 and res["per_category"] == {"2 options": 100.0, "3 options": 0.0}


def test_mathvista_refuses_a_choice_problem_without_choices(tmp_path):
    d = _mathvista(tmp_path)
    rows = json.loads((d / "testmini.json").read_text(encoding="utf-8"))
    rows["1"]["choices"] = None
    (d / "testmini.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValueError, match="problem 1: a multi_choice problem without choices"):
        get_benchmark("mathvista").load(d)
