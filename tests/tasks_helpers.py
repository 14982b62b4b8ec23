"""Helpers for the task tests: a small embedded world, its true scenes, and option parsing.

The scene of a world image (`scene_of`) is rebuilt from the seed, independently of every file and
reader, so tests can check an answer against what was actually drawn.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from vitune.data.instance import Instance
from vitune.data.ledger import Ledger
from vitune.data.records import ImageRecord
from vitune.sources.merge import load_world
from vitune.tasks.build import build_instances
from vitune.tasks.spec import get_task
from vitune.world.generate import COCO_ID_BASE, build_scene, coco_image_id, generate_world
from vitune.world.scene import Scene

WORLD_IMAGES = 48
WORLD_SEED = 5
_OPTION = re.compile(r"\(([a-z])\) ")


def make_world(root: Path) -> tuple[Path, list[ImageRecord]]:
    """A 48-image world and its train records with every extra format, read without rejections."""
    generate_world(root, WORLD_IMAGES, WORLD_SEED, workers=1)
    ledger = Ledger()
    records = load_world(root, "train", ledger, extras=True)
    assert len(ledger) == 0, ledger.summary()
    return root, records


def build(
    records: list[ImageRecord], task: str, seed: int = 0, ledger: Ledger | None = None
) -> list[Instance]:
    got = build_instances(records, [task], seed=seed, ledger=ledger)
    assert got, f"task {task} built nothing"
    return got


def scene_of(image_id: str | int) -> Scene:
    """The drawn scene of a world image (COCO id), rebuilt from the seed."""
    iid = int(image_id)
    idx = (iid - COCO_ID_BASE) // 7
    assert coco_image_id(WORLD_SEED, idx) == iid
    return build_scene(WORLD_SEED, idx)


def record_index(records: list[ImageRecord]) -> dict[str, ImageRecord]:
    return {r.image_id: r for r in records}


def by_image(instances: list[Instance]) -> dict[str, list[Instance]]:
    out: dict[str, list[Instance]] = defaultdict(list)
    for i in instances:
        out[i.meta["image_id"]].append(i)
    return out


def norm_box(box: tuple[float, float, float, float], w: int, h: int) -> str:
    """`[x1, y1, x2, y2]` (pixels, corners) as the tasks write it: normalized, clipped, 3 decimals."""
    vals = [box[0] / w, box[1] / h, box[2] / w, box[3] / h]
    return "[" + ", ".join(f"{round(min(1.0, max(0.0, v)), 3):.3f}" for v in vals) + "]"


def user_input(inst: Instance, task: str) -> str:
    """The task input of a single-turn instance; asserts the instruction and the blank line before it."""
    spec = get_task(task).spec
    text = inst.turns[0].text
    head = spec.instruction + "\n\n"
    assert text.startswith(head), text
    return text[len(head) :]


def parse_options(inst: Instance) -> tuple[list[str], str, str]:
    """(option texts, answer letter, answer text) of a multiple-choice instance, checking the format:
    the last line of the prompt is `Options: (a) X (b) Y ...` with letters in order, the target is
    `(letter) text` of one of them, and the meta agrees."""
    line = inst.turns[0].text.splitlines()[-1]
    assert line.startswith("Options: "), line
    parts = _OPTION.split(line[len("Options: ") :])
    assert parts[0] == ""
    letters, texts = parts[1::2], [t.strip() for t in parts[2::2]]
    assert letters == [chr(ord("a") + k) for k in range(len(letters))]
    assert len(set(texts)) == len(texts), texts
    assert texts == inst.meta["options"]
    target = inst.turns[1].text
    m = re.fullmatch(r"\(([a-z])\) (.+)", target, re.S)
    assert m, target
    letter, text = m.group(1), m.group(2)
    assert letter == inst.meta["answer"] and texts[ord(letter) - ord("a")] == text
    return texts, letter, text
