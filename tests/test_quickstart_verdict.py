"""The quickstart is reproducible (step counts, not wall-clock budgets) and ends with a verdict."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vitune.pipeline.quickstart import VERDICT_MARGIN, QuickstartConfig, quickstart_recipe, verdict
from vitune.train.recipe import bundled_recipes, load_recipe


def _results(model: float, base: float) -> dict:
    stages = {
        "vision": {"steps": 81},
        "perception": {"steps": 12},
        "stage1": {"steps": 21},
        "stage2": {"steps": 2},
    }
    return {"eval": {"model": {"overall": model}, "baseline": {"overall": base}}, "train": {"stages": stages}}


def test_verdict_names_the_step_counts_when_the_model_is_not_clearly_above() -> None:
    bad = verdict(_results(0.0, 37.15))
    assert not bad["ok"] and "NOT clearly above" in bad["text"]
    assert "vision 81, perception 12, stage1 21, stage2 2" in bad["text"]
    assert not verdict(_results(37.15 + VERDICT_MARGIN - 0.01, 37.15))["ok"]
    good = verdict(_results(48.22, 37.15))
    assert good["ok"] and "clearly above" in good["text"] and "NOT" not in good["text"]


def test_tiny_recipes_stop_by_steps_and_time_scale_scales_them(tmp_path: Path) -> None:
    names = {"world": "w", "tasks": "t", "chat": "c.json", "images": "i"}
    for name in ("tiny-two-stage", "tiny-llava-1.5", "tiny-single-stage-mixed"):
        recipe = load_recipe(bundled_recipes()[name], names)
        assert all(st.time_budget_s is None and st.max_steps for st in recipe.stages), name
    steps = [st.max_steps for st in quickstart_recipe(QuickstartConfig(work=tmp_path)).stages]
    assert steps == [1300, 520, 770, 50]  # calibrated: what the wall-clock budgets reached on 2 quiet cores
    half = quickstart_recipe(QuickstartConfig(work=tmp_path, time_scale=0.5)).stages
    assert [st.max_steps for st in half] == [650, 260, 385, 25]


def test_quickstart_cli_exits_1_on_a_bad_verdict(monkeypatch, tmp_path: Path) -> None:
    import vitune.pipeline.quickstart as qs
    from vitune.cli import app

    res = _results(0.0, 37.15)
    res.update(eval={**res["eval"], "n_questions": 0}, report=str(tmp_path / "r.md"))
    res["verdict"] = verdict(res)
    monkeypatch.setattr(qs, "run_quickstart", lambda cfg: res)
    monkeypatch.setattr("vitune.cli.quickstart.results_table", lambda r: "table")
    out = CliRunner().invoke(app, ["quickstart", "--work", str(tmp_path)], env={"COLUMNS": "40"})
    assert out.exit_code == 1
    assert "NOT clearly above" in out.output and "stage2 2" in " ".join(out.output.split())
