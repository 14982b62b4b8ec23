"""The CLI drives the library end to end on a small embedded world."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from vitune.cli import app
from vitune.data.llava import read_llava_json
from vitune.data.store import read_instances, read_manifest

runner = CliRunner()


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and "vitune 0.1.0" in res.output


def test_world_then_build(tmp_path):
    res = runner.invoke(
        app, ["world", "--out", str(tmp_path / "w"), "--images", "40", "--seed", "3", "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "w" / "world.json").read_text())
    assert meta["seed"] == 3 and meta["n_images"] == 40

    res = runner.invoke(
        app,
        [
            "build",
            "--world",
            str(tmp_path / "w"),
            "--out",
            str(tmp_path / "b"),
            "--task",
            "object_color",
            "--task",
            "vqa_short_answer",
            "--cap",
            "15",
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = read_manifest(tmp_path / "b" / "instances")
    assert set(manifest["per_task"]) == {"object_color", "vqa_short_answer"}
    assert manifest["per_task"]["vqa_short_answer"] == 15  # capped
    assert manifest["build"]["candidates"]["vqa_short_answer"] > 15
    assert manifest["per_category"] == {"perception": sum(manifest["per_task"].values())}
    inputs = {Path(i["path"]).name for i in manifest["inputs"]}
    assert {"instances_train.json", "objects.json", "v2_mscoco_train_annotations.json"} <= inputs
    insts = read_instances(tmp_path / "b" / "instances")
    llava = read_llava_json(tmp_path / "b" / "llava.json")
    assert [i.id for i in insts] == [i.id for i in llava]
    assert all((tmp_path / "w" / "images" / i.image).exists() for i in insts)


def test_tasks_list_and_show():
    res = runner.invoke(app, ["tasks", "list"])
    assert res.exit_code == 0 and "object_counting" in res.output and "perception" in res.output
    res = runner.invoke(app, ["tasks", "show", "object_color"])
    assert res.exit_code == 0, res.output
    assert res.output.count("ASSISTANT:") == 3 and "The " in res.output
    # Tasks over the extra world formats (GQA, TextVQA, RefCOCO, ScienceQA, class folders) render too.
    for name in ("gqa_short_answer", "textvqa_short_answer", "refcoco_grounding", "scienceqa_mc"):
        res = runner.invoke(app, ["tasks", "show", name])
        assert res.exit_code == 0 and res.output.count("ASSISTANT:") == 3, (name, res.output)
    res = runner.invoke(app, ["tasks", "show", "nope"])
    assert res.exit_code != 0 and "unknown task" in res.output


def test_synth_and_curate_commands_chain(tmp_path):
    res = runner.invoke(app, ["world", "--out", str(tmp_path / "w"), "--images", "30", "--workers", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["synth", "--world", str(tmp_path / "w"), "--out", str(tmp_path / "s"), "--limit", "5"]
    )
    assert res.exit_code == 0, res.output
    llava = json.loads((tmp_path / "s" / "synth_llava.json").read_text())
    assert {r["task_name"] for r in llava} >= {
        "conversation",
        "complex_reasoning",
        "referring_qa",
        "detail_description",
    }
    assert all(r["conversations"][0]["value"].startswith("<image>\n") for r in llava)

    res = runner.invoke(
        app,
        [
            "curate",
            "vision_flan_stage1_1k",
            str(tmp_path / "c"),
            "--var",
            f"vision_flan_json={tmp_path / 's' / 'synth_llava.json'}",
            "--var",
            f"vision_flan_images={tmp_path / 'w' / 'images'}",
        ],
    )
    assert res.exit_code == 0, res.output
    curated = read_manifest(tmp_path / "c" / "instances")
    assert 0 < curated["count"] <= len(llava)
    res = runner.invoke(app, ["curate", "--list"])
    assert res.exit_code == 0 and "svit_core" in res.output
    res = runner.invoke(app, ["curate", "vision_flan_stage1_1k", str(tmp_path / "d")])
    assert res.exit_code == 2 and "vision_flan_json" in res.output


def test_lab_bad_input_is_one_line(tmp_path):
    """`vitune lab`: a bad --var is a usage error; a missing --base recipe one line naming it, exit 2,
    its [brackets] kept (the message is not read as markup)."""
    run = CliRunner().invoke
    r = run(
        app, ["lab", "tasks", "--work", str(tmp_path / "w"), "--var", "x", "--plan"], env={"COLUMNS": "200"}
    )
    assert r.exit_code == 2 and "NAME=VALUE" in r.output
    missing = tmp_path / "no[pe].yaml"
    r = run(app, ["lab", "tasks", "--work", str(tmp_path / "w"), "--base", str(missing), "--plan"])
    assert r.exit_code == 2 and str(missing) in r.output and "Traceback" not in r.output
