"""A tiny three-stage recipe (dense vision -> align -> stage 1) over a small embedded world."""

from __future__ import annotations

from pathlib import Path

from vitune.world.layout import WorldLayout


def tiny_recipe(world: Path, data: Path, **stage_over) -> dict:
    stage1 = {
        "name": "stage1",
        "data": [{"path": str(data / "instances"), "image_root": str(WorldLayout(world).image_root)}],
        "train": {"vision": "full", "projector": "full", "llm": "full"},
        "lr": 1e-3,
        "max_steps": 6,
        "global_batch": 4,
        "per_device_batch": 2,
        "max_length": 256,
        "log_every": 1,
        **stage_over,
    }
    return {
        "name": "tiny-test",
        "model": {"preset": "micro", "vocab_size": 400, "pixel_norm": "dataset"},
        "stages": [
            {
                "name": "vision",
                "kind": "dense_vision",
                "records": {"world": str(world), "split": "train", "world_formats": "core"},
                "train": {"vision": "full", "projector": "frozen", "llm": "frozen"},
                "lr": 2e-3,
                "max_steps": 3,
                "per_device_batch": 4,
                "global_batch": 4,
            },
            {
                "name": "align",
                "data": [
                    {
                        "path": str(data / "instances"),
                        "image_root": str(WorldLayout(world).image_root),
                        "tasks": ["coco_caption_coarse"],
                    }
                ],
                "template": "plain",
                "train": {"vision": "frozen", "projector": "full", "llm": "frozen"},
                "lr": 1e-3,
                "max_steps": 2,
                "global_batch": 2,
                "per_device_batch": 2,
            },
            stage1,
        ],
    }
