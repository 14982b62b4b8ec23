"""`vitune eval` (run), `vitune eval compare` and `vitune eval list` through typer's CliRunner."""

from __future__ import annotations

import json
import threading
from collections import Counter

from PIL import Image
from typer.testing import CliRunner

from test_eval_runner import _save_micro
from vitune.cli import app
from vitune.eval.world_bench import write_world_benchmarks
from vitune.synth.fakeserver import FakeChatServer
from vitune.world import generate_world

runner = CliRunner()


def test_eval_run_compare_and_list(tmp_path):
    generate_world(tmp_path / "w", 30, seed=2, workers=1, split_fractions=(0.5, 0.0, 0.5))
    paths = write_world_benchmarks(tmp_path / "w", tmp_path / "bench", "test", max_images=4, pope_pairs=1)
    model = _save_micro(tmp_path / "model", seed=0)
    benches = ["--bench", f"pope={paths['pope']}", "--bench", f"seed_bench={paths['seed_bench']}"]
    common = ["eval", "--model", str(model), *benches, "--limit", "3", "--max-new-tokens", "3"]

    res = runner.invoke(app, [*common, "--out", str(tmp_path / "a"), "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    assert "pope" in res.output and "seed_bench" in res.output and "overall" in res.output
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    assert set(a["benchmarks"]) == {"pope", "seed_bench"}
    assert a["benchmarks"]["pope"]["n"] == 3 and a["benchmarks"]["pope"]["n_missing"] == 0
    assert (tmp_path / "a" / "results.md").exists()

    # Run B: another model; compare prints both runs side by side with deltas.
    other = _save_micro(tmp_path / "model2", seed=5)
    res = runner.invoke(app, ["eval", "--model", str(other), *benches, "--limit", "3", "--max-new-tokens", "3",
                              "--out", str(tmp_path / "b")])  # fmt: skip
    assert res.exit_code == 0, res.output
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    res = runner.invoke(
        app,
        ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--markdown", str(tmp_path / "cmp.md")],
    )
    assert res.exit_code == 0, res.output
    md = (tmp_path / "cmp.md").read_text()
    delta = b["benchmarks"]["pope"]["overall"] - a["benchmarks"]["pope"]["overall"]
    assert f"| pope | overall | mean_f1 | {a['benchmarks']['pope']['overall']:.2f} |" in md
    assert f"{delta:+.2f}" in md and "random" in md

    res = runner.invoke(app, ["eval", "list"])
    assert res.exit_code == 0 and "imagefolder" in res.output and "mmbench" in res.output

    res = runner.invoke(
        app, ["eval", "--model", str(model), "--bench", "nope=x", "--out", str(tmp_path / "c")]
    )
    assert res.exit_code != 0 and "unknown benchmark" in res.output


def test_eval_judge_runs_option_reaches_mm_vet_and_prints_mean_std(tmp_path, monkeypatch):
    d = tmp_path / "mm-vet"
    (d / "images").mkdir(parents=True)
    doc = {}
    for i, caps in enumerate([["rec"], ["ocr", "math"], ["rec", "know"]]):
        Image.new("RGB", (32, 24), (40 * i, 90, 160)).save(d / "images" / f"v1_{i}.png")
        doc[f"v1_{i}"] = {"imagename": f"v1_{i}.png", "capability": caps, "question": f"Q{i}?", "answer": "a"}
    (d / "mm-vet.json").write_text(json.dumps(doc))
    model = _save_micro(tmp_path / "model", seed=0)
    monkeypatch.setenv("VITUNE_JUDGE_CACHE", str(tmp_path / "judge.sqlite"))
    monkeypatch.setenv("OPENAI_API_KEY", "k")

    asked: Counter[str] = Counter()
    lock = threading.Lock()

    def reply(body: dict) -> str:  # the same request asked again (the next run) gets another grade
        with lock:
            asked[body["messages"][0]["content"]] += 1
            return ["0.4", "0.8"][asked[body["messages"][0]["content"]] - 1]

    common = ["eval", "--model", str(model), "--bench", f"mm_vet={d}", "--max-new-tokens", "3"]
    with FakeChatServer(reply_fn=reply) as srv:
        judge = ["--judge-base-url", srv.url, "--judge-model", "jm"]
        res = runner.invoke(app, [*common, *judge, "--judge-runs", "2", "--out", str(tmp_path / "o")])
        assert res.exit_code == 0, res.output
        assert len(srv.log) == 3 * 2 and set(asked.values()) == {2}
    # Every item and capability scores 40 in run 0 and 80 in run 1: 60 ± 20 (population std).
    b = json.loads((tmp_path / "o" / "results.json").read_text())["benchmarks"]["mm_vet"]
    assert b["overall"] == 60.0 and b["extra"]["overall_std"] == 20.0 and b["extra"]["judge_runs"] == 2
    assert (b["per_category"]["rec"]["score"], b["per_category"]["rec"]["n"]) == (60.0, 2)
    scores = json.loads((tmp_path / "o" / "mm_vet" / "scores.json").read_text())
    assert scores["total_per_run"] == [40.0, 80.0] and scores["per_capability_std"]["ocr"] == 20.0
    assert "mm_vet: 2 judge runs" in res.output and "60.0 ± 20.0" in res.output
    assert "40.0, 80.0" in res.output
    assert "60.00 ± 20.00" in (tmp_path / "o" / "results.md").read_text()

    # Asked of benchmarks none of which is judged repeatedly, the option is refused, not ignored.
    res = runner.invoke(
        app, [*common[:3], "--bench", f"pope={d}", "--judge-runs", "3", "--out", str(tmp_path / "p")]
    )
    assert res.exit_code != 0
    assert "judged repeatedly" in " ".join(res.output.replace("│", " ").split())  # rich wraps the error
