"""VQAv2-style questions for a scene, each answered by ten simulated annotators.

Each annotator perceives the scene slightly differently, which is how the real data gets its spread:
a hue-boundary object is named by its neighbouring colour by some, a heavily covered object is missed
when counting by some, near-equal positions and sizes are judged with noise. Annotators also have
spelling habits ("grey" vs "gray", "two" vs "2", upper-case sign text), so the official answer
normalization matters when scoring. Where the truth is clear all ten answers are identical.

Families and their VQAv2 `question_type` / `answer_type`:
  color     "What color is the {shape}?"                  what color is the / other
  shape     "What shape is the {color} object?"           what shape is the / other
  count     "How many {shape}s are there?" / "How many {color} objects are there?"   how many / number
  exist     "Is there a {color} {shape}?"                 is there a / yes/no   (about half yes)
  relation  "Is the {a} to the left of / above the {b}?"  is the / yes/no
  size      "Which is bigger, the {a} or the {b}?"        which is / other
  text      "What does the sign say?"                     what does the / other
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from vitune.world.facts import NUMBER_WORDS, referents
from vitune.world.scene import COLORS, SHAPES, Scene

FAMILIES = ("color", "shape", "count", "exist", "relation", "size", "text")
QUESTION_TYPE = {
    "color": "what color is the",
    "shape": "what shape is the",
    "count": "how many",
    "exist": "is there a",
    "relation": "is the",
    "size": "which is",
    "text": "what does the",
}
ANSWER_TYPE = {"count": "number", "exist": "yes/no", "relation": "yes/no"}

N_ANSWERS = 10
P_ALT_COLOR = 0.35  # chance an annotator names a hue-boundary object by its neighbouring colour
P_MISS_OCCLUDED = 0.2  # chance an annotator misses a >15%-covered object when counting
POS_NOISE = 0.12  # sd of perceived centre offsets, in mean object widths
SIZE_NOISE = 0.1  # sd of perceived log-area


@dataclass
class Annotator:
    """One person's perception of the scene and writing habits."""

    colors: list[str]
    missed: list[bool]
    pos: list[tuple[float, float]]
    log_area_noise: list[float]
    grey: bool
    words_for_numbers: bool
    upper_text: bool


def _annotators(scene: Scene, rng: random.Random) -> list[Annotator]:
    out = []
    for _ in range(N_ANSWERS):
        colors = [
            o.alt_color if o.alt_color and rng.random() < P_ALT_COLOR else o.color for o in scene.objects
        ]
        missed = [o.occlusion > 0.15 and rng.random() < P_MISS_OCCLUDED for o in scene.objects]
        pos = []
        for o in scene.objects:
            cx, cy = o.center
            w, h = o.box[2] - o.box[0], o.box[3] - o.box[1]
            pos.append((cx + rng.gauss(0, POS_NOISE * w), cy + rng.gauss(0, POS_NOISE * h)))
        noise = [rng.gauss(0, SIZE_NOISE) for _ in scene.objects]
        out.append(
            Annotator(
                colors,
                missed,
                pos,
                noise,
                grey=rng.random() < 0.3,
                words_for_numbers=rng.random() < 0.05,
                upper_text=rng.random() < 0.05,
            )
        )
    return out


def _spell(ann: Annotator, family: str, answer: str) -> str:
    if family == "count" and ann.words_for_numbers and int(answer) < len(NUMBER_WORDS):
        return NUMBER_WORDS[int(answer)]
    if ann.grey and answer == "gray":
        return "grey"
    if family == "text" and ann.upper_text:
        return answer.upper()
    return answer


def _record(family: str, question: str, truth: str, perceived: list[str], anns: list[Annotator]) -> dict:
    answers = [_spell(a, family, p) for a, p in zip(anns, perceived, strict=True)]
    counts = Counter(answers)
    # The most common answer; ties go to the ground truth, then to the first written.
    best = max(counts, key=lambda a: (counts[a], a == truth, -answers.index(a)))
    unanimous = len(set(perceived)) == 1
    return {
        "family": family,
        "question": question,
        "question_type": QUESTION_TYPE[family],
        "answer_type": ANSWER_TYPE.get(family, "other"),
        "truth": truth,
        "multiple_choice_answer": best,
        "answers": [
            {
                "answer": a,
                "answer_confidence": "yes" if unanimous or p == truth else "maybe",
                "answer_id": k + 1,
            }
            for k, (a, p) in enumerate(zip(answers, perceived, strict=True))
        ],
    }


def _yn(b: bool) -> str:
    return "yes" if b else "no"


