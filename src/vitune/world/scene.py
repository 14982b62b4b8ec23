"""Sampling one scene: canvas, background, objects (shape, colour, box, polygon) with bounded occlusion.

A scene is pure data: `draw.py` turns it into pixels, `language.py` and `questions.py` into text, and
`writers.py` into the public annotation formats. Every random choice comes from the `random.Random`
handed in, so a scene depends only on (seed, image index).

Objects are listed in drawing order: later objects are painted over earlier ones. Placement is by
rejection sampling against full-resolution masks so that (a) every object keeps at least 75% of its
drawn pixels visible, (b) a sign's text is never covered, and (c) every box lies inside the image.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# The COCO categories of the world, in category-id order (id = index + 1).
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond", "sign")
GEOMETRIC = SHAPES[:-1]

# Colour names with a base RGB. Chosen to be far apart in RGB so a 64x64 thumbnail still separates them.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (235, 210, 25),
    "green": (35, 160, 60),
    "blue": (35, 80, 215),
    "purple": (135, 50, 185),
    "black": (25, 25, 25),
    "gray": (125, 125, 125),
}
# Pairs of neighbouring hues: an object drawn between them is genuinely ambiguous for annotators.
HUE_NEIGHBOURS = (
    ("red", "orange"),
    ("orange", "yellow"),
    ("blue", "purple"),
    ("red", "purple"),
    ("yellow", "green"),
    ("black", "gray"),
)

# Sign text avoids O/0 and I/1, which humans cannot tell apart in a sans font: OCR answers stay clear.
SIGN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ2345679"

# Size classes by box area relative to image area (thresholds at roughly the terciles of the sampler).
SMALL_MAX = 0.035
MEDIUM_MAX = 0.07

MAX_OCCLUSION = 0.25
MIN_SIDE_FRAC = 0.28  # of the short image side: objects stay several patches wide at 128x128
MAX_SIDE_FRAC = 0.55


@dataclass
class SceneObject:
    shape: str
    color: str  # the majority colour name
    rgb: tuple[int, int, int]
    polygon: list[tuple[float, float]]  # drawn outline, image pixels
    alt_color: str | None = None  # a neighbouring hue some annotators would name instead
    text: str | None = None  # signs only
    text_xy: tuple[float, float] | None = None  # where draw.py puts the text (top-left anchor)
    text_box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of the rendered glyphs
    font_size: int = 0
    text_rgb: tuple[int, int, int] = (0, 0, 0)
    occlusion: float = 0.0  # fraction of this object's pixels hidden by later objects
    pixel_area: int = 0  # drawn pixels before occlusion

    @cached_property  # the polygon never changes once the object is placed
    def box(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return min(xs), min(ys), max(xs), max(ys)

    @cached_property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def category_id(self) -> int:
        return SHAPES.index(self.shape) + 1


@dataclass
class Scene:
    width: int
    height: int
    background: (
        dict  # {"kind": "solid"|"gradient", "top": rgb, "bottom": rgb, "noise": int, "vertical": bool}
    )
    objects: list[SceneObject] = field(default_factory=list)
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # derived facts, see facts.py

    def size_class(self, obj: SceneObject) -> str:
        x0, y0, x1, y1 = obj.box
        rel = (x1 - x0) * (y1 - y0) / (self.width * self.height)
        if rel < SMALL_MAX:
            return "small"
        return "medium" if rel < MEDIUM_MAX else "large"


def polygon_area(poly: list[tuple[float, float]]) -> float:
    """Shoelace area: what COCO's `area` means for a polygon segmentation."""
    s = 0.0
    for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1], strict=True):
        s += x0 * y1 - x1 * y0
    return abs(s) / 2


def _regular(cx: float, cy: float, r: float, n: int, rot: float) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(rot + 2 * math.pi * k / n), cy + r * math.sin(rot + 2 * math.pi * k / n))
        for k in range(n)
    ]


