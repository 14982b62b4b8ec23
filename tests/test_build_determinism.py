"""`vitune build` outputs: same inputs + seed -> same bytes (any worker count), exports, reconciliation."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from build_helpers import all_bytes, write_dataset
from vitune.cli import app
from vitune.data.ledger import Ledger
from vitune.data.llava import write_llava_json
from vitune.data.records import ImageRecord
from vitune.data.store import read_instances, read_manifest
from vitune.sources import read_visionflan
from vitune.sources.spec import load_sources, load_spec_file
from vitune.tasks.build import build_to_dir
from vitune.tasks.export import JsonListWriter, Placed, flat_name, place_image
from vitune.tasks.spec import Sample, Task, TaskSpec

runner = CliRunner()


def _build(*args: str) -> None:
    res = runner.invoke(app, ["build", *args])
    assert res.exit_code == 0, res.output


def test_same_bytes_with_one_or_two_workers_and_clean_rebuilds(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    common = ["--sources", str(ds["yaml"]), "--cap", "12", "--seed", "5", "--flatten-images"]
    _build(*common, "--out", str(a), "--workers", "1")
    _build(*common, "--out", str(b), "--workers", "2")
    got_a, got_b = all_bytes(a), all_bytes(b)
    assert got_a == got_b  # manifest, shards, exports, ledger and flat images, byte for byte
    assert len([k for k in got_a if k.startswith("images/")]) == read_manifest(a / "instances")["count"]
    # another seed gives other instances
    _build(*[x if x != "5" else "6" for x in common], "--out", str(c), "--workers", "2")
    assert all_bytes(c)["llava.json"] != got_a["llava.json"]
    # rebuilding a folder with fewer tasks leaves no stale shard behind
    _build("--sources", str(ds["yaml"]), "--out", str(a), "--task", "vqa_short_answer", "--cap", "12")
    m = read_manifest(a / "instances")
    assert sorted(m["shards"]) == sorted(f"data/{p.name}" for p in (a / "instances" / "data").iterdir())
    assert m["tasks"] == ["vqa_short_answer"] and len(read_instances(a / "instances")) == m["count"] == 12


def test_llava_export_equals_write_llava_json_and_visionflan_reads_back(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds")
    loaded = load_sources(load_spec_file(ds["yaml"]), Ledger())
    out = tmp_path / "out"
    tasks = ["coco_caption_coarse", "vqa_dialog", "vqa_short_answer"]
    m = build_to_dir(loaded.records, tasks, out, cap=10, seed=1, image_root=loaded.image_root, workers=2)
    insts = read_instances(out / "instances")
    assert write_llava_json(insts, tmp_path / "ref.json", with_task=True) == m["count"] == 30
    assert (out / "llava.json").read_bytes() == (tmp_path / "ref.json").read_bytes()
    vf = read_visionflan(out / "visionflan.json", image_root=ds["image_root"])
    assert [(i.task, i.image, i.turns) for i in vf.instances] == [(i.task, i.image, i.turns) for i in insts]
    assert [i.meta["original_id"] for i in vf.instances] == [i.id for i in insts]
    assert m["exports"]["image_root"] == str(ds["image_root"])
    assert {"instances", "llava.json", "visionflan.json", "rejected.jsonl"} == {p.name for p in out.iterdir()}
    # only the LLaVA export when asked
    m = build_to_dir(loaded.records, tasks, tmp_path / "o2", cap=10, exports=["llava"])
    assert set(m["exports"]) == {"llava"} and not (tmp_path / "o2" / "visionflan.json").exists()


def _flaky(record: ImageRecord, rng, ctx) -> list[Sample]:
    if int(record.image_id) % 2:
        raise ValueError(f"odd image {record.image_id}")
    return [Sample({"caption": "a"}), Sample({"caption": "b"})]


def test_builder_and_template_errors_are_ledgered_and_reconcile(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds")
    ledger = Ledger()
    loaded = load_sources(load_spec_file(ds["yaml"]), ledger)
    flaky = Task(TaskSpec("flaky", "perception", "coco", "Say it.", "{caption}"), _flaky)
    broken = Task(TaskSpec("broken", "perception", "coco", "Say it.", "{missing}"), _flaky)
    m = build_to_dir(loaded.records, [flaky, broken], tmp_path / "o", cap=20, ledger=ledger, workers=2)
    rec = m["reconcile"]["tasks"]
    # 30 images: 15 odd ones raise; 15 even ones give 2 samples each; the cap keeps 20 of 30
    assert rec["flaky"] == {"in": 45, "kept": 20, "rejected": 15, "capped": 10}
    assert rec["broken"] == {"in": 45, "kept": 0, "rejected": 45, "capped": 0}
    rows = Ledger.read(tmp_path / "o" / "rejected.jsonl")
    tasks_rows = [r for r in rows if r["stage"] == "tasks.build"]
    assert len(tasks_rows) == 60 == m["rejected_by_stage"]["tasks.build"]
    assert tasks_rows[0] == {
        "stage": "tasks.build", "file": "", "locator": "task=flaky image_id=1", "reason": "builder error: odd image 1",
        "detail": {},
    }  # fmt: skip
    assert sum("template field missing: 'missing'" in r["reason"] for r in tasks_rows) == 30
    assert len(rows) == m["rejected"] == 60 + 4  # plus the dataset's 4 source defects
    assert m["per_task"] == {"broken": 0, "flaky": 20} and m["count"] == 20


def test_place_image_links_or_copies_and_flat_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "a.jpg"
    src.write_bytes(b"jpeg bytes")
    placed = Placed()
    place_image(src, tmp_path / "linked.jpg", placed)
    place_image(src, tmp_path / "linked.jpg", placed)  # already the same file
    assert os.path.samefile(src, tmp_path / "linked.jpg") and (placed.linked, placed.present) == (1, 1)

    def no_link(a: object, b: object) -> None:
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    place_image(src, tmp_path / "copied.jpg", placed)
    assert placed.copied == 1 and (tmp_path / "copied.jpg").read_bytes() == b"jpeg bytes"
    assert not os.path.samefile(src, tmp_path / "copied.jpg")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    assert flat_name("VQA-E+explain", 7, "train2014/COCO_1.jpg") == "VQA-E+explain_7_COCO_1.jpg"
    with pytest.raises(ValueError, match="cannot be part of an image file name"):
        flat_name("../evil", 0, "x.jpg")


def test_empty_export_is_an_empty_json_list(tmp_path: Path) -> None:
    with JsonListWriter(tmp_path / "e.json") as w:
        w.add("", 0)
    write_llava_json([], tmp_path / "ref.json")
    assert (tmp_path / "e.json").read_bytes() == (tmp_path / "ref.json").read_bytes() == b"[]\n"
