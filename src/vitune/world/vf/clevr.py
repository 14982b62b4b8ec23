"""The world's CLEVR copy: one CLEVR-style scene per world image, with questions from programs.

Scenes and pictures come from `clevr_scene.py` (drawn from the format's own RNG stream). Questions
are instances of a few CLEVR-style families, each written as a CLEVR program (`{function, inputs,
value_inputs}` nodes) whose answer `clevr_scene.execute` computes on the scene:

  0 count            "How many large metal things are there?"          scene-filter*-count
  1 exist            "Are there any red cylinders?"                    scene-filter*-exist
  2 query            "What color is the small rubber sphere?"          scene-filter*-unique-query_*
  3 compare attribute "Does the cube have the same size as the ...?"   two uniques, equal_*
  4 compare number   "Are there more spheres than red things?"         two counts, greater_than/...
  5 relate count     "How many cubes are left of the large sphere?"    unique-relate-filter*-count

Files as CLEVR v1.0 lays them out: `ROOT/clevr/questions/CLEVR_{split}_questions.json`,
`ROOT/clevr/scenes/CLEVR_{split}_scenes.json` and `ROOT/images/clevr/{split}/CLEVR_{split}_{index:06d}.png`
(the block's `image_subdir` is `clevr`). `image_index` is the world image's index (so the numbers of one split have gaps).
The world's test split keeps its answers and scenes (CLEVR's own test split ships neither).
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

from vitune.sources.clevr import CLEVRSource
from vitune.utils.atomic import write_bytes, write_json
from vitune.world.layout import SPLITS, WorldLayout
from vitune.world.vf.clevr_scene import (
    ATTRS,
    COLORS,
    MATERIALS,
    SHAPES,
    SIZES,
    execute,
    relationships,
    sample_scene,
)
from vitune.world.vf.clevr_scene import render as render_scene
from vitune.world.vf.format import ImageContext, WorldFormat, register

NAME = "clevr"
SUBDIR = "clevr"
VALUES = {"size": tuple(SIZES), "color": tuple(COLORS), "material": MATERIALS, "shape": SHAPES}
Node = dict[str, Any]


def image_filename(split: str, index: int) -> str:
    return f"CLEVR_{split}_{index:06d}.png"


def questions_file(layout: WorldLayout, split: str) -> Path:
    return layout.root / "clevr" / "questions" / f"CLEVR_{split}_questions.json"


def scenes_file(layout: WorldLayout, split: str) -> Path:
    return layout.root / "clevr" / "scenes" / f"CLEVR_{split}_scenes.json"


def _node(fn: str, inputs: list[int], value: str | None = None) -> Node:
    return {"inputs": inputs, "function": fn, "value_inputs": [value] if value is not None else []}


def noun_phrase(attrs: dict[str, str], plural: bool = False) -> str:
    """CLEVR's word order: size, colour, material, shape ("thing" without one)."""
    words = [attrs[a] for a in ("size", "color", "material") if a in attrs]
    shape = attrs.get("shape", "thing")
    return " ".join([*words, shape + "s" if plural else shape])


def _filters(program: list[Node], attrs: dict[str, str]) -> int:
    """Append `scene` and the filters of `attrs`; the index of the last node."""
    program.append(_node("scene", []))
    for a in ATTRS:
        if a in attrs:
            program.append(_node(f"filter_{a}", [len(program) - 1], attrs[a]))
    return len(program) - 1


def _random_attrs(rng: random.Random, objects: list[dict], k: int) -> dict[str, str]:
    """`k` attributes, half the time of an object of the scene (so counts are not mostly zero)."""
    keys = rng.sample(ATTRS, k)
    if rng.random() < 0.6:
        o = rng.choice(objects)
        return {a: o[a] for a in keys}
    return {a: rng.choice(VALUES[a]) for a in keys}


def unique_attrs(objects: list[dict], i: int, rng: random.Random, skip: str = "") -> dict[str, str] | None:
    """A smallest attribute set (without `skip`) that picks object `i` alone, or None."""
    keys = [a for a in ATTRS if a != skip]
    for k in range(1, len(keys) + 1):
        combos = [c for c in itertools.combinations(keys, k) if _only(objects, i, c)]
        if combos:
            return {a: objects[i][a] for a in rng.choice(combos)}
    return None


def _only(objects: list[dict], i: int, attrs: tuple[str, ...]) -> bool:
    return all(any(o[a] != objects[i][a] for a in attrs) for j, o in enumerate(objects) if j != i)


def _count(rng: random.Random, objects: list[dict]) -> tuple[str, list[Node]] | None:
    attrs = _random_attrs(rng, objects, rng.randint(1, 2))
    program: list[Node] = []
    program.append(_node("count", [_filters(program, attrs)]))
    return f"How many {noun_phrase(attrs, True)} are there?", program


def _exist(rng: random.Random, objects: list[dict]) -> tuple[str, list[Node]] | None:
    attrs = _random_attrs(rng, objects, rng.randint(1, 2))
    program: list[Node] = []
    program.append(_node("exist", [_filters(program, attrs)]))
    return f"Are there any {noun_phrase(attrs, True)}?", program


