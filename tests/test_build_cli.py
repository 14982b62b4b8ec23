"""`vitune build` on small official-format files: sources, selection, manifest, ledger, exports."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from build_helpers import N, all_bytes, source_pairs, write_dataset
from vitune import __version__
from vitune.cli import app
from vitune.data.ledger import Ledger
from vitune.data.llava import read_llava_json
from vitune.data.store import read_instances, read_manifest
from vitune.sources import read_visionflan
from vitune.tasks.select import categories
from vitune.tasks.spec import registry

runner = CliRunner()


def flat(output: str) -> str:
    """CLI output without rich's panel borders and line wrapping."""
    for ch in "│╭╮╰╯─":
        output = output.replace(ch, " ")
    return " ".join(output.split())


def build(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["build", *args])
    return res.exit_code, flat(res.output)


def test_build_from_sources_yaml_manifest_ledger_and_exports(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    code, text = build(
        "--sources", str(ds["yaml"]), "--out", str(out), "--task", "vqa_short_answer",
        "--task", "coco_caption_coarse", "--category", "General Object", "--cap", "20", "--seed", "3",
        "--flatten-images", "--workers", "2",
    )  # fmt: skip
    assert code == 0, text
    m = read_manifest(out / "instances")
    expected = sorted({"vqa_short_answer", "coco_caption_coarse", *categories()["general object"]})
    assert m["tasks"] == expected and m["caps"] == dict.fromkeys(expected, 20)
    assert (m["seed"], m["cap"], m["vitune_version"]) == (3, 20, __version__)
    assert m["selection"]["categories"] == ["General Object"]
    # 30 images, image 30 absent on disk: 29 usable; VQA has 2 questions per image -> 58 candidates
    assert (
        m["build"]["candidates"]["vqa_short_answer"] == 2 * (N - 1)
        and m["per_task"]["vqa_short_answer"] == 20
    )
    assert m["per_task"]["coco_caption_coarse"] == 20 and m["records"] == N - 1
    assert sum(m["per_task"].values()) == m["count"] == sum(m["per_category"].values())
    cats = Counter()
    for name, n in m["per_task"].items():
        cats[registry()[name].spec.category] += n
    assert m["per_category"] == {k: v for k, v in sorted(cats.items()) if v}
    # inputs: every annotation file with its real sha256
    got = {Path(i["path"]).name: i["sha256"] for i in m["inputs"]}
    want = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in ds.items() if p.suffix == ".json"}
    assert got == want and len(got) == 7
    # the ledger holds exactly the planted defects, and every stage reconciles against it
    ledger = Ledger.read(out / "rejected.jsonl")
    assert len(ledger) == m["rejected"]
    reasons: dict[str, list[str]] = {r["stage"]: [] for r in ledger}
    for r in ledger:
        reasons[r["stage"]].append(r["reason"])
    # task-level rejections (e.g. too few wrong options for a multiple-choice task on 3 categories)
    # depend on the catalog; they must match the per-task counts exactly
    task_rows = reasons.pop("tasks.build", [])
    assert len(task_rows) == sum(t["rejected"] for t in m["reconcile"]["tasks"].values())
    assert len(ledger) - len(task_rows) == 5
    assert sorted(reasons["sources.coco"]) == sorted(
        ["unknown image id 999", "unknown category id 77", "missing or empty 'caption'"]
    )
    assert reasons["sources.merge"] == ["no source gives an image file"]
    assert reasons["build.images"][0].startswith(
        "image file missing: train2014/COCO_train2014_000000000030.jpg"
    )
    rec = m["reconcile"]
    per_file = Counter((r["stage"], r["file"]) for r in ledger if r["file"])
    for s in rec["files"]:
        assert s["seen"] == s["kept"] + s["rejected"]
    file_rejects = Counter()
    for s in rec["files"]:
        file_rejects[(s["stage"], s["file"])] += s["rejected"]
    assert +file_rejects == per_file
    assert rec["merge"] == {"in": N + 1, "kept": N, "rejected": 1}
    assert rec["images"] == {"in": N, "kept": N - 1, "rejected": 1}
    for t in rec["tasks"].values():
        assert t["in"] == t["kept"] + t["rejected"] + t["capped"]
    by_stage = {k: v for k, v in m["rejected_by_stage"].items() if k != "tasks.build"}
    assert by_stage == {"build.images": 1, "sources.coco": 3, "sources.merge": 1}
    # exports: the Vision-Flan importer reads ours back, flat images are hard links of the originals
    insts = read_instances(out / "instances")
    assert all(i.meta["image_id"] != str(N) for i in insts)
    vf = read_visionflan(out / "visionflan.json", image_subdir="images", image_root=out, check_images=True)
    assert vf.reconciles and vf.stats.kept == m["count"] == len(insts) == m["exports"]["visionflan"]["count"]
    assert vf.tasks == {k: v for k, v in m["per_task"].items() if v}
    idx: Counter[str] = Counter()
    for inst, back in zip(insts, vf.instances, strict=True):
        assert (back.task, back.turns, back.meta["original_id"]) == (inst.task, inst.turns, inst.id)
        base = inst.image.split("/")[-1]
        assert back.image == f"images/{inst.task}_{idx[inst.task]}_{base}"
        idx[inst.task] += 1
        assert os.path.samefile(out / back.image, ds["image_root"] / inst.image)
    llava = read_llava_json(out / "llava.json")
    assert [r.id for r in llava] == [i.id for i in insts]
    assert [r.image for r in llava] == [b.image.removeprefix("images/") for b in vf.instances]
    assert hashlib.sha256((out / "llava.json").read_bytes()).hexdigest() == m["exports"]["llava"]["sha256"]


