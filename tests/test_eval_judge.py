"""LLM-judged benchmarks (LLaVA-Bench, MM-Vet) against a real local OpenAI-compatible server.

The fake server answers with seeded judge replies chosen by the model answer inside the prompt,
including malformed ones, so the tests see the retries on the wire, the failed items excluded and
counted, the cache replaying a whole run, and aggregates equal to numbers computed by hand.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from vitune.eval.benchmarks import get_benchmark
from vitune.eval.benchmarks.llava_bench import parse_review
from vitune.eval.benchmarks.mm_vet import GRADER_PROMPT, RETRY_SUFFIX, parse_grade
from vitune.eval.judge import make_judge
from vitune.synth.cache import request_key
from vitune.synth.fakeserver import FakeChatServer


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


class Recorder:
    """A reply function: seeded replies per model answer, in order of asking, and every request body."""

    def __init__(self, replies: dict[str, list[str]], extract) -> None:
        self.replies = replies
        self.extract = extract
        self.bodies: dict[str, list[dict]] = defaultdict(list)
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> str:
        pred = self.extract(body)
        with self.lock:
            seen = self.bodies[pred]
            seen.append(body)
            seq = self.replies[pred]
            return seq[min(len(seen), len(seq)) - 1]


def _judge(srv: FakeChatServer, tmp_path: Path, **kw):
    opts = {"concurrency": 2, "timeout": 5.0, "backoff_base": 0.01, "backoff_max": 0.05, "api_key": "k"}
    return make_judge(srv.url, "judge-model", cache=tmp_path / "judge.sqlite", **{**opts, **kw})


# ---- LLaVA-Bench --------------------------------------------------------------------------------

LB_ROWS = [  # question id, category, model answer, judge replies in order of asking
    ("1", "conv", "A1", ["8 9\nBoth fine; 2 is more detailed."]),
    ("2", "conv", "A2", ["6 3\nAssistant 2 misses the point."]),
    ("3", "detail", "A3", ["7, 7\nEqual."]),  # official split(' ') would call this malformed
    ("4", "complex", "A4", ["Assistant 1 did well.", "9 6\nNow with scores first."]),
    ("5", "complex", "A5", ["I cannot rate these."]),  # never parses
    ("6", "detail", "A6", ["10 5\nThe reference is better."]),
]


def _llava_bench(tmp_path: Path) -> Path:
    d = tmp_path / "llava-bench-in-the-wild"
    (d / "images").mkdir(parents=True)
    _jsonl(d / "context.jsonl", [
        {"id": "001", "image": "001.jpg", "caption": "A bowl of ramen on a wooden table."},
        {"id": "002", "image": "002.jpg", "caption": ["A red car.", "It is parked by a lake."]},
    ])  # fmt: skip
    _jsonl(d / "questions.jsonl", [
        {"question_id": int(q), "image": f"00{1 + int(q) % 2}.jpg", "text": f"Question {q}?", "category": c}
        for q, c, _, _ in LB_ROWS
    ])  # fmt: skip
    # Reference answers in another order: they are matched by question_id, not by line.
    _jsonl(d / "answers_gpt4.jsonl", [
        {"question_id": int(q), "text": f"Reference {q}.", "answer_id": f"r{q}", "model_id": "gpt-4-0314"}
        for q, _, _, _ in reversed(LB_ROWS)
    ])  # fmt: skip
    return d


def _assistant2(body: dict) -> str:
    user = body["messages"][-1]["content"]
    return user.split("[Assistant 2]\n", 1)[1].split("\n", 1)[0]


def test_parse_review_first_line_two_scores():
    assert parse_review("8 9\nbecause") == (8.0, 9.0)
    assert parse_review("8, 9") == parse_review("8  9") == (8.0, 9.0)
    assert parse_review("7.5 6\n") == (7.5, 6.0)
    for bad in ("Assistant 1: 8\n9", "8 9 10", "8", "", "eight nine", "nan 3"):
        with pytest.raises(ValueError):
            parse_review(bad)


def test_llava_bench_review_retries_exclusion_summary_and_cache(tmp_path):
    bench = get_benchmark("llava_bench", parsing="strict")  # the stricter option: re-ask, exclude
    assert bench.needs_judge
    items = bench.load(_llava_bench(tmp_path))
    assert [it.item_id for it in items] == ["1", "2", "3", "4", "5", "6"]
    assert items[0].image == "images/002.jpg" and items[0].answers == ["Reference 1."]
    assert items[0].question == "Question 1?"
    preds = {q: a for q, _, a, _ in LB_ROWS}
    with pytest.raises(ValueError, match="LLM judge"):
        bench.score(preds, items)

    rec = Recorder({a: r for _, _, a, r in LB_ROWS}, _assistant2)
    with FakeChatServer(reply_fn=rec, faults=["500"]) as srv:
        judge = _judge(srv, tmp_path)
        res = bench.score(preds, items, judge=judge)
        n_requests = len(srv.log)

        # Parse retries on the wire: A4 asked twice, A5 five times (max_attempts), the others once;
        # plus the 500 (a transport error, retried inside the backend, not a parse attempt).
        assert {a: len(b) for a, b in rec.bodies.items()} == {
            "A1": 1, "A2": 1, "A3": 1, "A4": 2, "A5": 5, "A6": 1,
        }  # fmt: skip
        assert n_requests == 11 + 1 and judge.backend.stats["retries"] == 1

        # The failed item is excluded and shown, never scored -1.
        assert res["n_judge_failed"] == 1 and res["judge_failed_ids"] == ["5"]
        assert "malformed reply after 5 attempt(s)" in res["judge_failures"]["5"]
        assert res["n"] == 5 and "5" not in res["reviews"]
        assert res["reviews"]["3"] == [7.0, 7.0]
        # Hand-computed summarize_gpt_review numbers.
        assert res["per_category"] == {"complex": 66.7, "conv": 85.7, "detail": 70.6}
        assert res["overall"] == 75.0
        assert res["absolute"]["all"] == {"relative": 75.0, "reference": 8.0, "model": 6.0, "n": 5}
        assert res["absolute"]["detail"] == {"relative": 70.6, "reference": 8.5, "model": 6.0, "n": 2}
        assert res["judge"]["model"] == "judge-model"
        assert res["judge"]["retries_malformed"] == 1 + 4

        # The review prompt: context, question, reference as Assistant 1, model as Assistant 2, rule.
        body = rec.bodies["A2"][0]
        assert body["model"] == "judge-model"
        assert (body["temperature"], body["max_tokens"]) == (0.2, 1024)
        assert body["messages"][0]["role"] == "system"
        user = body["messages"][1]["content"]
        assert user.startswith("[Context]\nA bowl of ramen on a wooden table.\n\n[Question]\nQuestion 2?\n\n")
        assert "[Assistant 1]\nReference 2.\n\n[End of Assistant 1]\n\n[Assistant 2]\nA2\n\n" in user
        assert "[End of Assistant 2]\n\n[System]\n" in user and "two scores" in user
        # A list of captions is joined one per line, as officially.
        assert rec.bodies["A1"][0]["messages"][1]["content"].startswith(
            "[Context]\nA red car.\nIt is parked by a lake.\n\n[Question]\nQuestion 1?"
        )

        # A re-run pays nothing: every reply (malformed ones too) comes from the cache.
        again = bench.score(preds, items, judge=judge)
        assert len(srv.log) == n_requests
        assert again["judge"]["replies_sent"] == 0 and again["judge"]["replies_cached"] == 11
        strip = lambda r: {k: v for k, v in r.items() if k != "judge"}  # noqa: E731
        assert strip(again) == strip(res)
        judge.close()


def test_llava_bench_official_rule_file_and_failed_requests(tmp_path):
    rule = {
        f"llava_bench_{c}": {"role": "Helper", "prompt": f"RULE {c}"} for c in ("conv", "detail", "complex")
    }
    (tmp_path / "rule.json").write_text(json.dumps(rule))
    bench = get_benchmark("llava_bench", rule_file=tmp_path / "rule.json")
    items = bench.load(_llava_bench(tmp_path))[:3]
    preds = {"1": "A1", "2": "A2", "3": "A3"}
    rec = Recorder(
        {"A1": ["8 9"], "A2": ["6 3"], "A3": ["7 7"]},
        lambda b: b["messages"][1]["content"].split("[Helper 2]\n")[1].split("\n")[0],
    )
    broken: set[str] = set()  # request keys the server answers with a 500
    faults = lambda n, key, attempt: "500" if key in broken else None  # noqa: E731
    with FakeChatServer(reply_fn=rec, faults=faults) as srv:
        judge = _judge(srv, tmp_path, max_retries=1)
        # Item 2's request always gets a 500: the backend gives up, the item fails, visibly.
        key2 = request_key(judge.identity(), bench.judge_task(items[1], "A2").attempts[0].messages,
                           {"temperature": 0.2, "max_tokens": 1024, "attempt": 0})  # fmt: skip
        broken.add(key2)
        res = bench.score(preds, items, judge=judge)
        assert res["judge_failed_ids"] == ["2"] and res["judge_failures"]["2"].startswith("request failed")
        assert sum(e["key"] == key2 for e in srv.log) == 2  # first try + 1 transport retry
        assert "[Helper 1]\nReference 1." in rec.bodies["A1"][0]["messages"][1]["content"]
        assert rec.bodies["A1"][0]["messages"][1]["content"].endswith("[System]\nRULE conv\n\n")
        assert res["absolute"]["all"]["n"] == 2
        # A failed request is not cached: once the server recovers, only that item is asked again.
        broken.clear()
        n0 = len(srv.log)
        res = bench.score(preds, items, judge=judge)
        assert [e["key"] for e in srv.log[n0:]] == [key2]
        assert res["n_judge_failed"] == 0 and res["absolute"]["all"]["n"] == 3
        assert res["per_category"] == {"conv": round(6.0 / 7.0 * 100, 1), "detail": 100.0}
        judge.close()


def test_llava_bench_official_parse_and_judge_runs(tmp_path):
    """Default parsing is eval_gpt_review_bench.py's: asked once, a malformed line is [-1, -1] and
    averaged in; `runs=3` reviews every item three times and reports the mean, as published."""
    bench = get_benchmark("llava_bench", runs=3)
    items = bench.load(_llava_bench(tmp_path))
    preds = {q: a for q, _, a, _ in LB_ROWS}
    rec = Recorder({a: r for _, _, a, r in LB_ROWS}, _assistant2)
    with FakeChatServer(reply_fn=rec) as srv:
        judge = _judge(srv, tmp_path)
        res = bench.score(preds, items, judge=judge)
        judge.close()
    # Every item asked once per run, never re-asked; A4's second ask (run 1) gets "9 6".
    assert {a: len(b) for a, b in rec.bodies.items()} == {f"A{i}": 3 for i in range(1, 7)}
    r0, r1, r2 = res["runs"]
    # Run 0: A3 ("7, 7" -> three parts), A4 and A5 are [-1, -1], averaged in.
    assert r0["reviews"]["3"] == [-1.0, -1.0] and r0["n_malformed"] == 3 and r0["n"] == 6
    # all: reference (8 + 6 - 1 - 1 - 1 + 10) / 6 = 3.5, model (9 + 3 - 1 - 1 - 1 + 5) / 6 = 2.333
    assert r0["overall"] == round(2.333 / 3.5 * 100, 1) == 66.7
    assert r0["per_category"] == {"complex": 100.0, "conv": 85.7, "detail": round(2.0 / 4.5 * 100, 1)}
    # Runs 1 and 2: A4 now (9, 6): reference 31 / 6 = 5.167, model 21 / 6 = 3.5.
    assert r1["overall"] == r2["overall"] == round(3.5 / 5.167 * 100, 1) == 67.7
    assert res["overall"] == round((66.7 + 67.7 + 67.7) / 3, 1) == 67.4
    assert res["overall_std"] == 0.5  # population std of (66.7, 67.7, 67.7): 0.471
    assert res["judge_runs"] == 3 and res["overall_per_run"] == [66.7, 67.7, 67.7]
    assert res["per_category"]["complex"] == round((100.0 + 2 * round(5.0 / 8.0 * 100, 1)) / 3, 1)
    assert res["n_judge_failed"] == 0


# ---- MM-Vet -------------------------------------------------------------------------------------

MMVET = {  # id: (capabilities, answer, model answer, replies to the first ask, replies to re-asks)
    "v1_0": (["rec"], "cat", "P0", ["0.8"], []),
    "v1_1": (["ocr", "math"], "3<AND>4", "P1", ["1.0"], []),
    "v1_2": (["rec", "know"], "Paris", "P2", ["0.0 because it is wrong"], []),
    "v1_3": (["math", "ocr"], "12", "P3", ["Correct"], ["0.6"]),
    "v1_4": (["rec"], "dog<OR>puppy", "P4", ["good"], ["great"]),  # never a number
    "v1_5": (["ocr", "rec"], "STOP", "P5", ["1.5"], ["0.4"]),  # out of range, then fine
}


def _mm_vet(tmp_path: Path) -> Path:
    d = tmp_path / "mm-vet"
    (d / "images").mkdir(parents=True)
    doc = {
        k: {"imagename": f"{k}.png", "capability": caps, "question": f"Q {k}?", "answer": ans}
        for k, (caps, ans, _, _, _) in MMVET.items()
    }
    (d / "mm-vet.json").write_text(json.dumps(doc), encoding="utf-8")
    return d


def _mmvet_extract(body: dict) -> str:
    content = body["messages"][0]["content"]
    row = content.split(GRADER_PROMPT + "\n", 1)[1]
    retry = row.endswith(RETRY_SUFFIX)
    return row.split(" | ")[2] + ("#retry" if retry else "")


def test_parse_grade_as_official():
    assert parse_grade("0.5") == 0.5 and parse_grade("1.0\n") == 1.0 and parse_grade("0 because") == 0.0
    for bad in ("1.2", "-0.1", "nan", "", "Correct", "0.5."):
        with pytest.raises(ValueError):
            parse_grade(bad)


def test_mm_vet_grading_retries_exclusion_and_aggregation(tmp_path):
    bench = get_benchmark("mm_vet")
    items = bench.load(_mm_vet(tmp_path))
    assert items[1].image == "images/v1_1.png" and items[1].category == "math_ocr"
    preds = {k: v[2] for k, v in MMVET.items()}
    replies = {}
    for _, _, p, first, again in MMVET.values():
        replies[p] = first
        replies[p + "#retry"] = again or ["0.0"]
    rec = Recorder(replies, _mmvet_extract)
    with FakeChatServer(reply_fn=rec) as srv:
        judge = _judge(srv, tmp_path)
        res = bench.score(preds, items, judge=judge)
        # Retries on the wire: P3 and P5 re-asked once; P4 re-asked five times, then given up.
        assert {p: len(b) for p, b in rec.bodies.items()} == {
            "P0": 1, "P1": 1, "P2": 1, "P3": 1, "P3#retry": 1, "P4": 1, "P4#retry": 5, "P5": 1, "P5#retry": 1,
        }  # fmt: skip
        assert len(srv.log) == 13
        temps = [b["temperature"] for b in rec.bodies["P4"] + rec.bodies["P4#retry"]]
        assert temps == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
        assert all(b["max_tokens"] == 3 for bs in rec.bodies.values() for b in bs)
        row = rec.bodies["P1"][0]["messages"][0]["content"].split(GRADER_PROMPT + "\n")[1]
        assert row == "Q v1_1? | 3 <AND> 4 | P1 | "

        assert res["n_judge_failed"] == 1 and res["judge_failed_ids"] == ["v1_4"]
        assert "malformed reply after 6 attempt(s)" in res["judge_failures"]["v1_4"]
        assert res["item_scores"] == {"v1_0": 0.8, "v1_1": 1.0, "v1_2": 0.0, "v1_3": 0.6, "v1_5": 0.4}
        # Hand-computed: total 2.8 / 5; rec (.8 + 0 + .4) / 3; ocr (1 + .6 + .4) / 3; math 1.6 / 2.
        assert res["overall"] == res["total"] == 56.0 and res["n"] == 5
        assert res["per_capability"] == {"ocr": 66.7, "rec": 40.0, "math": 80.0, "know": 0.0}
        assert res["n_per_capability"] == {"ocr": 3, "rec": 3, "math": 2, "know": 1}
        assert res["per_combination"] == {"math_ocr": 80.0, "know_rec": 0.0, "ocr_rec": 40.0, "rec": 80.0}
        assert res["n_per_combination"]["math_ocr"] == 2
        assert res["judge"]["retries_malformed"] == 1 + 1 + 5

        # missing="wrong": a missing answer scores 0.0 without a request; "error" refuses.
        n0 = len(srv.log)
        part = {k: v for k, v in preds.items() if k != "v1_0"}
        with pytest.raises(ValueError, match="no prediction"):
            bench.score(part, items, judge=judge)
        wrong = bench.score(part, items, judge=judge, missing="wrong")
        assert len(srv.log) == n0  # everything else cached, v1_0 never asked
        assert wrong["item_scores"]["v1_0"] == 0.0 and wrong["n_missing"] == 1
        assert wrong["overall"] == round(2.0 / 5 * 100, 1)
        judge.close()


def test_make_judge_default_cache_location_and_empty_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VITUNE_JUDGE_CACHE", str(tmp_path / "env" / "judge.sqlite"))
    judge = make_judge("http://127.0.0.1:9/v1", "m", api_key="k")
    assert judge.cache is not None and (tmp_path / "env" / "judge.sqlite").exists()
    assert judge.run([]) == []  # nothing to judge: no request, no event loop
    judge.close()
    (tmp_path / "d").mkdir()
    with make_judge("http://127.0.0.1:9/v1", "m", api_key="k", cache=tmp_path / "d") as j2:
        assert j2.cache is not None and (tmp_path / "d" / "judge.sqlite").exists()
    assert make_judge("http://127.0.0.1:9/v1", "m", api_key="k", cache=False).cache is None


# ---- MM-Vet, repeated judge runs (the official num_run) -----------------------------------------

# Replies to the first ask of each model answer, in order of asking: one per run (runs go one after
# the other, so the k-th first ask of an answer is run k). Run 1: P5 needs a re-ask, P4 never parses.
RUN_REPLIES = {
    "P0": ["0.8", "0.6", "1.0"],
    "P1": ["1.0", "1.0", "0.5"],
    "P2": ["0.0", "0.2", "0.1"],
    "P3": ["0.6", "0.6", "0.6"],
    "P4": ["1.0", "good", "0.5"],
    "P4#retry": ["bad"],
    "P5": ["0.4", "Correct", "0.4"],
    "P5#retry": ["0.9"],
}


def _pstd(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return (sum((x - m) ** 2 for x in xs) / len(xs)) ** 0.5


def test_mm_vet_judge_runs_mean_std_resume_and_per_run_failures(tmp_path):
    items = get_benchmark("mm_vet").load(_mm_vet(tmp_path))
    preds = {k: v[2] for k, v in MMVET.items()}
    with pytest.raises(ValueError, match="runs"):
        get_benchmark("mm_vet", runs=0)
    rec = Recorder(RUN_REPLIES, _mmvet_extract)
    with FakeChatServer(reply_fn=rec) as srv:
        judge = _judge(srv, tmp_path)
        two = get_benchmark("mm_vet", runs=2).score(preds, items, judge=judge)
        # Run 0: six first asks; run 1: six, P5 re-asked once, P4 re-asked five times.
        assert len(srv.log) == 6 + 6 + 1 + 5
        assert two["judge_runs"] == 2 and two["total_per_run"] == [63.3, 66.0]

        # Resumed with a third run: runs 0 and 1 come from the cache, only run 2 is asked.
        res = get_benchmark("mm_vet", runs=3).score(preds, items, judge=judge)
        assert len(srv.log) == 18 + 6
        assert res["judge"]["replies_cached"] == 18 and res["judge"]["replies_sent"] == 6
        assert res["runs"][:2] == two["runs"]
        # Every run is its own request (own cache key), though the bodies are identical.
        assert len(set(srv.keys_seen())) == len(srv.log)
        assert rec.bodies["P0"][0] == rec.bodies["P0"][2]
        assert [b["temperature"] for b in rec.bodies["P0"]] == [0.0, 0.0, 0.0]
    judge.close()

    # Per-run scores by hand (percent): v1_4 is left out of run 1 only.
    total = [3.8 / 6 * 100, 3.3 / 5 * 100, 3.1 / 6 * 100]
    caps = {
        "rec": [2.2 / 4 * 100, 1.7 / 3 * 100, 2.0 / 4 * 100],
        "ocr": [2.0 / 3 * 100, 2.5 / 3 * 100, 1.5 / 3 * 100],
        "math": [1.6 / 2 * 100, 1.6 / 2 * 100, 1.1 / 2 * 100],
        "know": [0.0, 20.0, 10.0],
    }
    assert res["total_per_run"] == [63.3, 66.0, 51.7]
    assert res["overall"] == res["total"] == round(sum(total) / 3, 1) == 60.3
    # numpy's population std (ddof=0), as the official script; the sample std would be 7.6.
    assert res["overall_std"] == res["total_std"] == round(_pstd(total), 1) == 6.2
    assert res["per_capability"] == {c: round(sum(v) / 3, 1) for c, v in caps.items()}
    assert res["per_capability"] == {"rec": 53.9, "ocr": 66.7, "math": 71.7, "know": 10.0}
    assert res["per_capability_std"] == {c: round(_pstd(v), 1) for c, v in caps.items()}
    assert res["per_capability_std"] == {"rec": 2.8, "ocr": 13.6, "math": 11.8, "know": 8.2}
    assert res["per_category"] == res["per_capability"]
    assert res["per_category_std"] == res["per_capability_std"]
    assert res["per_combination"] == {"rec": 75.0, "math_ocr": 71.7, "ocr_rec": 56.7, "know_rec": 10.0}

    # Failures per run; across runs, n counts the items every run scored.
    assert res["n_judge_failed_per_run"] == [0, 1, 0]
    assert [r["judge_failed_ids"] for r in res["runs"]] == [[], ["v1_4"], []]
    assert [r["n"] for r in res["runs"]] == [6, 5, 6]
    assert res["runs"][1]["total"] == 66.0 and "v1_4" not in res["runs"][1]["item_scores"]
    assert res["n_judge_failed"] == 1 and res["judge_failed_ids"] == ["v1_4"]
    assert res["judge_failures"]["v1_4"].startswith("run 1: malformed reply after 6 attempt(s)")
    assert res["n"] == 5 and res["n_per_capability"] == {"rec": 3, "ocr": 3, "math": 2, "know": 1}
    assert res["item_scores"]["v1_4"] == pytest.approx(0.75)
    assert res["item_scores"]["v1_0"] == pytest.approx(0.8)


def _first_ask_key(judge, bench, item, pred: str, run: int) -> str:
    """The cache (and wire) key of an item's first grading request in a run, as the judge builds it."""
    msgs = bench.judge_task(item, pred, run=run).attempts[0].messages
    return request_key(
        judge.identity(), msgs, {"temperature": 0.0, "max_tokens": 3, "attempt": 0, "run": run}
    )


