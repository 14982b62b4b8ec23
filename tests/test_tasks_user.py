"""Users' own tasks without editing the package: YAML definitions over generic field builders,
Python plugins by module and by entry point; each builds, shows and trains like a built-in task."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from vitune.cli import app
from vitune.data.ledger import Ledger
from vitune.sources.merge import load_world
from vitune.tasks.build import build_instances
from vitune.tasks.plugins import reset_entry_points
from vitune.tasks.select import SelectionError, select_tasks
from vitune.tasks.spec import registry
from vitune.world import generate_world

runner = CliRunner()

USER_TASKS = """
tasks:
  - object_color                       # a built-in task next to the user's
  - name: my_shape_color
    category: perception
    instruction: Name the colour of the object.
    input: "Object: {name}"
    output: The {name} is {color}.
    fields: {unit: object, require: [color], unique: true}
    cap: 40
  - name: my_object_pick
    category: perception
    instruction: Which of these objects is in the image?
    input: "Options: {options}"
    output: "{choice}"
    options: {count: 3, negatives: other_images, pool: objects}
    fields: {unit: object, answer: name}
"""


def flat(output: str) -> str:
    for ch in "│╭╮╰╯─":
        output = output.replace(ch, " ")
    return " ".join(output.split())


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ut") / "w"
    generate_world(root, 40, seed=2, workers=1, split_fractions=(0.8, 0.0, 0.2))
    return root


@pytest.fixture
def tasks_file(tmp_path) -> Path:
    p = tmp_path / "my_tasks.yaml"
    p.write_text(USER_TASKS, encoding="utf-8")
    return p


def test_defined_tasks_render_the_records_facts(world, tasks_file):
    sel = select_tasks(tasks_file=tasks_file, cap=1000)
    assert sel.tasks == ["my_object_pick", "my_shape_color", "object_color"]
    assert sel.caps == {"my_object_pick": 1000, "my_shape_color": 40, "object_color": 1000}
    records = {r.file_name: r for r in load_world(world, "train", Ledger())}
    insts = build_instances(list(records.values()), sel.resolved(), caps=sel.caps, seed=0)
    mine = [i for i in insts if i.task == "my_shape_color"]
    assert 0 < len(mine) <= 40
    for inst in mine:
        q, a = inst.turns[0].text, inst.turns[1].text
        assert q.startswith("Name the colour of the object.\n\nObject: ")
        name = q.rsplit("Object: ", 1)[1]
        objs = [o for o in records[inst.image].objects if o.source == "vg" and o.name == name]
        # The one object of that name in the image has that colour.
        assert len(objs) == 1 and a == f"The {name} is {a[len(f'The {name} is ') : -1]}."
        assert a[len(f"The {name} is ") : -1] in objs[0].attributes
    picks = [i for i in insts if i.task == "my_object_pick"]
    assert picks and all(i.turns[1].text in i.turns[0].text for i in picks)
    assert "my_shape_color" not in registry()  # a tasks file defines, it does not register globally


def test_build_cli_and_show_with_a_user_task(world, tasks_file, tmp_path):
    out = tmp_path / "data"
    r = runner.invoke(app, ["build", "--world", str(world), "--out", str(out), "--tasks-file", str(tasks_file),
                            "--workers", "2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "instances" / "manifest.json").read_text())
    assert manifest["task_categories"]["my_shape_color"] == "perception"
    assert manifest["selection"]["defined"]["my_shape_color"]["fields"]["unit"] == "object"
    rows = [
        row for f in sorted((out / "instances").rglob("*.parquet")) for row in pq.read_table(f).to_pylist()
    ]
    assert any(row["task"] == "my_shape_color" for row in rows)
    r = runner.invoke(app, ["tasks", "show", "my_shape_color", "--tasks-file", str(tasks_file)])
    assert r.exit_code == 0, r.output
    assert "Name the colour of the object." in r.output and "ASSISTANT" in r.output


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("fields: {unit: pixel}", "fields.unit must be one of"),
        ("fields: {unit: object, require: [colour]}", "fields.require must list fields"),
        ("fields: object\n    output: '{size}'", "uses {size}, not a field of unit 'object'"),
        ("fields: object\n    instruction: 'Is the {name} red?'", "one fixed text per task"),
        ("fields: object\n    cap: 0", "cap must be a positive integer"),
        ("category: perception", "missing 'fields'"),
        ("fields: object\n    options: {count: 3, negatives: other_images, pool: objects}\n"
         "    input: '{options}'\n    output: '{choice}'", "needs fields.answer"),
    ],
)  # fmt: skip
def test_bad_definitions_name_the_field(tmp_path, entry, message):
    base = {"name": "t1", "category": "perception", "instruction": "Q?", "output": "{name}"}
    lines = [f"    {k}: {json.dumps(v)}" for k, v in base.items() if f"{k}:" not in entry]
    p = tmp_path / "bad.yaml"
    p.write_text("- \n" + "\n".join(lines) + "\n    " + entry + "\n", encoding="utf-8")
    with pytest.raises(SelectionError, match="task 't1'") as e:
        select_tasks(tasks_file=p, cap=10)
    assert message in str(e.value) and str(p) in str(e.value)


def test_defining_a_builtin_name_is_refused(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("- {name: object_color, category: c, instruction: 'Q?', output: '{name}', fields: object}\n")
    with pytest.raises(SelectionError, match="defined twice"):
        select_tasks(tasks_file=p, cap=10)
    r = runner.invoke(app, ["build", "--world", "w", "--out", str(tmp_path / "o"), "--tasks-file", str(p)])
    assert r.exit_code == 2 and "defined twice" in flat(r.output)


PLUGIN = '''
"""A plugin with its own builder."""
from vitune.tasks.spec import Sample
from vitune.tasks.user import define_task


def count_all(record, rng, ctx):
    n = sum(1 for o in record.objects if o.source == "coco")
    return [Sample({"n": n})] if n else []


define_task("{name}", count_all, category="counting", source="plugin",
            instruction="How many objects are there?", output="{n}")
'''


def _plugin(root: Path, module: str, task: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(PLUGIN.replace("{name}", task)), encoding="utf-8")


def test_plugin_by_module_builds_and_lists(world, tmp_path, monkeypatch):
    _plugin(tmp_path, "vt_plugin_mod", "plugin_count_mod")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = runner.invoke(app, ["tasks", "list", "--plugin", "vt_plugin_mod"])
    assert r.exit_code == 0 and "plugin_count_mod" in r.output
    records = load_world(world, "train", Ledger())
    insts = build_instances(records, ["plugin_count_mod"], seed=0)
    coco = {r.file_name: sum(1 for o in r.objects if o.source == "coco") for r in records}
    assert insts and all(i.turns[1].text == str(coco[i.image]) for i in insts)
    r = runner.invoke(app, ["tasks", "list", "--plugin", "no_such_plugin_module"])
    assert r.exit_code == 2 and "no_such_plugin_module" in flat(r.output)


def test_plugin_by_entry_point(tmp_path, monkeypatch):
    _plugin(tmp_path, "vt_plugin_ep", "plugin_count_ep")
    dist = tmp_path / "vt_plugin_ep-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vt-plugin-ep\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vitune.tasks]\ncount = vt_plugin_ep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_entry_points()
    try:
        assert "plugin_count_ep" in registry()
        assert registry()["plugin_count_ep"].spec.category == "counting"
    finally:
        reset_entry_points()
        sys.modules.pop("vt_plugin_ep", None)


def test_a_user_task_trains(world, tasks_file, tmp_path):
    from vitune.train.recipe import parse_recipe
    from vitune.train.stages import run_recipe
    from vitune.world.layout import WorldLayout

    out = tmp_path / "data"
    r = runner.invoke(
        app, ["build", "--world", str(world), "--out", str(out), "--tasks-file", str(tasks_file)]
    )
    assert r.exit_code == 0, r.output
    recipe = {
        "name": "user-task",
        "model": {"preset": "micro", "vocab_size": 400},
        "stages": [{
            "name": "stage1",
            "data": [{"path": str(out / "instances"), "image_root": str(WorldLayout(world).image_root),
                      "tasks": ["my_shape_color"]}],
            "train": {"vision": "frozen", "projector": "full", "llm": "full"},
            "lr": 1e-3, "max_steps": 3, "global_batch": 2, "per_device_batch": 2, "max_length": 256,
            "log_every": 1,
        }],
    }  # fmt: skip
    result = run_recipe(parse_recipe(recipe), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "stages" / "stage1" / "summary.json").read_text())
    assert result["stages"]["stage1"]["steps"] == 3 and summary["data"][0]["kept"] > 0
