"""`vitune report`: every figure on both pages (report.md, report.html opened in headless Chromium)
is the one the runs wrote (training summaries and metrics of two runs, eval results with deltas,
multi-round scores, curation counts, lab results), the figures are real plots, example predictions
are right or wrong by the benchmark's scorer, an unfinished stage is reported as such, and bad
arguments are refused by name."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from browser_helpers import view_page
from recipe_helpers import tiny_recipe
from vitune.cli import app
from vitune.eval.multiround import run_multiround_benchmarks
from vitune.eval.runner import BenchSpec, run_benchmarks
from vitune.eval.world_bench import write_world_benchmarks
from vitune.report.examples import eval_examples
from vitune.train.recipe import parse_recipe
from vitune.train.stages import run_recipe
from vitune.world import generate_world


def _eval(tmp_path, name, answer):
    generate_world(tmp_path / "w", 20, seed=1, workers=1, split_fractions=(0.5, 0.0, 0.5))
    paths = write_world_benchmarks(
        tmp_path / "w", tmp_path / "bench", "test", seed=0, max_images=6, pope_pairs=1
    )
    specs = [BenchSpec("pope", paths["pope"]), BenchSpec("vqav2", paths["vqav2"])]
    run_benchmarks(
        specs,
        tmp_path / name,
        answer_fn=lambda items: [answer] * len(items),
        model_id=name,
        show_progress=False,
    )
    return paths


CURATION = {
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


@pytest.fixture(scope="module")
def report_dir(tiny_world, tmp_path_factory):
    """Two training runs (one with a killed stage), two eval runs, a multi-round run of the trained
    model, a curation summary and a lab folder, reported by the CLI."""
    world, data = tiny_world
    tmp = tmp_path_factory.mktemp("report")
    spec = tiny_recipe(world, data)
    spec["stages"] = spec["stages"][1:]  # align + stage1: both log metrics
    run_recipe(parse_recipe(spec), tmp / "run")
    # A second run: the same stages trained from another seed.
    spec["model"]["seed"] = 7
    run_recipe(parse_recipe(spec), tmp / "run2")
    # A stage that was killed: no done.json, a summary-less folder with some metrics lines.
    shutil.copytree(tmp / "run" / "stages" / "stage1", tmp / "run" / "stages" / "zz-killed")
    (tmp / "run" / "stages" / "zz-killed" / "done.json").unlink()
    (tmp / "run" / "stages" / "zz-killed" / "summary.json").unlink()

    paths = _eval(tmp, "ev_yes", "yes")
    _eval(tmp, "ev_no", "no")
    # Fields a newer scorer may add to a benchmark's results: shown as they are, whatever they are.
    res_no = json.loads((tmp / "ev_no" / "results.json").read_text())
    res_no["benchmarks"]["pope"].update(fancy_field="x42", n_unparsable=3)
    (tmp / "ev_no" / "results.json").write_text(json.dumps(res_no))
    run_multiround_benchmarks(
        tmp / "run" / "stages" / "stage1" / "model",
        [BenchSpec("vqav2", paths["vqav2"])],
        tmp / "mr",
        max_images=2,
        max_new_tokens=4,
    )
    (tmp / "cur").mkdir()
    (tmp / "cur" / "curation.json").write_text(json.dumps(CURATION))
    (tmp / "lab").mkdir()
    lab = {"experiments": [{"name": "lr=1e-3", "vqav2": 41.5}, {"name": "lr=5e-4", "vqav2": 44.25}]}
    (tmp / "lab" / "results.json").write_text(json.dumps(lab))

    res = CliRunner().invoke(
        app,
        [
            "report", "--out", str(tmp / "rep"), "--train", str(tmp / "run"), "--train", f"seed7={tmp / 'run2'}",
            "--eval", f"yes={tmp / 'ev_yes'}", "--eval", f"no={tmp / 'ev_no'}", "--multiround", f"mr={tmp / 'mr'}",
            "--curation", str(tmp / "cur"), "--lab", f"sweep={tmp / 'lab'}",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return tmp


def _row(md: str, start: str, after: int = 0) -> list[str]:
    line = next(x for x in md.splitlines()[after:] if x.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_report_markdown_from_two_runs_two_evals_multiround_curation_and_lab(report_dir):
    tmp = report_dir
    md = (tmp / "rep" / "report.md").read_text()
    lines = md.splitlines()
    # Both training runs, each with its own numbers from its own summary.json / metrics.jsonl.
    for name, run in (("run", "run"), ("seed7", "run2")):
        at = lines.index(next(x for x in lines if x.startswith(f"## Training: {name} ")))
        summary = json.loads((tmp / run / "stages" / "stage1" / "summary.json").read_text())
        cells = _row(md, "| stage1 |", at)
        assert cells[1] == "done" and cells[2] == str(summary["steps"])
        assert cells[3] == f"{summary['first_loss']:.3f}" and cells[4] == f"{summary['last_loss']:.3f}"
    metrics = (tmp / "run" / "stages" / "stage1" / "metrics.jsonl").read_text().splitlines()
    pads = [json.loads(x)["pad_frac"] for x in metrics]
    assert _row(md, "| stage1 |")[6] == f"{sum(pads) / len(pads):.1%}"
    assert "running / killed" in " ".join(_row(md, "| zz-killed |"))
    assert md.index("| align |") < md.index("| stage1 |") < md.index("| zz-killed |")  # recipe order first

    # Evaluation: B - A per benchmark, from the two results.json files.
    a, b = (json.loads((tmp / d / "results.json").read_text()) for d in ("ev_yes", "ev_no"))
    pa, pb = a["benchmarks"]["pope"]["overall"], b["benchmarks"]["pope"]["overall"]
    pope = next(line for line in lines if line.startswith("| pope | overall"))
    assert f"{pa:.2f}" in pope and f"{pb:.2f}" in pope and f"{pb - pa:+.2f}" in pope
    assert "| 01-dedup_exact | 10 | 7 | 3 | exact duplicate: 3 |" in md
    # Multi-round: the official scores of both ways of asking, from multiround_results.json.
    mr = json.loads((tmp / "mr" / "multiround_results.json").read_text())["scores"]["vqav2"]
    row = _row(md, "| vqav2 (")
    assert row[2:4] == [f"{mr['overall_single']:.2f}", f"{mr['overall_multi']:.2f}"]
    assert "## Lab: sweep" in md and "| lr=5e-4 | 44.25 |" in md

    # The figures are plots, not blank images: two rows (loss, lr) per logged stage.
    assert "![training loss and lr per stage](training_curves.png)" in md
    img = np.asarray(Image.open(tmp / "rep" / "training_curves.png").convert("L"))
    assert img.shape[1] > img.shape[0] and (img < 128).mean() > 0.01
    assert (
        "![pope per category](eval_pope.png)" in md and (tmp / "rep" / "eval_pope.png").stat().st_size > 5000
    )
    # The same inputs give the same bytes.
    first = (tmp / "rep" / "training_curves.png").read_bytes()
    CliRunner().invoke(
        app,
        [
            "report",
            "--out",
            str(tmp / "rep2"),
            "--train",
            str(tmp / "run"),
            "--train",
            f"seed7={tmp / 'run2'}",
        ],
    )
    assert (tmp / "rep2" / "training_curves.png").read_bytes() == first


def test_report_html_loads_in_chromium_with_the_files_numbers(report_dir):
    tmp = report_dir
    page = view_page(
        tmp / "rep" / "report.html",
        (
            "data-score",
            "data-delta",
            "data-col",
            "data-kept",
            "data-empty",
            "data-examples",
            "data-detail",
            "data-scorer",
        ),
    )
    assert page.errors == [] and page.broken_images == []
    assert all(u.startswith(("file:", "data:")) for u in page.requests)  # nothing from a network
    # training curves + one bar chart per benchmark + example thumbnails
    assert page.images > 3
    for run, bench in (("yes", "pope"), ("no", "pope"), ("yes", "vqav2")):
        res = json.loads((tmp / f"ev_{run}" / "results.json").read_text())["benchmarks"][bench]
        assert page.text[f"data-score={run}/{bench}/overall"] == f"{res['overall']:.2f}"
        for cat, c in res["per_category"].items():
            assert page.text[f"data-score={run}/{bench}/{cat}"] == f"{c['score']:.2f}"
    a, b = (
        json.loads((tmp / d / "results.json").read_text())["benchmarks"]["pope"] for d in ("ev_yes", "ev_no")
    )
    assert page.text["data-delta=no/pope/overall"] == f"{b['overall'] - a['overall']:+.2f}"
    assert page.text["data-kept=01-dedup_exact"] == "7"
    n_items = json.loads((tmp / "ev_yes" / "results.json").read_text())["benchmarks"]["pope"]["n_items"]
    assert page.text["data-detail=yes/pope/n_items"] == str(n_items)
    assert (
        page.text["data-detail=no/pope/fancy_field"] == "x42"
        and page.text["data-detail=yes/pope/fancy_field"] == ""
    )
    for run in ("yes", "no"):  # the scoring protocol every result names
        res = json.loads((tmp / f"ev_{run}" / "results.json").read_text())["benchmarks"]["pope"]
        assert page.text[f"data-detail={run}/pope/protocol"] == res["protocol"] == "official"
    assert page.text["data-scorer=no/pope/n_unparsable"] == "3"  # the scorer's count, next to the empty share
    # Example predictions: the empty count is that of predictions.json ("yes" is never empty).
    preds = json.loads((tmp / "ev_yes" / "pope" / "predictions.json").read_text())
    assert page.text["data-empty=yes/pope"] == "0" and page.text["data-examples=yes/pope"].startswith(
        f"{len(preds)} answers"
    )


def test_example_predictions_are_right_and_wrong_by_the_scorer(report_dir):
    tmp = report_dir
    results = json.loads((tmp / "ev_yes" / "results.json").read_text())
    exs = {e.bench: e for e in eval_examples(tmp / "ev_yes", results, k=2, seed=0)}
    pope = exs["pope"]
    # Always answering "yes": right exactly on the items labelled yes, each with its image.
    assert len(pope.right) == 2 and len(pope.wrong) == 2
    assert all(e.answers == ["yes"] for e in pope.right) and all(e.answers == ["no"] for e in pope.wrong)
    assert all(e.thumb.uri.startswith("data:image/jpeg;base64,") for e in pope.right + pope.wrong)
    # Always "no": right on the items labelled no (POPE's overall F1 would call a lone right "no" wrong).
    no = eval_examples(tmp / "ev_no", json.loads((tmp / "ev_no" / "results.json").read_text()), k=2)
    no_pope = next(e for e in no if e.bench == "pope")
    assert len(no_pope.right) == 2 and all(e.answers == ["no"] for e in no_pope.right)
    again = eval_examples(tmp / "ev_yes", results, k=2, seed=0)
    assert [e.item_id for e in again[0].right] == [e.item_id for e in exs[again[0].bench].right]  # seeded


def test_example_verdicts_use_the_runs_protocol(tmp_path):
    # VQAv2 "Two" against ten "2": right under the paper protocol (EvalAI's answer processor first),
    # wrong under the official one; an example's verdict follows the protocol the run was scored with.
    bench = tmp_path / "vqav2"
    bench.mkdir()
    q = {"question_id": 1, "image_id": 1, "question": "How many dogs?"}
    a = {"question_id": 1, "question_type": "how many", "answer_type": "number",
         "answers": [{"answer": "2"}] * 10, "multiple_choice_answer": "2"}  # fmt: skip
    (bench / "questions.json").write_text(json.dumps({"data_subtype": "val2014", "questions": [q]}))
    (bench / "annotations.json").write_text(json.dumps({"annotations": [a]}))
    (tmp_path / "run" / "vqav2").mkdir(parents=True)
    (tmp_path / "run" / "vqav2" / "predictions.json").write_text(json.dumps({"1": "Two"}))
    for protocol, right in (("paper", 1), ("official", 0)):
        results = {"benchmarks": {"vqav2": {"path": str(bench), "protocol": protocol}}}
        (ex,) = eval_examples(tmp_path / "run", results, k=1)
        assert (len(ex.right), len(ex.wrong)) == (right, 1 - right), protocol


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
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r"), "--lab", f"x={tmp_path / 'nope'}"])
    assert res.exit_code == 2 and "does not exist" in _said(res)
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r"), "--lab", f"x={tmp_path}"])
    assert res.exit_code == 2 and "no results.json or results.md" in _said(res)
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r"), "--multiround", f"m={tmp_path}"])
    assert res.exit_code == 2 and "multiround_results.json" in _said(res)
    res = runner.invoke(
        app, ["report", "--out", str(tmp_path / "r"), "--eval", f"a={tmp_path}", "--eval", f"a={tmp_path}"]
    )
    assert res.exit_code == 2 and "given twice" in _said(res)
    (tmp_path / "run" / "stages" / "s").mkdir(parents=True)
    (tmp_path / "run" / "stages" / "s" / "summary.json").write_text("{broken")
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r"), "--train", str(tmp_path / "run")])
    assert res.exit_code != 0 and "summary.json" in _said(res) and "not valid JSON" in _said(res)


def test_lab_results_of_any_shape_become_tables():
    from vitune.report.page import lab_tables

    tables = lab_tables(
        {"best": "b", "score": 0.5, "runs": [{"lr": 1e-3, "acc": 41.5}, {"lr": 5e-4, "f1": 2}]}
    )
    assert tables[0] == ("results", ("key", "value"), [("best", "b"), ("score", "0.5")])
    # Records keep every column any record has; a missing cell stays empty.
    assert tables[1] == ("results.runs", ("lr", "acc", "f1"), [("0.001", "41.5", ""), ("0.0005", "", "2")])
    assert lab_tables([1, 2]) == [("results", ("value",), [("1",), ("2",)])]


def test_boxes_are_read_only_when_well_formed():
    from vitune.report.assets import normalized_boxes

    text = "a [0.1, 0.2, 0.5, 0.6] b [0.5, 0.2, 0.1, 0.6] c [1, 2, 3, 4] d [0.1,0.2,0.5,0.6] e [0, 0, 1.0, 1]"
    assert normalized_boxes([text]) == [(0.1, 0.2, 0.5, 0.6), (0.0, 0.0, 1.0, 1.0)]


def test_a_corrupt_card_input_is_one_error_naming_the_file(tmp_path):
    from vitune.report.card import detect

    (tmp_path / "instances").mkdir()
    (tmp_path / "instances" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"manifest\.json: not valid JSON"):
        detect(tmp_path)
