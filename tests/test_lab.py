"""`vitune lab`: the five Vision-Flan analyses end to end at micro scale on an embedded world, the
projector numbers against hand-computed values, variant reuse, and `--plan` training nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vitune.cli import app
from vitune.lab import LabConfig, plan_lab, run_lab
from vitune.lab.projector import load_state, part_of, pearson, projector_state, relative_change


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> tuple[LabConfig, dict[str, dict]]:
    cfg = LabConfig(work=tmp_path_factory.mktemp("lab") / "work", scale="micro")
    results = {name: run_lab(name, cfg, say=lambda m: None) for name in ("parts", "tasks", "schedule", "stage2",
                                                                          "projector")}  # fmt: skip
    return cfg, results


def test_every_analysis_writes_its_results(lab):
    cfg, results = lab
    for name, res in results.items():
        out = cfg.work / name
        assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(res))
        md = (out / "results.md").read_text()
        assert res["paper"] in md and (out / "results.png").stat().st_size > 1000
        for row in res["variants"]:
            assert set(row["scores"]) == {"vqav2", "pope"} and 0 <= row["pope_yes_ratio"] <= 100
            assert f"| {row['variant']} | {row['scores']['vqav2']:.2f} |" in md


def test_tasks_spreads_one_budget(lab):
    cfg, results = lab
    rows = results["tasks"]["variants"]
    assert [r["n_tasks"] for r in rows] == [2, 4, 8]
    for r in rows:
        summary = json.loads(
            (cfg.work / "tasks" / r["variant"] / "train" / "stages" / "stage1" / "summary.json").read_text()
        )
        kept = [d["kept"] for d in summary["data"]]
        assert len(kept) == r["n_tasks"] and all(k <= r["per_task"] for k in kept)
        assert r["steps"] == {"stage1": cfg.profile.stage1_steps}


def test_schedule_and_stage2(lab):
    cfg, results = lab
    two, mixed = results["schedule"]["variants"]
    assert two["steps"] == {"stage1": cfg.profile.stage1_steps, "stage2": cfg.profile.stage2_steps}
    assert mixed["steps"] == {"mixed": cfg.profile.stage1_steps + cfg.profile.stage2_steps}
    rows = results["stage2"]["variants"]
    amounts = [r["stage2_samples"] for r in rows]
    assert amounts[0] == 0 and amounts == sorted(set(amounts)) and len(amounts) >= 3
    assert rows[0]["model_dir"] == str(
        cfg.work / "shared" / "stage1" / "train" / "stages" / "stage1" / "model"
    )


def test_projector_analysis_numbers(lab):
    cfg, results = lab
    res = results["projector"]
    tuned, swapped = res["variants"]
    pre = load_state(cfg.work / "pre" / "train" / "model")
    t = load_state(Path(tuned["model_dir"]))
    s = load_state(Path(swapped["model_dir"]))
    # The swapped model is the tuned one with exactly the pre-instruction projector.
    for k in s:
        want = pre[k] if part_of(k) == "projector" else t[k]
        assert torch.equal(s[k], want), k
    assert res["projector_pearson"] == pytest.approx(pearson(projector_state(pre), projector_state(t)))
    change = res["relative_change"]
    assert change["vision"] == 0.0  # frozen after the pre-instruction run
    assert change["projector"] > 0 and change["llm.block00"] > 0
    for b, v in res["retention"].items():
        assert v is None or v == pytest.approx(swapped["scores"][b] / tuned["scores"][b])


def test_parts_train_only_what_they_say(lab):
    cfg, results = lab
    pre = load_state(cfg.work / "pre" / "train" / "model")
    rows = {r["variant"]: r for r in results["parts"]["variants"]}
    proj_only = relative_change(pre, load_state(Path(rows["projector_only"]["model_dir"])))
    llm_only = relative_change(pre, load_state(Path(rows["llm_only"]["model_dir"])))
    assert proj_only["projector"] > 0 and all(v == 0.0 for k, v in proj_only.items() if k.startswith("llm"))
    assert llm_only["projector"] == 0.0 and llm_only["llm.block00"] > 0


def test_rerun_reuses_variants(lab):
    cfg, results = lab
    done = cfg.work / "parts" / "both" / "train" / "stages" / "stage1" / "done.json"
    before = done.stat().st_mtime_ns
    (cfg.work / "parts" / "both" / "variant.json").unlink()
    again = run_lab("parts", cfg, say=lambda m: None)
    assert done.stat().st_mtime_ns == before  # not retrained
    assert [r["scores"] for r in again["variants"]] == [r["scores"] for r in results["parts"]["variants"]]


def test_plan_trains_nothing(tmp_path):
    plan = plan_lab("schedule", LabConfig(work=tmp_path / "w"))
    assert [p["variant"] for p in plan] == ["pre", "two_stage", "mixed"]
    assert not (tmp_path / "w").exists()
    r = CliRunner().invoke(app, ["lab", "parts", "--work", str(tmp_path / "w2"), "--plan"])
    assert r.exit_code == 0 and [p["variant"] for p in json.loads(r.stdout)][1:] == [
        "projector_only",
        "llm_only",
        "both",
    ]
    r = CliRunner().invoke(app, ["lab", "nope", "--work", str(tmp_path / "w3")], env={"COLUMNS": "200"})
    assert r.exit_code == 2 and "unknown analysis" in r.output
    r = CliRunner().invoke(app, ["lab", "--help"], env={"COLUMNS": "80"})
    assert all(n in r.output for n in ("tasks", "schedule", "stage2", "projector", "parts"))


def test_projector_math_by_hand():
    a = {"model.multi_modal_projector.linear_1.weight": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
         "model.language_model.layers.0.mlp.weight": torch.tensor([3.0, 4.0])}  # fmt: skip
    b = {"model.multi_modal_projector.linear_1.weight": torch.tensor([[2.0, 4.0], [6.0, 9.0]]),
         "model.language_model.layers.0.mlp.weight": torch.tensor([3.0, 4.0])}  # fmt: skip
    # x = [1,2,3,4] (mean 2.5), y = [2,4,6,9] (mean 5.25): cov 11.5, var_x 5, var_y 26.75
    assert pearson(projector_state(a), projector_state(b)) == pytest.approx(11.5 / (5 * 26.75) ** 0.5)
    # ||b - a|| / ||a|| over the projector: ||[1,2,3,5]|| / ||[1,2,3,4]|| = sqrt(39 / 30)
    change = relative_change(a, b)
    assert change == {"llm.block00": 0.0, "projector": pytest.approx((39 / 30) ** 0.5)}
    assert part_of("language_model.model.layers.12.self_attn.q_proj.weight") == "llm.block12"
    assert part_of("vision_tower.vision_model.embeddings.patch_embedding.weight") == "vision"
