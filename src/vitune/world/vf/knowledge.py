"""A small fixed table of outside knowledge about the world's shapes and colours, and questions from it.

The world's copies of A-OKVQA and OK-VQA ask knowledge questions that need both the image and a
fact: the image says which shape or colour the referred object has, the table says what follows
(a hexagon has six sides, a yield sign is a triangle, a red traffic light means stop). An object is
referred to by what does not give the answer away: a shape question names the object's colour
("the blue shape", only when no other object has that colour), a colour question names its shape
("the circle", only when it is the only circle). Objects drawn between two hues are never asked
about (annotators would disagree on their colour).

Every `Fact` carries what both formats need: the answer and the other answers annotators give,
wrong choices that are certainly wrong, three rationales that cite what is seen plus the fact,
and the OK-VQA knowledge category code (`sources/okvqa.py`). Nothing here is random except
`knowledge_question`, which draws only from the RNG it is given.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vitune.world.scene import Scene, SceneObject


@dataclass(frozen=True, slots=True)
class Fact:
    question: str  # with {ref}
    answer: str
    alternates: tuple[str, ...]  # other correct answers some annotators write
    distractors: tuple[str, ...]  # certainly wrong answers (multiple-choice options)
    rationales: tuple[str, str, str]  # with {ref}, {Ref}, {shape}, {color}
    code: str  # OK-VQA question_type (knowledge category code)


def _sides(n: str, word: str) -> Fact:
    others = tuple(x for x in ("3", "4", "5", "6", "8") if x != n)
    return Fact(
        "How many sides does {ref} have?",
        n,
        (word,),
        others,
        (
            f"{{Ref}} is a {{shape}}, and a {{shape}} has {word} sides.",
            f"{{Ref}} is drawn as a {{shape}}; every {{shape}} is bounded by {word} straight sides.",
            f"The shape is a {{shape}}, which by definition has {word} edges.",
        ),
        "nine",
    )


# Facts about an object's shape (it is referred to by its colour).
SHAPE_FACTS: dict[str, tuple[Fact, ...]] = {
    "triangle": (
        _sides("3", "three"),
        Fact(
            "Which road sign has the same shape as {ref}?",
            "yield sign",
            ("yield", "give way sign"),
            ("stop sign", "speed limit sign", "one way sign"),
            (
                "{Ref} is a triangle, and the yield sign is the road sign shaped like a triangle.",
                "Yield signs are triangles, the same shape as {ref}.",
                "The {color} shape has three corners; a triangular road sign tells drivers to yield.",
            ),
            "one",
        ),
    ),
    "square": (
        _sides("4", "four"),
        Fact(
            "Which board game is played on a board made of squares like {ref}?",
            "chess",
            ("checkers", "chess board"),
            ("darts", "bowling", "table tennis"),
            (
                "{Ref} is a square, and a chess board is a grid of squares.",
                "Chess is played on a board of 64 squares, the shape of {ref}.",
                "The {color} shape has four equal sides, like the squares of a chess board.",
            ),
            "four",
        ),
    ),
    "hexagon": (
        _sides("6", "six"),
        Fact(
            "Which insect builds its honeycomb from cells shaped like {ref}?",
            "bee",
            ("bees", "honeybee"),
            ("ant", "butterfly", "ladybug"),
            (
                "{Ref} is a hexagon, and bees build their honeycomb from hexagonal cells.",
                "Honeycomb cells have six sides like {ref}, and bees make them.",
                "The {color} shape is six-sided, the shape of the wax cells that bees build.",
            ),
            "eight",
        ),
    ),
    "diamond": (
        _sides("4", "four"),
        Fact(
            "Which playing card suit has a symbol shaped like {ref}?",
            "diamonds",
            ("diamond",),
            ("hearts", "spades", "clubs"),
            (
                "{Ref} is a diamond, and the diamonds suit of playing cards uses that symbol.",
                "The card suit named diamonds is marked with the shape of {ref}.",
                "The {color} shape is a rhombus, the symbol of the diamonds suit in a deck of cards.",
            ),
            "four",
        ),
    ),
    "star": (
        Fact(
            "How many points does {ref} have?",
            "5",
            ("five",),
            ("3", "4", "6"),
            (
                "{Ref} is a star drawn with five points.",
                "Counting the tips of {ref} gives five points, as on a classic star.",
                "The {color} shape is a five-pointed star.",
            ),
            "nine",
        ),
        Fact(
            "Which sea animal has the same shape as {ref}?",
            "starfish",
            ("sea star", "star fish"),
            ("crab", "jellyfish", "octopus"),
            (
                "{Ref} is a star, and a starfish is the sea animal shaped like a star.",
                "Starfish have five arms arranged like the points of {ref}.",
                "The {color} shape is a star; the animal named for that shape is the starfish.",
            ),
            "eight",
        ),
    ),
    "circle": (
        Fact(
            "How many corners does {ref} have?",
            "0",
            ("none", "zero"),
            ("1", "2", "4"),
            (
                "{Ref} is a circle, and a circle is round with no corners.",
                "A circle like {ref} has a smooth curved edge and therefore no corners.",
                "The {color} shape is round, so it has zero corners.",
            ),
            "nine",
        ),
        Fact(
            "Which part of a bicycle has the shape of {ref}?",
            "wheel",
            ("wheels", "tire"),
            ("seat", "handlebar", "chain"),
            (
                "{Ref} is a circle, and a bicycle's wheels are circles.",
                "Bicycle wheels are round like {ref}.",
                "The {color} shape is a circle, the shape of the wheels a bicycle rolls on.",
            ),
            "one",
        ),
    ),
}

_FRUIT = {
    "red": ("strawberry", ("cherry", "strawberries")),
    "orange": ("orange", ("tangerine", "oranges")),
    "yellow": ("banana", ("lemon", "bananas")),
    "green": ("lime", ("kiwi", "limes")),
    "purple": ("grape", ("grapes", "plum")),
    "blue": ("blueberry", ("blueberries",)),
}
# colour -> (answer, alternates, distractors)
_TRAFFIC = {
    "red": ("stop", ("stop the car",), ("go", "speed up", "honk the horn")),
    "green": ("go", ("drive", "keep going"), ("stop", "park the car", "honk the horn")),
    "yellow": ("slow down", ("caution", "prepare to stop"), ("speed up", "park the car", "honk the horn")),
}
_WEATHER = {
    "gray": ("rain", ("rainy", "storm"), ("sunny", "clear skies", "a heat wave")),
    "blue": ("sunny", ("clear", "sun"), ("rain", "snow", "a thunderstorm")),
}


def _color_facts(color: str) -> tuple[Fact, ...]:
    out = []
    if color in _FRUIT:
        answer, alts = _FRUIT[color]
        out.append(
            Fact(
                "Name a fruit that usually has the colour of {ref}.",
                answer,
                alts,
                tuple(f for c, (f, _) in _FRUIT.items() if c != color)[:3],
                (
                    f"{{Ref}} is {color}, and a ripe {answer} is {color}.",
                    f"The colour of {{ref}} is {color}, the usual colour of a {answer}.",
                    f"A {answer} is typically {color}, just like {{ref}}.",
                ),
                "five",
            )
        )
    if color in _TRAFFIC:
        answer, alts, wrong = _TRAFFIC[color]
        out.append(
            Fact(
                "If a traffic light lit up in the colour of {ref}, what should a driver do?",
                answer,
                alts,
                wrong,
                (
                    f"{{Ref}} is {color}, and a {color} traffic light tells drivers to {answer}.",
                    f"A {color} traffic light means {answer}; {{ref}} is {color}.",
                    f"The colour of {{ref}} is {color}, which on a traffic light means {answer}.",
                ),
                "one",
            )
        )
    if color in _WEATHER:
        answer, alts, wrong = _WEATHER[color]
        out.append(
            Fact(
                "What weather does a sky the colour of {ref} usually mean?",
                answer,
                alts,
                wrong,
                (
                    f"{{Ref}} is {color}, and a {color} sky usually means {answer} weather.",
                    f"A {color} sky, the colour of {{ref}}, usually comes with {answer} weather.",
                    f"The colour of {{ref}} is {color}; skies of that colour usually mean {answer}.",
                ),
                "ten",
            )
        )
    return tuple(out)


COLOR_FACTS: dict[str, tuple[Fact, ...]] = {
    c: f for c in ("red", "orange", "yellow", "green", "blue", "purple", "gray") if (f := _color_facts(c))
}


@dataclass(frozen=True, slots=True)
class Asked:
    """A fact asked about one object: the texts filled in."""

    fact: Fact
    question: str
    rationales: list[str]
    obj: SceneObject


def _candidates(scene: Scene) -> dict[str, list[tuple[Fact, str, SceneObject]]]:
    """(fact, how the object is referred to, object) for every askable fact, by kind (shape, colour)."""
    clear = [o for o in scene.objects if o.alt_color is None]
    colors = [o.color for o in scene.objects]
    shapes = [o.shape for o in scene.objects]
    out: dict[str, list[tuple[Fact, str, SceneObject]]] = {"shape": [], "color": []}
    for o in clear:
        if colors.count(o.color) == 1:
            out["shape"] += [(f, f"the {o.color} shape", o) for f in SHAPE_FACTS.get(o.shape, ())]
        if shapes.count(o.shape) == 1:
            out["color"] += [(f, f"the {o.shape}", o) for f in COLOR_FACTS.get(o.color, ())]
    return out


def knowledge_question(scene: Scene, rng: random.Random) -> Asked | None:
    """One knowledge question about the scene drawn with `rng`, or None when nothing is askable.

    The kind (a shape fact or a colour fact) is drawn first, so colour facts, of which an object
    has up to three, do not crowd out shape facts."""
    kinds = [k for k, cands in _candidates(scene).items() if cands]
    if not kinds:
        return None
    fact, ref, obj = rng.choice(_candidates(scene)[rng.choice(kinds)])
    fill = {"ref": ref, "Ref": ref[0].upper() + ref[1:], "shape": obj.shape, "color": obj.color}
    return Asked(fact, fact.question.format(**fill), [r.format(**fill) for r in fact.rationales], obj)


def annotator_answers(fact: Fact, rng: random.Random, n: int = 10) -> list[str]:
    """`n` answers as annotators write them: the main answer at least 6 times, else alternates."""
    main = rng.randint(6, n) if fact.alternates else n
    answers = [fact.answer] * main + [rng.choice(fact.alternates) for _ in range(n - main)]
    rng.shuffle(answers)
    return answers
