"""Recipes and the runner: validation errors name the field, outputs are byte-identical, counts
reconcile with the ledger, a re-run resumes from the step cache."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from vitune.curate import RecipeError, bundled_recipes, curate, load_recipe
from vitune.curate import run as run_mod
from vitune.data.ledger import Ledger
from vitune.data.store import read_instances


def _write_inputs(tmp_path):
    img = tmp_path / "images"
    img.mkdir(parents=True)
    for k in range(6):
        Image.new("RGB", (32, 32), (40 * k, 10, 200 - 30 * k)).save(img / f"{k}.png")
    rows = []
    for k in range(40):
        task = f"task{k % 4}"
        rows.append(
            {
                "id": str(k),
                "image": f"{k % 6}.png",
                "task_name": task,
                "conversations": [
                    {"from": "human", "value": f"<image>\nQuestion {k} about the {task} picture?"},
                    {"from": "gpt", "value": "Yes." if k % 3 else "No."},
                ],
            }
        )
    rows.append(dict(rows[0], id="dup"))  # exact duplicate of row 0
    rows.append(
        {
            "id": "leak",
            "image": "0.png",
            "task_name": "task0",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is shown?"},
                {"from": "gpt", "value": "According to the captions, a cat."},
            ],
        }
    )
    rows.append(
        {
            "id": "gone",
            "image": "missing.png",
            "task_name": "task1",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat?"},
                {"from": "gpt", "value": "A cat."},
            ],
        }
    )
    rows.append({"id": "bad", "conversations": []})  # unreadable
    (tmp_path / "vf.json").write_text(json.dumps(rows))
    return tmp_path


RECIPE = """
name: test-mix
seed: 7
variables: {data: null}
inputs:
  - {name: vf, kind: vision_flan, path: "${data}/vf.json", image_root: "${data}/images"}
caps: {per_task: 9}
steps:
  - {type: filter, checks: [empty_reply, source_mention, missing_image]}
  - {type: dedup_exact}
  - {type: dedup_minhash, threshold: 0.9, scope: image}
  - {type: balance_yes_no, yes_ratio: 0.5}
  - {type: select, method: random, fraction: 0.8}
