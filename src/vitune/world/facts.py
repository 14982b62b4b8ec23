"""Facts read off a scene that both language and questions need: referring names, positions, relations.

Keeping them in one place means a caption, a region phrase, a VG relationship and a VQA answer can
never disagree about the same scene.
"""

from __future__ import annotations

from vitune.world.scene import Scene, SceneObject

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

# A horizontal/vertical offset below this fraction of the mean object width is "about the same place":
# such pairs get no VG relationship and split annotators in VQA.
CLEAR_OFFSET = 0.35
# Area ratio above which "bigger than" is obvious.
CLEAR_RATIO = 1.3


def noun(obj: SceneObject) -> str:
    return obj.shape


def plural(shape: str, n: int) -> str:
    return shape if n == 1 else shape + "s"


def name_with_color(obj: SceneObject) -> str:
    return f"{obj.color} {obj.shape}"


def referents(scene: Scene) -> list[str | None]:
    """The shortest unambiguous name of each object ("star", "red star"), or None when there is none.

    An object whose colour is hue-ambiguous, or whose colour name another object could be taken for,
    is only named by its shape: a colour-based name would not be unique to every annotator.
    """
    shapes = [o.shape for o in scene.objects]
    out: list[str | None] = []
    for o in scene.objects:
        if shapes.count(o.shape) == 1:
            out.append(o.shape)
            continue
        same = [p for p in scene.objects if p.shape == o.shape]
        seen_as = {c for p in same if p is not o for c in (p.color, p.alt_color) if c}
        if o.alt_color is None and o.color not in seen_as:
            out.append(name_with_color(o))
        else:
            out.append(None)
    return out


def horizontal(scene: Scene, obj: SceneObject) -> str:
    cx, _ = obj.center
    t = cx / scene.width
    return "on the left" if t < 0.36 else ("on the right" if t > 0.64 else "in the middle")


def vertical(scene: Scene, obj: SceneObject) -> str:
    _, cy = obj.center
    t = cy / scene.height
    return "at the top" if t < 0.36 else ("at the bottom" if t > 0.64 else "")


def position_phrase(scene: Scene, obj: SceneObject) -> str:
    h, v = horizontal(scene, obj), vertical(scene, obj)
    if not v:
        return h
    if h == "in the middle":
        return v
    return f"{v} {h.replace('on the ', '')}"  # "at the top left"


def mean_width(a: SceneObject, b: SceneObject) -> float:
    return ((a.box[2] - a.box[0]) + (b.box[2] - b.box[0])) / 2


def mean_height(a: SceneObject, b: SceneObject) -> float:
    return ((a.box[3] - a.box[1]) + (b.box[3] - b.box[1])) / 2


def clear_relations(scene: Scene, a: int, b: int) -> list[str]:
    """Predicates that clearly hold for subject `a` and object `b` (VG relationship vocabulary)."""
    # Captions, regions and VG relationships all ask for the same pairs: compute each pair once.
    key = ("relations", a, b)
    if key not in scene.cache:
        scene.cache[key] = _clear_relations(scene, a, b)
    return scene.cache[key]


def _clear_relations(scene: Scene, a: int, b: int) -> list[str]:
    oa, ob = scene.objects[a], scene.objects[b]
    (ax, ay), (bx, by) = oa.center, ob.center
    out = []
    if ax - bx < -CLEAR_OFFSET * mean_width(oa, ob):
        out.append("left of")
    elif ax - bx > CLEAR_OFFSET * mean_width(oa, ob):
        out.append("right of")
    if ay - by < -CLEAR_OFFSET * mean_height(oa, ob):
        out.append("above")
    elif ay - by > CLEAR_OFFSET * mean_height(oa, ob):
        out.append("below")
    ratio = oa.pixel_area / max(1, ob.pixel_area)
    if ratio > CLEAR_RATIO:
        out.append("bigger than")
    elif ratio < 1 / CLEAR_RATIO:
        out.append("smaller than")
    gap = max(abs(ax - bx) - mean_width(oa, ob), abs(ay - by) - mean_height(oa, ob))
    if gap < 0.25 * min(scene.width, scene.height) * 0.3:
        out.append("next to")
    return out
