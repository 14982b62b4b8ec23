"""Dataset cards: `vitune build`, `synth` and `curate` write README.md (Hugging Face card metadata
that `datasets.load_dataset(DIR)` reads) and gallery.html; every count on them is the count in the
folder's own files, the gallery loads in headless Chromium with every thumbnail, boxes are drawn
for grounding tasks and options shown for multiple choice, samples are seeded, and
`vitune data card` refuses a folder that is no such output."""

from __future__ import annotations

import json
from collections import Counter

import datasets
import pytest
import yaml
from typer.testing import CliRunner

from browser_helpers import view_page
from vitune.cli import app
from vitune.report.card import write_dataset_card
from vitune.world import generate_world
from vitune.world.layout import WorldLayout

TASKS = ("refcoco_grounding", "attribute_color_mc", "vqa_short_answer", "object_color")


def _said(res) -> str:
    return " ".join(res.output.replace("│", " ").split())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("card") / "world"
    generate_world(w, 24, seed=5, workers=1)
    # One broken COCO image entry, so the build's ledger has a reason to show.
    ann = next((w / "coco" / "annotations").glob("instances_train*.json"))
    coco = json.loads(ann.read_text())
    coco["images"].append({"id": 999999, "file_name": "train/broken.jpg"})
    ann.write_text(json.dumps(coco))
    return w


@pytest.fixture(scope="module")
def built(world):
    out = world.parent / "data"
    args = ["build", "--world", str(world), "--out", str(out), "--cap", "7", "--workers", "1"]
    res = CliRunner().invoke(app, [*args, *(f"--task={t}" for t in TASKS)])
    assert res.exit_code == 0, res.output
    return out


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_build_card_metadata_counts_and_datasets_load(built):
    manifest = json.loads((built / "instances" / "manifest.json").read_text())
    card = (built / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "instances/data/*.parquet"}]}
    ]
    assert meta["size_categories"] == ["n<1K"] and "visual-question-answering" in meta["task_categories"]
    # The Hugging Face loader reads the folder through the card's configs: every instance, once.
    ds = datasets.load_dataset(str(built), cache_dir=str(built.parent / "hf"))["train"]
    assert len(ds) == manifest["count"] and sorted(ds["task"]) == sorted(
        t for t, n in manifest["per_task"].items() for _ in range(n)
    )
    for task, n in manifest["per_task"].items():
        assert f"| {task} | {manifest['task_categories'][task]} | {n} |" in card
    ledger = Counter(
        f"{r['stage']}: {r['reason']}"
        for r in map(json.loads, (built / "rejected.jsonl").read_text().splitlines())
    )
    assert any("width/height" in k for k in ledger)
    for reason, n in ledger.items():
        assert f"| {reason} | {n} |" in card


def test_build_gallery_in_chromium(built):
    manifest = json.loads((built / "instances" / "manifest.json").read_text())
    page = view_page(built / "gallery.html", ("data-count", "data-total"))
    assert page.errors == [] and page.broken_images == []
    assert all(u.startswith(("file:", "data:")) for u in page.requests)
    # one length histogram + one thumbnail per sample card (4 per task, fewer if the task has fewer)
    assert page.images == 1 + sum(min(4, n) for n in manifest["per_task"].values())
    assert page.text["data-total=" + str(manifest["count"])] == str(manifest["count"])
    for task, n in manifest["per_task"].items():
        assert page.text[f"data-count=task:{task}"] == str(n)
    for cat, n in manifest["per_category"].items():
        assert page.text[f"data-count=category:{cat}"] == str(n)
    html = (built / "gallery.html").read_text()
    grounding = html[html.index('id="task-refcoco_grounding"') :]
    assert grounding.count("1 box(es) drawn") >= 1
    mc = html[html.index('id="task-attribute_color_mc"') : html.index('id="task-object_color"')]
    assert '<ol class="opts" type="a">' in mc and mc.count('class="correct"') == mc.count('<ol class="opts"')


def test_samples_are_seeded(built, tmp_path):
    first = (built / "gallery.html").read_bytes(), (built / "README.md").read_bytes()
    write_dataset_card(built)
    assert ((built / "gallery.html").read_bytes(), (built / "README.md").read_bytes()) == first
    write_dataset_card(built, seed=1)
    assert (built / "gallery.html").read_bytes() != first[0]
    write_dataset_card(built)  # back to the seed the other tests read


def test_synth_and_curate_cards(world, built, tmp_path):
    runner = CliRunner()
    out = tmp_path / "synth"
    res = runner.invoke(
        app,
        [
            "synth",
            "--world",
            str(world),
            "--out",
            str(out),
            "--limit",
            "4",
            "--generators",
            "conversation,referring_qa",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "synth_llava.json").read_text())
    assert (
        _front_matter((out / "README.md").read_text())["configs"][0]["data_files"][0]["path"]
        == "synth_llava.json"
    )
    assert len(datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))["train"]) == len(rows)
    page = view_page(out / "gallery.html", ("data-total",))
    assert page.errors == [] and page.broken_images == [] and page.images > 1
    assert page.text[f"data-total={len(rows)}"] == str(len(rows))

    recipe = tmp_path / "mix.yaml"
    recipe.write_text(
        "name: t\nseed: 0\ninputs:\n"
        f"  - {{name: b, kind: instances, path: '{built / 'instances'}', image_root: '{WorldLayout(world).image_root}'}}\n"
        "steps:\n  - {type: balance_yes_no, yes_ratio: 0.5}\n  - {type: select, method: random, fraction: 0.5}\n"
    )
    res = runner.invoke(app, ["curate", str(recipe), str(tmp_path / "cur")])
    assert res.exit_code == 0, res.output
    cur = json.loads((tmp_path / "cur" / "curation.json").read_text())
    card = (tmp_path / "cur" / "README.md").read_text()
    for task, n in cur["final"]["task"].items():
        assert f"| {task} |" in card and f"| {n} |" in card
    for src, n in cur["final"]["source"].items():
        assert f"| {src} | {n} |" in card
    removed = Counter(
        f"{r['stage']}: {r['reason']}"
        for r in map(json.loads, (tmp_path / "cur" / "removed.jsonl").read_text().splitlines())
    )
    assert removed and all(f"| {k} | {n} |" in card for k, n in removed.items())
    page = view_page(tmp_path / "cur" / "gallery.html")
    assert page.errors == [] and page.broken_images == [] and page.images > 1  # thumbnails via image_roots


def test_data_card_refuses_other_folders(tmp_path):
    res = CliRunner().invoke(app, ["data", "card", str(tmp_path)])
    assert res.exit_code == 2 and "not a build, synth or curate output" in _said(res)
    (tmp_path / "b" / "instances").mkdir(parents=True)
    (tmp_path / "b" / "instances" / "manifest.json").write_text('{"shards": []}')
    (tmp_path / "b" / "rejected.jsonl").write_text('{"stage": "x", "reason": "y"}\n{torn\n')
    res = CliRunner().invoke(app, ["data", "card", str(tmp_path / "b")])
    assert res.exit_code == 2 and "rejected.jsonl: line 2 is not valid JSON" in _said(res)
