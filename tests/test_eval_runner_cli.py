"""`vitune eval` (run), `vitune eval compare` and `vitune eval list` through typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from test_eval_runner import _save_micro
from vitune.cli import app
from vitune.eval.world_bench import write_world_benchmarks
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