def _candidates(scene: Scene, rng: random.Random, anns: list[Annotator]) -> dict[str, list]:
    """For each family, thunks producing one question record (lazily: only chosen ones consume rng)."""
    objs = scene.objects
    shapes = [o.shape for o in objs]
    colors = [o.color for o in objs]
    names = referents(scene)
    cands: dict[str, list] = {f: [] for f in FAMILIES}

    for i, o in enumerate(objs):
        if shapes.count(o.shape) == 1:
            cands["color"].append(
                lambda i=i, o=o: _record(
                    "color", f"What color is the {o.shape}?", o.color, [a.colors[i] for a in anns], anns
                )
            )
        ambiguous = any(p.alt_color == o.color for p in objs) or o.alt_color
        if colors.count(o.color) == 1 and not ambiguous:
            # A sign's plate is a rectangle: some annotators say so.
            def shape_q(i=i, o=o):
                seen = [("rectangle" if o.shape == "sign" and rng.random() < 0.2 else o.shape) for _ in anns]
                return _record("shape", f"What shape is the {o.color} object?", o.shape, seen, anns)

            cands["shape"].append(shape_q)

    def count_shape():
        # Repeated shapes are asked about more often, or nearly every answer would be "1".
        present = sorted(set(shapes))
        weights = [shapes.count(s) ** 2 for s in present]
        shape = rng.choices(present, weights)[0] if rng.random() < 0.85 else rng.choice(SHAPES)
        truth = str(shapes.count(shape))
        seen = [str(sum(1 for k, s in enumerate(shapes) if s == shape and not a.missed[k])) for a in anns]
        return _record("count", f"How many {shape}s are there?", truth, seen, anns)

    def count_color():
        present = sorted(set(colors))
        weights = [colors.count(c) ** 2 for c in present]
        color = rng.choices(present, weights)[0] if rng.random() < 0.85 else rng.choice(list(COLORS))
        truth = str(colors.count(color))
        seen = [
            str(sum(1 for k in range(len(objs)) if a.colors[k] == color and not a.missed[k])) for a in anns
        ]
        return _record("count", f"How many {color} objects are there?", truth, seen, anns)

    cands["count"] += [count_shape, count_color]

    def exist():
        if rng.random() < 0.5:
            o = rng.choice(objs)
            color, shape = o.color, o.shape
        else:
            pairs = {(o.color, o.shape) for o in objs}
            # Plausible negatives: a colour or a shape that is in the picture, in the wrong combination.
            neg = [
                (c, s) for c in COLORS for s in SHAPES if (c, s) not in pairs and (c in colors or s in shapes)
            ]
            color, shape = rng.choice(sorted(neg))
        truth = _yn((color, shape) in {(o.color, o.shape) for o in objs})
        seen = [_yn(any(a.colors[k] == color and o.shape == shape for k, o in enumerate(objs))) for a in anns]
        article = "an" if color[0] in "aeiou" else "a"
        return _record("exist", f"Is there {article} {color} {shape}?", truth, seen, anns)

    cands["exist"].append(exist)

    named = [i for i, n in enumerate(names) if n]
    if len(named) >= 2:

        def relation():
            i, j = rng.sample(named, 2)
            a, b = objs[i], objs[j]
            if rng.random() < 0.5:
                truth = _yn(a.center[0] < b.center[0])
                seen = [_yn(an.pos[i][0] < an.pos[j][0]) for an in anns]
                q = f"Is the {names[i]} to the left of the {names[j]}?"
            else:
                truth = _yn(a.center[1] < b.center[1])
                seen = [_yn(an.pos[i][1] < an.pos[j][1]) for an in anns]
                q = f"Is the {names[i]} above the {names[j]}?"
            return _record("relation", q, truth, seen, anns)

        def size():
            i, j = rng.sample(named, 2)
            truth = names[i] if objs[i].pixel_area >= objs[j].pixel_area else names[j]
            seen = []
            for an in anns:
                ai = objs[i].pixel_area * (math.exp(an.log_area_noise[i]))
                aj = objs[j].pixel_area * (math.exp(an.log_area_noise[j]))
                seen.append(names[i] if ai >= aj else names[j])
            return _record("size", f"Which is bigger, the {names[i]} or the {names[j]}?", truth, seen, anns)

        cands["relation"].append(relation)
        cands["size"].append(size)

    signs = [o for o in objs if o.text]
    if len(signs) == 1:
        text = signs[0].text.lower()
        cands["text"].append(
            lambda: _record("text", "What does the sign say?", text, [text] * len(anns), anns)
        )
    return cands


def make_questions(scene: Scene, rng: random.Random) -> list[dict]:
    """3-6 distinct questions, one family at a time in a shuffled order so families stay balanced."""
    anns = _annotators(scene, rng)
    cands = _candidates(scene, rng, anns)
    k = rng.randint(3, 6)
    # Families that are rarely possible (text needs exactly one sign) go first when they are possible.
    order = [f for f in FAMILIES if cands[f]]
    rng.shuffle(order)
    order.sort(key=lambda f: f != "text")
    out: list[dict] = []
    seen_q: set[str] = set()
    for _round in range(4):
        for fam in order:
            if len(out) == k:
                return out
            for _try in range(3):
                rec = rng.choice(cands[fam])()
                if rec["question"] not in seen_q:
                    seen_q.add(rec["question"])
                    out.append(rec)
                    break
    return out
