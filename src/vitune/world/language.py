"""Captions (five per image, COCO style) and region phrases (Visual Genome style) for a scene.

Captions differ in template, object order and level of detail, the way five COCO annotators differ:
some list everything, some only count, some describe layout, some quote the sign.
"""

from __future__ import annotations

import random
from collections import Counter

from vitune.world.facts import (
    NUMBER_WORDS,
    clear_relations,
    plural,
    position_phrase,
    referents,
)
from vitune.world.scene import Scene, SceneObject


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _num(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def describe(obj: SceneObject, rng: random.Random, *, size: str | None = None, quote: bool = True) -> str:
    """ "a red circle", "a large blue square", "a yellow sign that says "AB"" """
    words = [w for w in (size, obj.color, obj.shape) if w]
    text = _a(" ".join(words))
    if obj.text and quote:
        verb = rng.choice(("that says", "reading", "with the text", "that reads"))
        text += f' {verb} "{obj.text}"'
    return text


def _bg_word(scene: Scene, rng: random.Random) -> str:
    if scene.background["kind"] == "gradient":
        return rng.choice(("softly shaded", "light gradient", "pale"))
    return rng.choice(("plain", "light", "plain white", "pale"))


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _inventory(scene: Scene, rng: random.Random) -> str:
    objs = list(scene.objects)
    rng.shuffle(objs)
    n = len(objs)
    lead = "A single shape" if n == 1 else f"{_cap(_num(n))} shapes"
    return f"{lead} on a {_bg_word(scene, rng)} background: {_join([describe(o, rng) for o in objs])}."


def _shape_counts(scene: Scene, rng: random.Random) -> str:
    counts = Counter(o.shape for o in scene.objects)
    parts = [f"{_num(c)} {plural(s, c)}" for s, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    opener = rng.choice(("There are", "This picture shows", "The image contains"))
    if opener == "There are" and parts[0].startswith("one "):
        opener = "There is"
    return f"{opener} {_join(parts)}."


def _color_counts(scene: Scene, rng: random.Random) -> str:
    counts = Counter(o.color for o in scene.objects)
    parts = [f"{_num(c)} {col} {'object' if c == 1 else 'objects'}" for col, c in counts.most_common()]
    return _cap(f"{_join(parts)} on a {rng.choice(('white', 'light', 'blank'))} canvas.")


def _layout(scene: Scene, rng: random.Random) -> str:
    parts = [f"{describe(o, rng, quote=False)} {position_phrase(scene, o)}" for o in scene.objects]
    rng.shuffle(parts)
    return _cap(_join(parts)) + "."


def _pair(scene: Scene, rng: random.Random) -> str | None:
    # Only objects with a unique name: "a red hexagon is bigger than a red hexagon" says nothing.
    names = referents(scene)
    pairs = []
    for i in range(len(scene.objects)):
        for j in range(len(scene.objects)):
            if i != j and names[i] and names[j]:
                preds = [p for p in clear_relations(scene, i, j) if p != "next to"]
                pairs += [(i, p, j) for p in preds]
    if not pairs:
        return None
    i, p, j = rng.choice(pairs)
    verb = {"left of": "to the left of", "right of": "to the right of"}.get(p, p)
    return f"The {names[i]} is {verb} the {names[j]}."


def _sizes(scene: Scene, rng: random.Random) -> str:
    objs = sorted(scene.objects, key=lambda o: -o.pixel_area)
    if len(objs) == 1:
        return _cap(f"{describe(objs[0], rng, size=scene.size_class(objs[0]))} alone in the picture.")
    big = describe(objs[0], rng, size=scene.size_class(objs[0]))
    rest = [describe(o, rng, size=scene.size_class(o)) for o in objs[1:]]
    return _cap(f"{big} next to {_join(rest)}.")


def _brief(scene: Scene, rng: random.Random) -> str:
    n = len(scene.objects)
    what = rng.choice(("colorful geometric shapes", "simple shapes", "flat colored shapes"))
    if n == 1:
        what = "a single flat colored shape"
    return _cap(f"{what} drawn on a {_bg_word(scene, rng)} background.")


def _sign(scene: Scene, rng: random.Random) -> str | None:
    signs = [o for o in scene.objects if o.text]
    if not signs:
        return None
    others = [o for o in scene.objects if not o.text]
    s = signs[0]
    head = f'{_cap(_a(s.color))} sign with "{s.text}" written on it'
    if others:
        return f"{head}, next to {_join([describe(o, rng) for o in others[:2]])}."
    return head + "."


TEMPLATES = (_inventory, _shape_counts, _color_counts, _layout, _pair, _sizes, _brief, _sign)


def captions(scene: Scene, rng: random.Random, k: int = 5) -> list[str]:
    """`k` distinct captions from distinct templates (always possible: six templates never fail)."""
    order = list(TEMPLATES)
    rng.shuffle(order)
    out: list[str] = []
    for template in order:
        text = template(scene, rng)
        if text and text not in out:
            out.append(text)
        if len(out) == k:
            break
    return out


def region_phrases(scene: Scene, rng: random.Random) -> list[tuple[str, tuple[float, float, float, float]]]:
    """VG-style region descriptions: one or two per object, plus a few pairwise ones over union boxes."""
    out = []
    names = referents(scene)
    for o in scene.objects:
        opts = [
            describe(o, rng, quote=False),
            f"{o.color} {o.shape} {position_phrase(scene, o)}",
            f"the {o.shape} is {o.color}",
            describe(o, rng, size=scene.size_class(o), quote=False),
        ]
        if o.text:
            opts = [f'sign says "{o.text}"', f"{o.color} sign with text {o.text}", *opts[:2]]
        for phrase in rng.sample(opts, rng.choice((1, 2))):
            out.append((phrase, o.box))
    for i in range(len(scene.objects)):
        for j in range(len(scene.objects)):
            preds = clear_relations(scene, i, j) if i != j else []
            preds = [p for p in preds if p in ("left of", "above", "bigger than")]
            if preds and names[i] and names[j] and rng.random() < 0.5:
                p = rng.choice(preds)
                a, b = scene.objects[i].box, scene.objects[j].box
                union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                out.append((f"{names[i]} {p} {names[j]}", union))
    return out
