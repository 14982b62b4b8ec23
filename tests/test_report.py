"""`vitune report`: every figure on the page is the one the run wrote (training summaries and
metrics, eval results with deltas, curation counts), the loss figure is a real plot of the
metrics, an unfinished stage is reported as such, and bad arguments are refused by name."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from recipe_helpers import tiny_recipe
from vitune.cli import app
from vitune.eval.runner import BenchSpec, run_benchmarks
from vitune.eval.world_bench import write_world_benchmarks
from vitune.train.recipe import parse_recipe
from vitune.train.stages import run_recipe
from vitune.world import generate_world


def _eval(tmp_path, name, answer):
    generate_world(tmp_path / "w", 20, seed=1, workers=1, split_fractions=(0.5, 0.0, 0.5))
    paths = write_world_benchmarks(
        tmp_path / "w", tmp_path / "bench", "test", seed=0, max_images=6, pope_pairs=1
    )
    specs = [BenchSpec("pope", paths["pope"]), BenchSpec("vqav2", paths["vqav2"])]
    return run_benchmarks(
        specs,
        tmp_path / name,
        answer_fn=lambda items: [answer] * len(items),
        model_id=name,
        show_progress=False,
    )


def test_report_from_a_training_run_two_evals_and_a_curation(tiny_world, tmp_path):
    world, data = tiny_world
    spec = tiny_recipe(world, data)
    spec["stages"] = spec["stages"][1:]  # align + stage1: both log metrics
    run_recipe(parse_recipe(spec), tmp_path / "run")
    # A stage that was killed: no done.json, a summary-less folder with some metrics lines.
    killed = tmp_path / "run" / "stages" / "stage1"
    shutil.copytree(killed, tmp_path / "run" / "stages" / "zz-killed")
    (tmp_path / "run" / "stages" / "zz-killed" / "done.json").unlink()
    (tmp_path / "run" / "stages" / "zz-killed" / "summary.json").unlink()

    a = _eval(tmp_path, "ev_yes", "yes")
    b = _eval(tmp_path, "ev_no", "no")
    curation = {
        "format": "vitune.curation/1",
        "recipe": "r",
        "seed": 0,
        "loaded": {"count": 10},
        "steps": [
            {
                "step": "01-dedup_exact",
                "in": 10,
                "kept": 7,
                "removed": 3,
                "removed_by_reason": {"exact duplicate": 3},
            }
        ],
        "final": {"count": 7},
        "removed_total": 3,
    }
    (tmp_path / "cur").mkdir()
    (tmp_path / "cur" / "curation.json").write_text(json.dumps(curation))

    res = CliRunner().invoke(
        app,
        [
            "report", "--out", str(tmp_path / "rep"), "--train", str(tmp_path / "run"),
            "--eval", f"yes={tmp_path / 'ev_yes'}", "--eval", f"no={tmp_path / 'ev_no'}",
            "--curation", str(tmp_path / "cur"),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep" / "report.md").read_text()

    summary = json.loads((killed / "summary.json").read_text())
    row = next(line for line in md.splitlines() if line.startswith("| stage1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "done" and cells[2] == str(summary["steps"])
    assert cells[3] == f"{summary['first_loss']:.3f}" and cells[4] == f"{summary['last_loss']:.3f}"
    pads = [json.loads(x)["pad_frac"] for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert cells[6] == f"{sum(pads) / len(pads):.1%}"
    killed_row = next(line for line in md.splitlines() if line.startswith("| zz-killed |"))
    assert "running / killed" in killed_row
    assert md.index("| align |") < md.index("| stage1 |") < md.index("| zz-killed |")  # recipe order first

    # Evaluation: B - A per benchmark, from the two results.json files.
    pa, pb = a["benchmarks"]["pope"]["overall"], b["benchmarks"]["pope"]["overall"]
    pope = next(line for line in md.splitlines() if line.startswith("| pope | overall"))
    assert f"{pa:.2f}" in pope and f"{pb:.2f}" in pope and f"{pb - pa:+.2f}" in pope
    assert "| 01-dedup_exact | 10 | 7 | 3 | exact duplicate: 3 |" in md

    # The figure is a plot of the metrics: one panel per stage that logged them, not a blank image.
    assert "![training loss per stage](loss_curves.png)" in md
    img = np.asarray(Image.open(tmp_path / "rep" / "loss_curves.png").convert("L"))
    assert img.shape[1] > 3 * img.shape[0] and (img < 128).mean() > 0.01
    # The same inputs give the same bytes.
    first = (tmp_path / "rep" / "loss_curves.png").read_bytes()
    CliRunner().invoke(app, ["report", "--out", str(tmp_path / "rep"), "--train", str(tmp_path / "run")])
    assert (tmp_path / "rep" / "loss_curves.png").read_bytes() == first


def _said(res) -> str:
    """The command's output as one line: rich wraps error boxes at the terminal width."""
    return " ".join(res.output.replace("│", " ").split())


def test_report_refuses_bad_arguments(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "at least one of" in _said(res)
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r"), "--train", str(tmp_path)])
    assert res.exit_code != 0 and "not a training run" in _said(res)
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r"), "--eval", "nofolder"])
    assert res.exit_code != 0 and "NAME=FOLDER" in _said(res)
    (tmp_path / "run" / "stages" / "s").mkdir(parents=True)
    (tmp_path / "run" / "stages" / "s" / "summary.json").write_text("{broken")
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r"), "--train", str(tmp_path / "run")])
    assert res.exit_code != 0 and "summary.json" in _said(res) and "not valid JSON" in _said(res)
