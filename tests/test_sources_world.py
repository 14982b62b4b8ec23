"""Integration: the embedded world read back through the public-format readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import vitune.world.generate as generate
from vitune.data.ledger import Ledger
from vitune.sources import ReadStats, load_world, resolve_image


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    generate.generate_world(root, 20, seed=3, workers=1)
    return root


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_load_world_split(world: Path, split: str) -> None:
    summary = json.loads((world / "world.json").read_text())
    ledger, stats = Ledger(), []
    recs = load_world(world, split, ledger, stats=stats)
    assert len(ledger) == 0, ledger.summary()
    want = summary["splits"][split]
    assert len(recs) == want["images"]
    assert sum(len(r.captions) for r in recs) == want["captions"]
    assert sum(len(r.qas) for r in recs) == want["questions"]
    assert sum(1 for r in recs for o in r.objects if o.source == "coco") == want["annotations"]
    assert [r.image_id for r in recs] == sorted((r.image_id for r in recs), key=int)
    assert all(isinstance(s, ReadStats) and s.seen == s.kept + s.rejected for s in stats)
    for r in recs:
        assert r.split == split and r.sources == ["coco", "vg", "vqav2"]
        assert resolve_image(world / "images", r.file_name).is_file()
        ids = r.object_by_id()
        assert all(rel.subject_id in ids and rel.object_id in ids for rel in r.relations)
        assert all(len(qa.answers) == 10 for qa in r.qas)


def test_load_world_covers_vg_pool_once(world: Path) -> None:
    summary = json.loads((world / "world.json").read_text())
    recs = [r for split in ("train", "val", "test") for r in load_world(world, split)]
    assert len(recs) == summary["vg"]["images"]
    assert sum(1 for r in recs for o in r.objects if o.source == "vg") == summary["vg"]["objects"]
    assert sum(len(r.relations) for r in recs) == summary["vg"]["relationships"]
    assert sum(len(r.regions) for r in recs) == summary["vg"]["regions"]


def test_load_world_missing_split(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no COCO files"):
        load_world(tmp_path, "train")
