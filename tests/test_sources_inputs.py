"""`SourcesInput`: one entry point from --world / --sources / --source to records, shared by
`vitune build`, `vitune synth`, the quickstart and a recipe's dense_vision stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vitune.cli import app
from vitune.data.ledger import Ledger
from vitune.sources.inputs import SourcesInput, sources_input
from vitune.sources.merge import load_world
from vitune.sources.spec import SpecError
from vitune.train.plan import estimate_records
from vitune.train.recipe import load_recipe
from vitune.world.generate import generate_world
from vitune.world.layout import WorldLayout

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inp") / "w"
    generate_world(root, 8, seed=5, workers=1, split_fractions=(1.0, 0.0, 0.0))
    return root


@pytest.fixture(scope="module")
def spec_file(world: Path) -> Path:
    """A sources YAML naming the world's COCO + VQAv2 files as a user's real layout would."""
    lay = WorldLayout(world)
    p = world.parent / "spec.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "image_root": str(lay.image_root),
                "coco_instances": str(lay.coco_instances("train")),
                "coco_captions": str(lay.coco_captions("train")),
                "coco_image_subdir": lay.image_subdir("train"),
                "vqa_questions": str(lay.vqa_questions("train")),
                "vqa_annotations": str(lay.vqa_annotations("train")),
            }
        )
    )
    return p


def test_exactly_one_input_and_image_root_for_pairs(world, spec_file):
    with pytest.raises(SpecError, match=r"exactly one of --world, --sources, --source \(got none\)"):
        sources_input()
    with pytest.raises(SpecError, match=r"\(got --world, --sources\)"):
        sources_input(world=world, sources=spec_file)
    with pytest.raises(SpecError, match="--source needs --image-root"):
        sources_input(source=["coco=x.json"])
    with pytest.raises(SpecError, match="world_formats"):
        sources_input(world=world, world_formats="some")


def test_world_reads_every_format_unless_core(world):
    full = SourcesInput(world=world).load()
    core = SourcesInput(world=world, world_formats="core").load()
    plain = load_world(world, "train", Ledger())
    assert [r.image_id for r in core.records] == [r.image_id for r in plain]
    keys = {r.image_id.split(":")[0] for r in full.records}
    assert {"openimages", "scienceqa", "imagefolder"} <= keys  # TextVQA, ScienceQA, class folders
    assert len(full.records) > len(core.records)
    assert set(core.inputs) < set(full.inputs)
    assert full.image_root == core.image_root == WorldLayout(world).image_root
    assert full.images_in == len(full.records) + full.rejected


def test_sources_file_and_pairs_give_the_same_records(world, spec_file):
    lay = WorldLayout(world)
    a = sources_input(sources=spec_file).load()
    pairs = [
        f"coco_instances={lay.coco_instances('train')}",
        f"coco_captions={lay.coco_captions('train')}",
        f"coco_image_subdir={lay.image_subdir('train')}",
        f"vqa={lay.vqa_questions('train')}",
        f"vqa_annotations={lay.vqa_annotations('train')}",
    ]
    b = sources_input(source=pairs, image_root=lay.image_root).load()
    assert a.records == b.records
    assert len(a.records) == 8 and all(r.qas for r in a.records)


def test_synth_world_reads_the_formats_build_reads(world, tmp_path):
    """Before the shared entry point `synth --world` read COCO/VG/VQAv2 only: a TextVQA image
    (an `openimages:` record) was unknown to it."""
    rec = next(r for r in SourcesInput(world=world).load().records if r.image_id.startswith("openimages:"))
    r = runner.invoke(app, ["synth", "--world", str(world), "--out", str(tmp_path / "s"),
                            "--show-prompt", "detail_description", "--image", rec.image_id])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["messages"]
    r = runner.invoke(app, ["synth", "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "exactly one of --world, --sources, --source" in r.output


def test_dense_stage_reads_a_sources_file(world, spec_file, tmp_path):
    """A recipe's `records:` takes the same inputs, paths relative to the recipe's folder."""
    (tmp_path / "data").mkdir()
    local = tmp_path / "data" / "spec.yaml"
    local.write_text(spec_file.read_text())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "dense-only",
                "model": {"preset": "tiny"},
                "stages": [
                    {
                        "name": "vision",
                        "kind": "dense_vision",
                        "records": {"sources": "data/spec.yaml"},
                        "train": {"vision": "full", "projector": "frozen", "llm": "frozen"},
                    }
                ],
            }
        )
    )
    r = load_recipe(recipe)
    st = r.stages[0]
    assert st.records.sources == local and st.records.split == "train"
    assert estimate_records(st).samples == 8
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(recipe.read_text())
    data["stages"][0]["records"] = {"sources": "s.yaml", "world": "w"}
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="exactly one of"):
        load_recipe(bad)
