"""Shared fixtures: small hand-built image records in the merged format."""

from __future__ import annotations

import pytest

from vitune.data.ledger import Ledger
from vitune.data.records import QA, Box, ImageRecord, ObjectAnn
from vitune.sources.merge import load_world
from vitune.tasks.build import build_to_dir
from vitune.world.generate import generate_world


def make_record(image_id: str = "1", *, objects=None, captions=None, qas=None) -> ImageRecord:
    return ImageRecord(
        image_id=image_id,
        file_name=f"train/{image_id}.jpg",
        width=320,
        height=240,
        captions=captions if captions is not None else [f"A red circle and a blue square ({image_id})."],
        objects=objects
        if objects is not None
        else [
            ObjectAnn("coco:1", "circle", Box(10, 10, 50, 50), [], "coco"),
            ObjectAnn("coco:2", "square", Box(100, 50, 60, 60), [], "coco"),
            ObjectAnn("coco:3", "square", Box(200, 50, 60, 60), [], "coco"),
            ObjectAnn("vg:1", "circle", Box(10, 10, 50, 50), ["red", "small"], "vg"),
            ObjectAnn("vg:2", "square", Box(100, 50, 60, 60), ["blue", "large"], "vg"),
            ObjectAnn("vg:3", "square", Box(200, 50, 60, 60), ["green", "large"], "vg"),
        ],
        qas=qas
        if qas is not None
        else [QA(f"{image_id}001", "What color is the circle?", ["red"] * 10, "other", "what color is the")],
    )


@pytest.fixture
def records() -> list[ImageRecord]:
    return [make_record(str(i)) for i in range(1, 6)]


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    world = root / "world"
    generate_world(world, 30, seed=3, workers=1)
    ledger = Ledger()
    records = load_world(world, "train", ledger)
    build_to_dir(
        records, ["coco_caption_coarse", "object_color", "vqa_short_answer"], root / "data", cap=40, seed=0
    )
    return world, root / "data"