mixture: {by: task, temperature: 2.0, target_size: 12}
"""


def test_run_reconciles_and_is_byte_identical(tmp_path):
    data = _write_inputs(tmp_path / "in")
    (tmp_path / "r.yaml").write_text(RECIPE)
    s1 = curate(tmp_path / "r.yaml", tmp_path / "o1", variables={"data": str(data)})
    s2 = curate(tmp_path / "r.yaml", tmp_path / "o2", variables={"data": str(data)})
    for name in [
        "curation.json",
        "llava.json",
        "removed.jsonl",
        "instances/data/shard-00000.parquet",
        "instances/manifest.json",
    ]:
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes(), name
    assert s1["final"]["count"] == 12 == len(read_instances(tmp_path / "o1" / "instances"))
    n = s1["loaded"]["count"]
    for st in s1["steps"]:
        assert st["in"] == st["kept"] + st["removed"] == sum(st["before"]["source"].values())
        assert st["removed"] == sum(st["removed_by_reason"].values())
    assert s1["steps"][-1]["kept"] == 12
    ledger = Ledger.read(tmp_path / "o1" / "removed.jsonl")
    assert len(ledger) == n - 12 + s1["loaded"]["unreadable"] == s1["removed_total"]
    reasons = {(r["stage"], r["reason"]) for r in ledger}
    assert ("curate.load", "missing or empty 'conversations'") in reasons
    assert ("curate.01-filter", "missing image file") in reasons
    assert ("curate.01-filter", "reply mentions its text source") in reasons
    dup = [r for r in ledger if r["reason"] == "exact duplicate"]
    assert all(r["detail"]["kept_locator"].startswith("vf[") for r in dup)
    assert s2["cached"] == [False] * len(s2["steps"])


def test_resume_skips_finished_steps(tmp_path, monkeypatch):
    data = _write_inputs(tmp_path / "in")
    (tmp_path / "r.yaml").write_text(RECIPE)
    calls = []
    real = run_mod.run_step
    monkeypatch.setattr(run_mod, "run_step", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    curate(tmp_path / "r.yaml", tmp_path / "o", variables={"data": str(data)})
    first = (tmp_path / "o" / "curation.json").read_bytes()
    assert calls == ["01-filter", "02-dedup_exact", "03-dedup_minhash", "04-balance_yes_no", "05-select"]
    # "kill" after step 3: drop the cache of steps 4 and 5 (the mixture, 06, stays cached)
    for p in (tmp_path / "o" / ".cache" / "steps").glob("0[45]-*"):
        p.unlink()
    calls.clear()
    s = curate(tmp_path / "r.yaml", tmp_path / "o", variables={"data": str(data)})
    assert calls == ["04-balance_yes_no", "05-select"]
    assert s["cached"][:4] == [True, True, True, True]
    assert (tmp_path / "o" / "curation.json").read_bytes() == first
    # a changed step parameter invalidates that step and the ones after it
    (tmp_path / "r.yaml").write_text(RECIPE.replace("yes_ratio: 0.5", "yes_ratio: 0.4"))
    calls.clear()
    curate(tmp_path / "r.yaml", tmp_path / "o", variables={"data": str(data)})
    assert calls == ["04-balance_yes_no", "05-select"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ("threshold: 0.9", "threshold: 1.5"),
        ("kind: vision_flan", "kind: parquet"),
        ("fraction: 0.8", "fraction: 0.8, size: 3"),
        ("temperature: 2.0", "temperature: 2.0, weights: {vf: 1}"),
        ("checks: [empty_reply", "checks: [empty_replies"),
    ],
)
def test_validation_errors_name_file_and_field(tmp_path, patch, field):
    bad = RECIPE.replace(patch, field)
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(RecipeError) as e:
        load_recipe(tmp_path / "bad.yaml", {"data": "."})
    msg = str(e.value)
    assert "bad.yaml" in msg
    expected = {
        "threshold: 1.5": "steps.2.dedup_minhash.threshold",
        "kind: parquet": "inputs.0.kind",
        "fraction: 0.8, size: 3": "steps.4.select",
        "temperature: 2.0, weights: {vf: 1}": "mixture",
        "checks: [empty_replies": "steps.0.filter.checks.0",
    }[field]
    assert expected in msg, msg


def test_unset_variable_and_unknown_key(tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE)
    with pytest.raises(RecipeError, match=r"inputs\[0\]\.path: \$\{data\}"):
        load_recipe(tmp_path / "r.yaml")
    (tmp_path / "x.yaml").write_text(RECIPE + "\nbogus: 1\n")
    with pytest.raises(RecipeError, match="bogus"):
        load_recipe(tmp_path / "x.yaml", {"data": "."})


def test_bundled_recipes_validate():
    names = bundled_recipes()
    assert {
        "vision_flan_stage1_10k",
        "vision_flan_stage1_1k",
        "vision_flan_stage2_1k_synth",
        "svit_core",
        "llava_665k_mix",
    } <= set(names)
    for path in names.values():
        text = path.read_text()
        variables = {v: "/data" for v in __import__("re").findall(r"\$\{(\w+)\}", text)}
        load_recipe(path, variables)


def test_instance_set_input_with_image_dedup_and_progress(tmp_path):
    from vitune.data.instance import Instance, Turn
    from vitune.data.store import write_instance_set

    img = tmp_path / "images"
    img.mkdir()
    from PIL import ImageDraw

    a = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(a).ellipse((10, 10, 70, 70), fill="red")
    ImageDraw.Draw(a).rectangle((70, 80, 120, 120), fill="blue")
    a.save(img / "a.png")
    a.resize((200, 200)).save(img / "a_big.jpg", quality=90)  # near copy
    b = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(b).rectangle((5, 60, 50, 120), fill="green")
    ImageDraw.Draw(b).ellipse((60, 0, 125, 50), fill="black")
    b.save(img / "b.png")
    q = [Turn("user", "What color dominates?"), Turn("assistant", "Red.")]
    items = [
        Instance("1", "a.png", "color", q, {"category": "perception"}),
        Instance("2", "a_big.jpg", "color", q, {"category": "perception"}),
        Instance("3", "b.png", "color", q, {"category": "perception"}),
        Instance("4", None, "text", [Turn("user", "Hi"), Turn("assistant", "Hello.")]),
    ]
    write_instance_set(items, tmp_path / "set")
    (tmp_path / "r.yaml").write_text(
        "name: t\ninputs: [{name: s, kind: instances, path: set, image_root: images}]\n"
        "steps: [{type: dedup_image, max_distance: 6}, {type: select, method: diversity, size: 2, algorithm: kcenter}]\n"
    )
    seen = []
    s = curate(tmp_path / "r.yaml", tmp_path / "o", lambda *a: seen.append(a))
    assert s["steps"][0]["removed_by_reason"] == {
        "near-duplicate image (pHash distance <= 6, per image_text)": 1
    }
    assert s["steps"][0]["after"]["category"] == {"perception": 2, "uncategorized": 1}
    assert s["final"]["count"] == 2 and ("01-dedup_image", 3, 4) in seen
    out = read_instances(tmp_path / "o" / "instances")
    assert all(x.meta["source"] == "s" for x in out)
    assert (tmp_path / "o" / ".cache" / "image-hashes.tsv").exists()


def test_image_dedup_ledgers_an_unreadable_image_instead_of_failing(tmp_path):
    from vitune.data.instance import Instance, Turn
    from vitune.data.store import write_instance_set

    img = tmp_path / "images"
    img.mkdir()
    Image.new("RGB", (64, 64), "red").save(img / "a.png")
    (img / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    q = [Turn("user", "What color?"), Turn("assistant", "Red.")]
    items = [
        Instance("1", "a.png", "color", q),
        Instance("2", "broken.jpg", "color", q),
        Instance("3", "missing.jpg", "color", q),
    ]
    write_instance_set(items, tmp_path / "set")
    (tmp_path / "r.yaml").write_text(
        "name: t\ninputs: [{name: s, kind: instances, path: set, image_root: images}]\n"
        "steps: [{type: dedup_image, max_distance: 6}]\n"
    )
    s = curate(tmp_path / "r.yaml", tmp_path / "o")
    assert s["steps"][0]["removed_by_reason"] == {"unreadable image": 2}
    assert s["final"]["count"] == 1
    assert [x.id for x in read_instances(tmp_path / "o" / "instances")] == ["1"]
