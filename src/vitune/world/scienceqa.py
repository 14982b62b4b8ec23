"""ScienceQA-style multiple-choice problems about a scene, with a lecture and a worked solution.

ScienceQA problems (Lu et al. 2022) pair a question and 2-5 choices with an image, an optional hint,
a general `lecture` and a problem-specific `solution`. The world asks geometry problems that need
both the picture and a little outside knowledge (how many corners a shape has):

  corners   "How many corners do the triangles in the picture have in all?"  (count x corners)
  largest   "Which shape in the picture is the largest?"                      (clear area margin only)
  sides     "Which shape in the picture has six sides?"                       (one shape with that count)

About half the images get one problem (`P_PROBLEM`); the choices are shuffled and `answer` indexes
the correct one, as in `problems.json`.
"""

from __future__ import annotations

import random

from vitune.world.facts import NUMBER_WORDS, referents
from vitune.world.scene import Scene

P_PROBLEM = 0.5
# Corners (= sides) of the world's polygons; a circle has none, a star's outline is not asked about.
CORNERS = {"triangle": 3, "square": 4, "diamond": 4, "hexagon": 6}
LARGEST_MARGIN = 1.3  # the largest object's drawn area over the runner-up's

LECTURE_CORNERS = (
    "A polygon is a flat shape made of straight sides. Two sides meet at a corner, so a polygon has "
    "as many corners as sides: a triangle has 3, a square and a diamond have 4, and a hexagon has 6."
)
LECTURE_AREA = "The area of a flat shape is the amount of space it covers. A larger shape covers more space."
BASE = {
    "task": "closed choice",
    "grade": "grade3",
    "subject": "natural science",
    "topic": "geometry",
    "image": "image.jpg",
}


def make_problem(scene: Scene, rng: random.Random) -> dict | None:
    """One problem for the scene, or None (by chance, or when no kind of problem fits)."""
    if rng.random() >= P_PROBLEM:
        return None
    kinds = [
        k for k, ok in (("corners", _corners_ok), ("largest", _largest_ok), ("sides", _sides_ok)) if ok(scene)
    ]
    if not kinds:
        return None
    kind = rng.choice(kinds)
    return {"corners": _corners, "largest": _largest, "sides": _sides}[kind](scene, rng)


def _problem(question: str, choices: list[str], answer: str, rng: random.Random, **fields: str) -> dict:
    rng.shuffle(choices)
    return {**BASE, "question": question, "choices": choices, "answer": choices.index(answer), **fields}


def _corners_ok(scene: Scene) -> bool:
    return any(o.shape in CORNERS for o in scene.objects)


def _corners(scene: Scene, rng: random.Random) -> dict:
    present = sorted({o.shape for o in scene.objects if o.shape in CORNERS})
    shape = rng.choice(present)
    n = sum(1 for o in scene.objects if o.shape == shape)
    k = CORNERS[shape]
    total = n * k
    wrong = {total + k, total + 1, total - 1, max(1, total - k), n}
    wrong.discard(total)
    choices = [str(total), *rng.sample(sorted(str(w) for w in wrong), 2)]
    there = f"There is one {shape}" if n == 1 else f"There are {NUMBER_WORDS[n]} {shape}s"
    solution = (
        f"{there} in the picture. A {shape} has {k} corners, so the {shape}s have "
        f"{n} x {k} = {total} corners in all."
        if n > 1
        else f"{there} in the picture. A {shape} has {k} corners."
    )
    return _problem(
        f"How many corners do the {shape}s in the picture have in all?",
        choices,
        str(total),
        rng,
        hint="Count the corners of every " + shape + " in the picture.",
        category="Count corners of shapes",
        skill="Count the corners of polygons",
        lecture=LECTURE_CORNERS,
        solution=solution,
    )


def _largest_ok(scene: Scene) -> bool:
    return _largest_name(scene) is not None


def _largest_name(scene: Scene) -> str | None:
    names = referents(scene)
    ranked = sorted(range(len(scene.objects)), key=lambda i: -scene.objects[i].pixel_area)
    if len(ranked) < 2 or sum(1 for n in names if n) < 2:
        return None
    top, second = scene.objects[ranked[0]], scene.objects[ranked[1]]
    if names[ranked[0]] is None or top.pixel_area < LARGEST_MARGIN * second.pixel_area:
        return None
    return names[ranked[0]]


def _largest(scene: Scene, rng: random.Random) -> dict:
    answer = _largest_name(scene)
    assert answer is not None  # checked by _largest_ok
    others = [n for n in referents(scene) if n and n != answer]
    choices = [answer, *rng.sample(others, min(len(others), 2))]
    return _problem(
        "Which shape in the picture is the largest?",
        choices,
        answer,
        rng,
        hint="",
        category="Compare areas of shapes",
        skill="Compare the sizes of shapes",
        lecture=LECTURE_AREA,
        solution=f"Look at the picture. The {answer} covers the most space, so it is the largest shape.",
    )


def _sides_targets(scene: Scene) -> list[str]:
    """Present polygons whose side count no other present shape shares."""
    present = sorted({o.shape for o in scene.objects})
    counts = [CORNERS[s] for s in present if s in CORNERS]
    return [s for s in present if s in CORNERS and counts.count(CORNERS[s]) == 1]


def _sides_ok(scene: Scene) -> bool:
    return bool(_sides_targets(scene))


def _sides(scene: Scene, rng: random.Random) -> dict:
    shape = rng.choice(_sides_targets(scene))
    k = CORNERS[shape]
    # Distractors: shapes (in the picture or not) that do not have k sides.
    others = sorted(s for s in (*CORNERS, "circle") if s != shape and CORNERS.get(s) != k)
    choices = [shape, *rng.sample(others, 2)]
    return _problem(
        f"Which shape in the picture has {NUMBER_WORDS[k]} sides?",
        choices,
        shape,
        rng,
        hint="The picture shows some flat shapes.",
        category="Identify polygons",
        skill="Identify polygons by their sides",
        lecture=LECTURE_CORNERS,
        solution=f"A {shape} has {k} sides. So the {shape} is the shape with {NUMBER_WORDS[k]} sides.",
    )