def _query(rng: random.Random, objects: list[dict]) -> tuple[str, list[Node]] | None:
    i, attr = rng.randrange(len(objects)), rng.choice(ATTRS)
    attrs = unique_attrs(objects, i, rng, skip=attr)
    if attrs is None:
        return None
    program: list[Node] = []
    program.append(_node("unique", [_filters(program, attrs)]))
    program.append(_node(f"query_{attr}", [len(program) - 1]))
    return f"What {attr} is the {noun_phrase(attrs)}?", program


def _compare_attr(rng: random.Random, objects: list[dict]) -> tuple[str, list[Node]] | None:
    if len(objects) < 2:
        return None
    i, j = rng.sample(range(len(objects)), 2)
    attr = rng.choice(ATTRS)
    a, b = unique_attrs(objects, i, rng, skip=attr), unique_attrs(objects, j, rng, skip=attr)
    if a is None or b is None:
        return None
    program: list[Node] = []
    program.append(_node("unique", [_filters(program, a)]))
    first = len(program) - 1
    program.append(_node("unique", [_filters(program, b)]))
    program.append(_node(f"equal_{attr}", [first, len(program) - 1]))
    return f"Does the {noun_phrase(a)} have the same {attr} as the {noun_phrase(b)}?", program


_COMPARE = {
    "greater_than": "Are there more {a} than {b}?",
    "less_than": "Are there fewer {a} than {b}?",
    "equal_integer": "Is the number of {a} the same as the number of {b}?",
}


def _compare_number(rng: random.Random, objects: list[dict]) -> tuple[str, list[Node]] | None:
    a, b = _random_attrs(rng, objects, 1), _random_attrs(rng, objects, 1)
    if a == b:
        return None
    fn = rng.choice(sorted(_COMPARE))
    program: list[Node] = []
    program.append(_node("count", [_filters(program, a)]))
    first = len(program) - 1
    program.append(_node("count", [_filters(program, b)]))
    program.append(_node(fn, [first, len(program) - 1]))
    return _COMPARE[fn].format(a=noun_phrase(a, True), b=noun_phrase(b, True)), program


def _relate(rng: random.Random, objects: list[dict]) -> tuple[str, list[Node]] | None:
    i = rng.randrange(len(objects))
    ref = unique_attrs(objects, i, rng)
    if ref is None:
        return None
    direction = rng.choice(("left", "right"))
    attrs = _random_attrs(rng, objects, 1)
    program: list[Node] = []
    program.append(_node("unique", [_filters(program, ref)]))
    program.append(_node("relate", [len(program) - 1], direction))
    for a in ATTRS:
        if a in attrs:
            program.append(_node(f"filter_{a}", [len(program) - 1], attrs[a]))
    program.append(_node("count", [len(program) - 1]))
    where = f"{direction} of the {noun_phrase(ref)}"
    return f"How many {noun_phrase(attrs, True)} are {where}?", program


FAMILIES = (_count, _exist, _query, _compare_attr, _compare_number, _relate)


def make(ctx: ImageContext) -> dict:
    rng = ctx.rng(NAME)
    objects = sample_scene(rng)
    questions = []
    for family in rng.sample(range(len(FAMILIES)), 4):
        got = FAMILIES[family](rng, objects)
        if got is not None:
            text, program = got
            questions.append(
                {"question": text, "program": program, "family": family, "answer": execute(program, objects)}
            )
    fname = image_filename(ctx.split, ctx.idx)
    write_bytes(ctx.image_root / SUBDIR / ctx.split / fname, render_scene(objects), fsync=False)
    return {"objects": objects, "questions": questions, "image_index": ctx.idx, "image_filename": fname}


def write(layout: WorldLayout, records: list[dict]) -> None:
    for split in SPLITS:
        scenes, questions = [], []
        recs = sorted((r for r in records if r["split"] == split), key=lambda r: r["idx"])
        for r in recs:
            c = r["extras"][NAME]
            if c is None:  # not in CLEVR's share of the world
                continue
            objects = c["objects"]
            head = {"image_index": c["image_index"], "image_filename": c["image_filename"], "split": split}
            scenes.append({**head, "objects": objects, "relationships": relationships(objects)})
            for q in c["questions"]:
                questions.append(
                    {
                        **head,
                        "question": q["question"],
                        "answer": q["answer"],
                        "program": q["program"],
                        "question_family_index": q["family"],
                        "question_index": len(questions),
                    }
                )
        info = {"split": split, "version": "1.0", "license": "Creative Commons Attribution (CC BY 4.0)"}
        write_json(questions_file(layout, split), {"info": info, "questions": questions})
        write_json(scenes_file(layout, split), {"info": info, "scenes": scenes})


def blocks(layout: WorldLayout, split: str) -> list[CLEVRSource]:
    return [
        CLEVRSource(
            questions=questions_file(layout, split), scenes=scenes_file(layout, split), image_subdir=SUBDIR
        )
    ]


FORMAT = register(WorldFormat(NAME, make, write, blocks, image_subdirs=(SUBDIR,), share=0.5))