def test_mm_vet_judge_run_request_failure_counts_in_that_run_only(tmp_path):
    items = get_benchmark("mm_vet").load(_mm_vet(tmp_path))[:3]
    preds = {"v1_0": "P0", "v1_1": "P1", "v1_2": "P2"}
    rec = Recorder({"P0": ["0.8", "0.6"], "P1": ["1.0", "1.0"], "P2": ["0.0", "0.2"]}, _mmvet_extract)
    broken: set[str] = set()  # request keys the server answers with a 500
    faults = lambda n, key, attempt: "500" if key in broken else None  # noqa: E731
    with FakeChatServer(reply_fn=rec, faults=faults) as srv:
        judge = _judge(srv, tmp_path, max_retries=1)
        once = get_benchmark("mm_vet").score(preds, items, judge=judge)
        assert len(srv.log) == 3 and once["judge_runs"] == 1 and "total_std" not in once
        assert once["overall"] == 60.0 and once["n_judge_failed_per_run"] == [0]

        bench = get_benchmark("mm_vet", runs=2)
        key = _first_ask_key(judge, bench, items[1], "P1", run=1)
        broken.add(key)
        res = bench.score(preds, items, judge=judge)
        # Run 0 is the single run above, replayed; run 1 is asked, v1_1's request fails for good.
        assert len(srv.log) == 3 + 3 + 1 and sum(e["key"] == key for e in srv.log) == 2
        assert res["n_judge_failed_per_run"] == [0, 1]
        assert res["runs"][1]["judge_failures"]["v1_1"].startswith("request failed")
        assert res["judge_failures"]["v1_1"].startswith("run 1: request failed")
        # Run 0: (.8 + 1 + 0) / 3; run 1 without v1_1: (.6 + .2) / 2. ocr and math only in run 0.
        assert res["total_per_run"] == [60.0, 40.0] and (res["overall"], res["overall_std"]) == (50.0, 10.0)
        assert res["per_capability"] == {"rec": 40.0, "know": 10.0, "ocr": 100.0, "math": 100.0}
        assert res["per_capability_std"] == {"rec": 0.0, "know": 10.0, "ocr": 0.0, "math": 0.0}
        assert res["n"] == 2 and res["n_per_capability"] == {"rec": 2, "know": 1, "ocr": 0, "math": 0}

        # A failed request is not cached: once the server recovers, only it is asked again.
        broken.clear()
        n0 = len(srv.log)
        res = bench.score(preds, items, judge=judge)
        assert [e["key"] for e in srv.log[n0:]] == [key]
        assert res["n_judge_failed"] == 0 and res["n_judge_failed_per_run"] == [0, 0]
        assert (res["overall"], res["overall_std"]) == (60.0, 0.0)

        # A run in which every judgment fails has no total; it is left out of the mean, not a 0.0.
        three = get_benchmark("mm_vet", runs=3)
        broken.update(_first_ask_key(judge, three, it, preds[it.item_id], run=2) for it in items)
        res = three.score(preds, items, judge=judge)
        assert res["total_per_run"] == [60.0, 60.0, None] and res["n_judge_failed_per_run"] == [0, 0, 3]
        assert (res["overall"], res["overall_std"]) == (60.0, 0.0)
        assert res["n"] == 3 and res["judge_failed_ids"] == ["v1_0", "v1_1", "v1_2"]
        judge.close()