def test_source_options_build_the_same_bytes_as_the_yaml(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds")
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--category", "perception", "--cap", "15", "--workers", "1"]
    assert build("--sources", str(ds["yaml"]), "--out", str(a), *common)[0] == 0
    code, text = build(
        *source_pairs(ds), "--image-root", str(ds["image_root"]), "--split", "train", "--out", str(b), *common
    )
    assert code == 0, text
    ba, bb = all_bytes(a), all_bytes(b)
    manifest = "instances/manifest.json"
    ma, mb = json.loads(ba.pop(manifest)), json.loads(bb.pop(manifest))
    assert ba == bb  # shards, exports, ledger
    assert ma.pop("sources")["kind"] == "sources" and mb.pop("sources")["kind"] == "source"
    assert ma == mb
    assert "image_root" in ma["exports"]  # not flattened: exports keep paths relative to the image root


def test_tasks_file_caps_and_selection(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds")
    tf = tmp_path / "tasks.yaml"
    tf.write_text(
        "tasks:\n  - {category: perception, cap: 5}\n  - {task: vqa_short_answer, cap: 7}\n  - coarse-grained captioning\n"
    )
    out = tmp_path / "out"
    code, text = build(
        "--sources", str(ds["yaml"]), "--out", str(out), "--tasks-file", str(tf), "--cap", "11"
    )
    assert code == 0, text
    m = read_manifest(out / "instances")
    cats = categories()
    want = sorted({*cats["perception"], *cats["coarse-grained captioning"]})
    assert m["tasks"] == want
    assert m["caps"]["vqa_short_answer"] == 7 and m["caps"]["coco_caption_coarse"] == 11
    assert all(m["caps"][t] == 5 for t in cats["perception"] if t != "vqa_short_answer")
    assert m["per_task"]["vqa_short_answer"] == 7 and m["per_task"]["coco_caption_coarse"] == 11
    assert m["per_task"]["object_counting"] == 5
    assert m["selection"]["tasks_file"] == str(tf)


def test_bad_options_and_inputs_give_clear_errors(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds")
    out = str(tmp_path / "out")
    src = ["--sources", str(ds["yaml"]), "--out", out]
    code, text = build(*src, "--task", "nope")
    assert (
        code == 2 and "unknown task 'nope'" in text and "known tasks:" in text and "vqa_short_answer" in text
    )
    code, text = build(*src, "--category", "astrology")
    assert code == 2 and "unknown category 'astrology'" in text and "perception" in text
    tf = tmp_path / "t.yaml"
    tf.write_text("- vqa_short_answer\n- palmistry\n")
    code, text = build(*src, "--tasks-file", str(tf))
    assert code == 2 and "'palmistry' is neither a task nor a category" in text
    code, text = build("--out", out)
    assert code == 2 and "exactly one of --world, --sources, --source" in text
    code, text = build(*src, "--world", str(tmp_path))
    assert code == 2 and "got --world, --sources" in text
    code, text = build("--out", out, "--source", "cocoa=x.json", "--image-root", str(tmp_path))
    assert code == 2 and "unknown kind 'cocoa'" in text and "coco_instances" in text
    code, text = build("--out", out, "--source", f"coco_instances={ds['instances']}")
    assert code == 2 and "--image-root" in text
    code, text = build(*src, "--export", "parquet")
    assert code == 2 and "unknown export 'parquet'" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(ds["yaml"].read_text().replace("coco_instances:", "coco_instancs:"))
    code, text = build("--sources", str(bad), "--out", out)
    assert code == 2 and "coco_instancs: Extra inputs are not permitted" in text
    ds["captions"].write_text('{"images": [')  # truncated file
    code, text = build(*src)
    assert code == 2 and "captions_train2014.json" in text and "invalid JSON" in text
    assert not (tmp_path / "out" / "instances" / "manifest.json").exists()
