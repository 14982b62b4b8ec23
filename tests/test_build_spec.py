"""Sources for `vitune build`: the SourceSpec YAML, `--source KIND=PATH` options, counts that reconcile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from build_helpers import N, write_dataset
from vitune.data.ledger import Ledger
from vitune.sources.spec import SpecError, load_sources, load_spec_file, spec_from_pairs


def test_yaml_paths_are_relative_to_the_file_and_errors_name_the_field(tmp_path: Path) -> None:
    f = tmp_path / "cfg" / "sources.yaml"
    f.parent.mkdir()
    f.write_text(
        "image_root: ../img\nsplit: val\ncoco_instances: /abs/instances.json\nvg_dir: vg\n"
        "gqa: {questions: [q1.json, /abs/q2.json], balanced_only: true}\n"
        "imagefolders: [{root: ../img/classes, source: shapes, verify: false}]\n"
    )
    spec = load_spec_file(f)
    assert spec.image_root == f.parent / "../img" and spec.vg_dir == f.parent / "vg"
    assert spec.coco_instances == Path("/abs/instances.json") and spec.split == "val"
    assert spec.gqa is not None and spec.gqa.questions == [f.parent / "q1.json", Path("/abs/q2.json")]
    assert (
        spec.imagefolders[0].root == f.parent / "../img/classes" and spec.imagefolders[0].source == "shapes"
    )
    assert load_spec_file(f, split="train").split == "train"
    f.write_text("image_root: x\ncoco_instances: a.json\ngqa: {questions: q.json, balanced: true}\n")
    with pytest.raises(SpecError, match=r"sources.yaml: gqa.balanced: Extra inputs are not permitted"):
        load_spec_file(f)
    f.write_text("coco_instances: a.json\n")
    with pytest.raises(SpecError, match="image_root: Field required"):
        load_spec_file(f)
    f.write_text("- a\n")
    with pytest.raises(SpecError, match="expected a mapping of SourceSpec fields, got list"):
        load_spec_file(f)
    with pytest.raises(SpecError, match="sources file not found"):
        load_spec_file(tmp_path / "nope.yaml")


def test_source_pairs_map_kinds_to_spec_fields() -> None:
    spec = spec_from_pairs(
        ["coco=i.json", "coco_captions=c.json", "coco-image-subdir=train2014", "vg=vgdir", "gqa=a.json",
         "gqa=b.json", "gqa.balanced_only=true", "textvqa=t.json", "textvqa_ocr=o.json", "scienceqa=p.json",
         "scienceqa_splits=s.json", "refcoco+=r.json", "imagefolder=cls", "restrict_to_coco=true"],
        image_root="/img", split="train",
    )  # fmt: skip
    assert (spec.coco_instances, spec.coco_captions, spec.vg_dir) == (
        Path("i.json"),
        Path("c.json"),
        Path("vgdir"),
    )
    assert spec.coco_image_subdir == "train2014" and spec.restrict_to_coco and spec.split == "train"
    assert (
        spec.gqa is not None
        and spec.gqa.questions == [Path("a.json"), Path("b.json")]
        and spec.gqa.balanced_only
    )
    assert spec.textvqa is not None and (spec.textvqa.questions, spec.textvqa.ocr) == (
        Path("t.json"),
        Path("o.json"),
    )
    assert spec.scienceqa is not None and spec.scienceqa.pid_splits == Path("s.json")
    ref = spec.refcoco[0]
    assert (ref.refs, ref.instances, ref.dataset) == (Path("r.json"), Path("i.json"), "refcoco+")
    assert spec.imagefolders[0].root == Path("cls")
    assert spec.input_files() == [Path(p) for p in ("i.json", "c.json", "a.json", "b.json", "t.json", "o.json",
                                                     "p.json", "s.json", "r.json")]  # fmt: skip
    for pair, message in [
        ("coco", "expected KIND=PATH"),
        ("cocoa=x", "unknown kind 'cocoa'; known: aokvqa, check_images, clevr, coco,"),
        ("refcoco=r.json", "RefCOCO needs coco_instances"),
        ("vg_image_subdir.x=1", "only gqa., textvqa., scienceqa."),
        ("check_images=maybe", "check_images: Input should be a valid boolean"),
    ]:
        with pytest.raises(SpecError, match=None) as e:
            spec_from_pairs([pair], image_root="/img")
        assert message in str(e.value)


def test_load_sources_counts_reconcile_with_the_ledger(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds")
    ledger = Ledger()
    res = load_sources(load_spec_file(ds["yaml"]), ledger)
    assert len(res.records) == N and res.image_root == tmp_path / "ds" / "images"
    assert [p.name for p in res.inputs] == [
        "instances_train2014.json", "captions_train2014.json", "image_data.json", "objects.json",
        "attributes.json", "v2_OpenEnded_mscoco_train2014_questions.json", "v2_mscoco_train2014_annotations.json",
    ]  # fmt: skip
    rec = res.reconcile()
    assert rec["merge"] == {"in": N + 1, "kept": N, "rejected": 1}
    assert all(s["seen"] == s["kept"] + s["rejected"] for s in rec["files"])
    assert sum(s["rejected"] for s in rec["files"]) + rec["merge"]["rejected"] == len(ledger) == 4
    # restrict_to_coco: the stray VQA question is rejected by the reader, not the merge
    spec = load_spec_file(ds["yaml"]).model_copy(update={"restrict_to_coco": True, "check_images": True})
    ledger = Ledger()
    res = load_sources(spec, ledger)
    assert res.reconcile()["merge"] == {"in": N, "kept": N - 1, "rejected": 1}  # image 30 is missing
    assert any(r.stage == "sources.vqav2" and "unknown image id 4242" in r.reason for r in ledger.items)
    assert any(r.stage == "sources.load" and "image file missing" in r.reason for r in ledger.items)


def test_more_formats_merge_through_the_spec(tmp_path: Path) -> None:
    """ScienceQA problems and class folders read through the same spec, next to COCO."""
    ds = write_dataset(tmp_path / "ds")
    root = ds["image_root"]
    for cls in ("cat", "dog"):
        (root / "classes" / cls).mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (8, 8), (k * 90, 10, 10)).save(root / "classes" / cls / f"{cls}{k}.png")
    sqa = tmp_path / "ds" / "scienceqa"
    sqa.mkdir()
    problems = {
        "7": {"question": "Which is a mammal?", "choices": ["cat", "rock"], "answer": 0, "hint": "", "image": "image.png",
              "split": "train", "subject": "natural science", "category": "Classification", "solution": "Cats are."},
        "8": {"question": "Text only?", "choices": ["a", "b"], "answer": 1, "hint": "", "image": None, "split": "train"},
    }  # fmt: skip
    (sqa / "problems.json").write_text(json.dumps(problems))
    (root / "sqa" / "train" / "7").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "sqa" / "train" / "7" / "image.png")
    y = tmp_path / "ds" / "more.yaml"
    y.write_text(
        ds["yaml"].read_text()
        + "scienceqa: {problems: scienceqa/problems.json, image_subdir: sqa}\n"
        + "imagefolders: [{root: images/classes, source: pets}]\n"
    )
    ledger = Ledger()
    res = load_sources(load_spec_file(y), ledger)
    by_id = {r.image_id: r for r in res.records}
    assert by_id["scienceqa:7"].qas[0].choices == ["cat", "rock"]
    assert by_id["scienceqa:7"].file_name == "sqa/train/7/image.png"
    pets = sorted(k for k in by_id if k.startswith("pets:"))
    assert [by_id[k].labels for k in pets] == [["cat"], ["cat"], ["dog"], ["dog"]]
    assert res.reconcile()["merge"]["kept"] == N + 1 + 4
    assert (tmp_path / "ds" / "scienceqa" / "problems.json") in res.inputs
