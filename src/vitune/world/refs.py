"""RefCOCO-style referring expressions: short phrases that pick out exactly one object of a scene.

An expression is kept only when no other object of the scene fits it (checked here against the
scene, not assumed): "circle" needs the only circle, "red circle" the only circle that anyone
would call red, "circle on the left" the only circle with that position phrase, "large circle" the
only large one. Objects with no unique expression get no ref, as in RefCOCO, whose annotators
were asked for an expression that singles the object out.
"""

from __future__ import annotations

import random

from vitune.world.facts import position_phrase
from vitune.world.scene import Scene

MAX_SENTENCES = 3


def expressions(scene: Scene, k: int) -> list[str]:
    """Every unique expression for object `k` (deterministic order)."""
    objs = scene.objects
    o = objs[k]
    same = [p for i, p in enumerate(objs) if i != k and p.shape == o.shape]
    out = []
    if not same:
        out.append(o.shape)
    # A hue-boundary object, or one whose colour another same-shape object could be called, has no
    # colour name everybody would agree on.
    colors_of_same = {c for p in same for c in (p.color, p.alt_color) if c}
    if o.alt_color is None and o.color not in colors_of_same:
        out.append(f"{o.color} {o.shape}")
    pos = position_phrase(scene, o)
    if all(position_phrase(scene, p) != pos for p in same):
        out.append(f"{o.shape} {pos}")
    size = scene.size_class(o)
    if same and all(scene.size_class(p) != size for p in same):
        out.append(f"{size} {o.shape}")
    return out


def make_refs(scene: Scene, rng: random.Random) -> list[dict]:
    """`[{"object": index, "sentences": [str]}]`: 1-3 expressions for each object that has any."""
    refs = []
    for k in range(len(scene.objects)):
        exprs = expressions(scene, k)
        if exprs:
            n = min(len(exprs), rng.randint(1, MAX_SENTENCES))
            refs.append({"object": k, "sentences": rng.sample(exprs, n)})
    return refs
