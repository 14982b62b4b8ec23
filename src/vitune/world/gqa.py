"""GQA-style compositional questions for a scene, with the one answer and the sentence answer.

GQA (Hudson & Manning 2019) asks questions generated from a scene graph; each has a short `answer`,
a `fullAnswer` sentence, a structural/semantic/detailed type and a functional program (`semantic`).
The families here follow GQA's own detailed types and only ask what the scene decides without doubt:

  queryAttr   "What color is the {shape}?"                        query / attr   (shape unique)
  verifyAttr  "Is the {shape} {color}?"                           verify / attr  (yes or no, fair coin)
  chooseAttr  "Is the {shape} {c1} or {c2}?"                      choose / attr
  relS        "What shape is the object to the left of the {x}?"  query / rel    (exactly one such object)
  chooseRel   "Is the {a} to the left or to the right of the {b}?" choose / rel
  sameColor   "Do the {a} and the {b} have the same color?"       compare / attr
  andObj      "Are there both {s1}s and {s2}s in the picture?"    logical / obj

Objects whose colour lies between two hues (`alt_color`) are never asked about by colour: GQA keeps
one answer per question, so the question must have one. A question is a dict without ids; programs
refer to objects by their index in the scene (`writers_extra.py` swaps in the Visual Genome ids).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from vitune.world.facts import clear_relations, referents
from vitune.world.scene import COLORS, SHAPES, Scene

MAX_QUESTIONS = 4
_SIDE = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
_OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _q(
    question: str,
    answer: str,
    full: str,
    structural: str,
    semantic: str,
    detailed: str,
    program: list[tuple[str, list[int], str, int | None]],
) -> dict:
    """One question; `program` steps are (operation, dependencies, argument, object index or None)."""
    return {
        "question": question,
        "answer": answer,
        "fullAnswer": full,
        "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
        "program": program,
    }


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def make_gqa_questions(scene: Scene, rng: random.Random) -> list[dict]:
    """Up to `MAX_QUESTIONS` distinct questions, families visited in a seeded order."""
    fams = _families(scene, rng)
    order = [f for f in sorted(fams) if fams[f]]
    rng.shuffle(order)
    out: list[dict] = []
    seen: set[str] = set()
    # A second round when few families apply, only through families with several candidates (a
    # one-candidate family would mostly repeat itself).
    for fam in order + [f for f in order if len(fams[f]) > 1]:
        if len(out) == MAX_QUESTIONS:
            break
        q = rng.choice(fams[fam])()
        if q["question"] not in seen:
            seen.add(q["question"])
            out.append(q)
    return out


def _families(scene: Scene, rng: random.Random) -> dict[str, list[Callable[[], dict]]]:
    objs = scene.objects
    shapes = [o.shape for o in objs]
    # Objects nameable by their shape alone with one clear colour: attribute questions about them.
    plain = [i for i, o in enumerate(objs) if shapes.count(o.shape) == 1 and o.alt_color is None]
    names = referents(scene)
    named = [i for i, n in enumerate(names) if n]
    fams: dict[str, list[Callable[[], dict]]] = {}

    def query_attr(i: int) -> dict:
        o = objs[i]
        return _q(
            f"What color is the {o.shape}?",
            o.color,
            f"The {o.shape} is {o.color}.",
            "query",
            "attr",
            "queryAttr",
            [("select", [], o.shape, i), ("query", [0], "color", None)],
        )

    def verify_attr(i: int) -> dict:
        o = objs[i]
        color = o.color if rng.random() < 0.5 else rng.choice([c for c in COLORS if c != o.color])
        yes = color == o.color
        full = f"Yes, the {o.shape} is {color}." if yes else f"No, the {o.shape} is {o.color}."
        return _q(
            f"Is the {o.shape} {color}?",
            "yes" if yes else "no",
            full,
            "verify",
            "attr",
            "verifyAttr",
            [("select", [], o.shape, i), ("verify color", [0], color, None)],
        )

    def choose_attr(i: int) -> dict:
        o = objs[i]
        pair = [o.color, rng.choice([c for c in COLORS if c != o.color])]
        rng.shuffle(pair)
        return _q(
            f"Is the {o.shape} {pair[0]} or {pair[1]}?",
            o.color,
            f"The {o.shape} is {o.color}.",
            "choose",
            "attr",
            "chooseAttr",
            [("select", [], o.shape, i), ("choose color", [0], f"{pair[0]}|{pair[1]}", None)],
        )

    fams["queryAttr"] = [lambda i=i: query_attr(i) for i in plain]
    fams["verifyAttr"] = [lambda i=i: verify_attr(i) for i in plain]
    fams["chooseAttr"] = [lambda i=i: choose_attr(i) for i in plain]
    fams["relS"] = [lambda a=a: a for a in _rel_queries(scene, names)]
    fams["chooseRel"] = [
        (lambda i=i, j=j, p=p: _choose_rel(names, i, j, p))
        for i in named
        for j in named
        if i != j
        for p in clear_relations(scene, i, j)
        if p in ("left of", "right of")
    ]
    fams["sameColor"] = [(lambda i=i, j=j: _same_color(scene, i, j)) for i in plain for j in plain if i < j]
    present = sorted(set(shapes))
    if present:
        fams["andObj"] = [lambda: _and_obj(present, rng)]
    return fams


def _rel_queries(scene: Scene, names: list[str | None]) -> list[dict]:
    """relS questions: the reference object is named, and exactly one object is clearly on that side.

    Every other object must be clearly on the opposite side: an object at about the same height
    (no clear relation) could be seen on either side and would make the answer doubtful.
    """
    out = []
    objs = scene.objects
    for ref, ref_name in enumerate(names):
        if not ref_name:
            continue
        others = [k for k in range(len(objs)) if k != ref]
        for pred in _SIDE:
            hits = [k for k in others if pred in clear_relations(scene, k, ref)]
            rest = [k for k in others if k not in hits]
            if len(hits) != 1 or any(_OPPOSITE[pred] not in clear_relations(scene, k, ref) for k in rest):
                continue
            k = hits[0]
            shape = objs[k].shape
            out.append(
                _q(
                    f"What shape is the object {_SIDE[pred]} the {ref_name}?",
                    shape,
                    f"The object {_SIDE[pred]} the {ref_name} is {_article(shape)} {shape}.",
                    "query",
                    "rel",
                    "relS",
                    [
                        ("select", [], ref_name, ref),
                        ("relate", [0], f"object,{pred},s", k),
                        ("query", [1], "name", None),
                    ],
                )
            )
    return out


def _choose_rel(names: list[str | None], i: int, j: int, pred: str) -> dict:
    side = "left" if pred == "left of" else "right"
    return _q(
        f"Is the {names[i]} to the left or to the right of the {names[j]}?",
        side,
        f"The {names[i]} is to the {side} of the {names[j]}.",
        "choose",
        "rel",
        "chooseRel",
        [
            ("select", [], str(names[j]), j),
            ("select", [], str(names[i]), i),
            ("choose rel", [0, 1], "left|right", None),
        ],
    )


def _same_color(scene: Scene, i: int, j: int) -> dict:
    a, b = scene.objects[i], scene.objects[j]
    same = a.color == b.color
    full = (
        f"Yes, both the {a.shape} and the {b.shape} are {a.color}."
        if same
        else f"No, the {a.shape} is {a.color} and the {b.shape} is {b.color}."
    )
    return _q(
        f"Do the {a.shape} and the {b.shape} have the same color?",
        "yes" if same else "no",
        full,
        "compare",
        "attr",
        "sameColor",
        [("select", [], a.shape, i), ("select", [], b.shape, j), ("same color", [0, 1], "", None)],
    )


def _and_obj(present: list[str], rng: random.Random) -> dict:
    s1 = rng.choice(present)
    absent = [s for s in SHAPES if s not in present]
    others = [s for s in present if s != s1]
    # A fair coin between a true and a false conjunction when both are possible.
    s2 = rng.choice(others) if others and (not absent or rng.random() < 0.5) else rng.choice(absent)
    yes = s2 in present
    p1, p2 = s1 + "s", s2 + "s"
    full = f"Yes, there are both {p1} and {p2}." if yes else f"No, there are {p1} but no {p2}."
    return _q(
        f"Are there both {p1} and {p2} in the picture?",
        "yes" if yes else "no",
        full,
        "logical",
        "obj",
        "andObj",
        [
            ("select", [], s1, None),
            ("exist", [0], "?", None),
            ("select", [], s2, None),
            ("exist", [2], "?", None),
            ("and", [1, 3], "", None),
        ],
    )
