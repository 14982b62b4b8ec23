"""Shared fixtures: small hand-built image records in the merged format."""

from __future__ import annotations

import pytest

from vitune.data.records import QA, Box, ImageRecord, ObjectAnn


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