def shape_polygon(
    shape: str, cx: float, cy: float, side: float, rng: random.Random
) -> list[tuple[float, float]]:
    """The outline of a geometric shape whose bounding box is about `side` wide, centred on (cx, cy)."""
    r = side / 2
    if shape == "circle":
        return _regular(cx, cy, r, 48, 0.0)
    if shape == "square":
        # Small tilt only: at 45 degrees a square would read as a diamond.
        return _regular(cx, cy, r, 4, math.pi / 4 + math.radians(rng.uniform(-10, 10)))
    if shape == "triangle":
        return _regular(cx, cy + r * 0.15, r * 1.05, 3, -math.pi / 2 + math.radians(rng.uniform(-12, 12)))
    if shape == "star":
        rot = -math.pi / 2 + math.radians(rng.uniform(-20, 20))
        outer, inner = _regular(cx, cy, r, 5, rot), _regular(cx, cy, r * 0.45, 5, rot + math.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if shape == "hexagon":
        return _regular(cx, cy, r, 6, math.radians(rng.uniform(0, 60)))
    if shape == "diamond":
        # A rhombus taller than wide, so it never looks like a tilted square.
        hw = r * 0.62
        return [(cx, cy - r), (cx + hw, cy), (cx, cy + r), (cx - hw, cy)]
    raise ValueError(shape)


def _mask(poly: list[tuple[float, float]], w: int, h: int) -> np.ndarray:
    img = Image.new("1", (w, h), 0)
    ImageDraw.Draw(img).polygon(poly, fill=1)
    return np.asarray(img, dtype=bool)


def object_mask(obj: SceneObject, w: int, h: int) -> np.ndarray:
    """The pixels an object paints (before anything is drawn over it)."""
    return _mask(obj.polygon, w, h)


def _pick_color(rng: random.Random, name: str | None = None) -> tuple[str, str | None, tuple[int, int, int]]:
    """A colour name, an optional ambiguous neighbour, and the jittered RGB actually drawn."""
    if name is None and rng.random() < 0.07:
        a, b = rng.choice(HUE_NEIGHBOURS)
        if rng.random() < 0.5:
            a, b = b, a
        t = rng.uniform(0.3, 0.45)  # closer to `a`, which stays the majority name
        rgb = tuple(round(ca * (1 - t) + cb * t) for ca, cb in zip(COLORS[a], COLORS[b], strict=True))
        return a, b, rgb  # type: ignore[return-value]
    name = name or rng.choice(list(COLORS))
    if name in ("black", "gray"):
        # Neutral colours get a brightness jitter only: a per-channel one would tint them.
        d = rng.randint(-12, 12)
        rgb = tuple(max(0, min(255, c + d)) for c in COLORS[name])
    else:
        rgb = tuple(max(0, min(255, c + rng.randint(-12, 12))) for c in COLORS[name])
    return name, None, rgb  # type: ignore[return-value]


def _background(rng: random.Random) -> dict:
    def light() -> tuple[int, int, int]:
        base = rng.randint(222, 250)
        return tuple(max(0, min(255, base + rng.randint(-10, 5))) for _ in range(3))  # type: ignore[return-value]

    top = light()
    kind = "gradient" if rng.random() < 0.5 else "solid"
    bottom = light() if kind == "gradient" else top
    return {
        "kind": kind,
        "top": top,
        "bottom": bottom,
        "noise": rng.choice((0, 0, 3, 5)),
        "vertical": rng.random() < 0.5,
        "noise_seed": rng.getrandbits(32),
    }


def _sample_count(rng: random.Random) -> int:
    # Mostly 2-4 objects, occasionally a lone object or a crowded scene.
    return rng.choices((1, 2, 3, 4, 5), weights=(15, 35, 30, 15, 5))[0]


def _make_sign(rng: random.Random, w: int, h: int, short: int) -> SceneObject | None:
    color, alt, rgb = _pick_color(rng)
    text = "".join(rng.choice(SIGN_CHARS) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
    plate_h = rng.uniform(MIN_SIDE_FRAC + 0.01, 0.25) * short
    font_size = max(10, int(plate_h * 0.6))
    font = ImageFont.load_default(size=font_size)
    gx0, gy0, gx1, gy1 = font.getbbox(text)
    pad = plate_h * 0.25
    plate_w = max(gx1 - gx0 + 2 * pad, plate_h * 1.1)
    if plate_w > w - 4:
        return None
    x0 = rng.uniform(1, w - plate_w - 1)
    y0 = rng.uniform(1, h - plate_h - 1)
    tx = x0 + (plate_w - (gx1 - gx0)) / 2 - gx0
    ty = y0 + (plate_h - (gy1 - gy0)) / 2 - gy0
    # Dark plates get white text, light ones black: the text contrast must survive JPEG.
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    text_rgb = (255, 255, 255) if lum < 150 else (0, 0, 0)
    poly = [(x0, y0), (x0 + plate_w, y0), (x0 + plate_w, y0 + plate_h), (x0, y0 + plate_h)]
    text_box = (
        math.floor(tx + gx0) - 1,
        math.floor(ty + gy0) - 1,
        math.ceil(tx + gx1) + 1,
        math.ceil(ty + gy1) + 1,
    )
    return SceneObject(
        "sign",
        color,
        rgb,
        poly,
        alt_color=alt,
        text=text,
        text_xy=(tx, ty),
        text_box=text_box,
        font_size=font_size,
        text_rgb=text_rgb,
    )


def _make_shape(rng: random.Random, w: int, h: int, short: int, placed: list[SceneObject]) -> SceneObject:
    # Repeating a shape or a colour already in the picture makes counting non-trivial and forces
    # referring expressions to combine colour and shape.
    present = sorted({o.shape for o in placed if o.shape != "sign"})
    shape = rng.choice(present) if present and rng.random() < 0.35 else rng.choice(GEOMETRIC)
    color, alt, rgb = _pick_color(rng)
    if placed and alt is None and rng.random() < 0.2:
        color, alt, rgb = _pick_color(rng, rng.choice(placed).color)
    side = rng.uniform(MIN_SIDE_FRAC, MAX_SIDE_FRAC) * short
    if shape == "circle":
        side = max(side, MIN_SIDE_FRAC * short + 2)
    m = side / 2 + 2
    cx, cy = rng.uniform(m, w - m), rng.uniform(m, h - m)
    return SceneObject(shape, color, rgb, shape_polygon(shape, cx, cy, side, rng), alt_color=alt)


def _inside(obj: SceneObject, w: int, h: int, short: int) -> bool:
    x0, y0, x1, y1 = obj.box
    big_enough = min(x1 - x0, y1 - y0) >= MIN_SIDE_FRAC * short * 0.9
    return x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h and big_enough


def sample_scene(rng: random.Random, max_tries: int = 25) -> Scene:
    """Sample a scene; objects that cannot be placed within the occlusion bound are dropped."""
    w = rng.randrange(320, 449, 16)
    h = rng.randrange(240, 321, 16)
    short = min(w, h)
    scene = Scene(w, h, _background(rng))
    n = _sample_count(rng)
    # About half the images hold exactly one sign so that the text questions are as common as others.
    sign_slot = rng.randrange(n) if rng.random() < 0.55 else -1
    areas: list[int] = []  # drawn pixels of each placed object
    visible: list[np.ndarray] = []  # pixels of each placed object still showing
    for k in range(n):
        for _ in range(max_tries):
            obj = (
                _make_sign(rng, w, h, short)
                if k == sign_slot
                else _make_shape(rng, w, h, short, scene.objects)
            )
            if obj is None or not _inside(obj, w, h, short):
                continue
            m = _mask(obj.polygon, w, h)
            if _fits(scene.objects, areas, visible, m):
                break
        else:
            continue
        for i, prev in enumerate(scene.objects):
            visible[i] &= ~m
            prev.occlusion = 1.0 - int(visible[i].sum()) / max(1, areas[i])
        obj.pixel_area = int(m.sum())
        scene.objects.append(obj)
        areas.append(obj.pixel_area)
        visible.append(m.copy())
    return scene


def _fits(objects: list[SceneObject], areas: list[int], visible: list[np.ndarray], m: np.ndarray) -> bool:
    """Would drawing mask `m` on top keep every earlier object within the occlusion bound?"""
    for prev, area, vis in zip(objects, areas, visible, strict=True):
        if prev.text_box is not None:
            x0, y0, x1, y1 = prev.text_box
            if m[max(0, y0) : y1, max(0, x0) : x1].any():
                return False
        still_visible = int(np.count_nonzero(vis & ~m))
        if area - still_visible > MAX_OCCLUSION * area:
            return False
    return True


def occlusions(scene: Scene) -> list[float]:
    """Recompute each object's hidden pixel fraction from the polygons alone (used by tests)."""
    masks = [object_mask(o, scene.width, scene.height) for o in scene.objects]
    out = []
    for i, m in enumerate(masks):
        later = np.zeros_like(m)
        for lm in masks[i + 1 :]:
            later |= lm
        out.append(float((m & later).sum() / max(1, m.sum())))
    return out
