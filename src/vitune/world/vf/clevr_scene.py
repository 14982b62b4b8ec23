"""CLEVR-style scenes for the world: sampling, drawing, and CLEVR's program executor.

A scene is 3-6 objects on a grey floor with CLEVR's attributes: shape cube / sphere / cylinder
(drawn in 2-D: a square with a lighter top face, a disc, an upright body with an elliptic top),
CLEVR's eight colours (its RGB values), size large / small (radius 38 / 20 px) and material
rubber (flat fill) / metal (a darker rim, a lighter core and a white specular highlight, so it
looks shiny). Objects never overlap and are at least `MIN_DX` pixels apart horizontally, so "left
of" / "right of" always have one answer. Objects are drawn far-to-near (smaller y first).

`execute` runs a CLEVR program (`[{function, inputs, value_inputs}]`) on a scene's objects, as
CLEVR's own generator does: the world's answers come from it, and tests re-run it on the files.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 480, 320
SHAPES = ("cube", "sphere", "cylinder")
COLORS: dict[str, tuple[int, int, int]] = {  # CLEVR's properties.json
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
SIZES = {"large": 38, "small": 20}
MATERIALS = ("rubber", "metal")
ATTRS = ("size", "color", "material", "shape")
MIN_DX = 14
FLOOR_TOP = 110


def sample_scene(rng: random.Random) -> list[dict[str, Any]]:
    """3-6 objects with CLEVR attributes and pixel coordinates, in drawing order."""
    objects: list[dict[str, Any]] = []
    for _ in range(rng.randint(3, 6)):
        size = rng.choice(tuple(SIZES))
        r = SIZES[size]
        for _try in range(40):
            x, y = rng.uniform(r + 6, WIDTH - r - 6), rng.uniform(FLOOR_TOP + r, HEIGHT - r - 6)
            if all(_apart(x, y, r, o) for o in objects):
                break
        else:
            continue
        depth = round(4 + (HEIGHT - y) / 30, 2)
        objects.append(
            {
                "shape": rng.choice(SHAPES),
                "color": rng.choice(tuple(COLORS)),
                "size": size,
                "material": rng.choice(MATERIALS),
                "rotation": round(rng.uniform(0, 360), 3),
                "3d_coords": [round((x - WIDTH / 2) / 40, 3), round((HEIGHT - y) / 40, 3), round(r / 55, 3)],
                "pixel_coords": [round(x), round(y), depth],
            }
        )
    objects.sort(key=lambda o: o["pixel_coords"][1])
    return objects


def _apart(x: float, y: float, r: float, o: dict[str, Any]) -> bool:
    ox, oy = o["pixel_coords"][:2]
    ro = SIZES[o["size"]]
    return abs(x - ox) >= MIN_DX and (x - ox) ** 2 + (y - oy) ** 2 >= (r + ro + 8) ** 2


def relationships(objects: Sequence[dict[str, Any]]) -> dict[str, list[list[int]]]:
    """CLEVR's `relationships[dir][i]`: the objects that are `dir` of object i (front = nearer)."""
    xs = [o["pixel_coords"][0] for o in objects]
    ys = [o["pixel_coords"][1] for o in objects]
    n = range(len(objects))
    return {
        "left": [[j for j in n if j != i and xs[j] < xs[i]] for i in n],
        "right": [[j for j in n if j != i and xs[j] > xs[i]] for i in n],
        "front": [[j for j in n if j != i and ys[j] > ys[i]] for i in n],
        "behind": [[j for j in n if j != i and ys[j] < ys[i]] for i in n],
    }


def _shade(rgb: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, round(c * f))) for c in rgb)  # type: ignore[return-value]


def _draw_object(draw: ImageDraw.ImageDraw, o: dict[str, Any]) -> None:
    x, y = o["pixel_coords"][:2]
    r = SIZES[o["size"]]
    rgb = COLORS[o["color"]]
    metal = o["material"] == "metal"
    base = _shade(rgb, 0.7) if metal else rgb
    rim = _shade(rgb, 0.45)
    if o["shape"] == "sphere":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=base, outline=rim, width=2)
        core = (x - r * 0.75, y - r * 0.75, x + r * 0.45, y + r * 0.45)
    elif o["shape"] == "cube":
        s = r * 0.85
        top = [(x - s, y - s), (x - s * 0.55, y - s * 1.35), (x + s * 1.45, y - s * 1.35), (x + s, y - s)]
        draw.polygon(top, fill=_shade(base, 1.25), outline=rim)
        draw.rectangle((x - s, y - s, x + s, y + s), fill=base, outline=rim, width=2)
        core = (x - s * 0.8, y - s * 0.8, x + s * 0.4, y + s * 0.4)
    else:  # cylinder: body, a bottom and a (lighter) top ellipse
        s, e = r * 0.8, r * 0.35
        draw.ellipse((x - s, y + s - e, x + s, y + s + e), fill=base, outline=rim, width=2)
        draw.rectangle((x - s, y - s, x + s, y + s), fill=base)
        draw.line((x - s, y - s, x - s, y + s), fill=rim, width=2)
        draw.line((x + s, y - s, x + s, y + s), fill=rim, width=2)
        draw.ellipse((x - s, y - s - e, x + s, y - s + e), fill=_shade(base, 1.25), outline=rim, width=2)
        core = (x - s * 0.8, y - s * 0.6, x + s * 0.2, y + s * 0.6)
    if metal:  # a lighter core and a white specular highlight: visibly shiny
        draw.ellipse(core, fill=_shade(rgb, 1.15))
        hx, hy, hr = core[0] + (core[2] - core[0]) * 0.3, core[1] + (core[3] - core[1]) * 0.3, r * 0.22
        draw.ellipse((hx - hr, hy - hr, hx + hr, hy + hr), fill=(255, 255, 255))


def render(objects: Sequence[dict[str, Any]]) -> bytes:
    """The scene as PNG bytes (CLEVR's images are PNG)."""
    img = Image.new("RGB", (WIDTH, HEIGHT), (128, 128, 132))
    draw = ImageDraw.Draw(img)
    for k in range(HEIGHT):  # the floor: darker far away, lighter near the camera
        shade = 100 + round(60 * k / HEIGHT)
        draw.line((0, k, WIDTH, k), fill=(shade, shade, shade + 4))
    for o in objects:
        _draw_object(draw, o)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


class ProgramError(ValueError):
    """A program that does not apply to the scene (e.g. `unique` on two objects)."""


def execute(program: Sequence[dict[str, Any]], objects: Sequence[dict[str, Any]]) -> str:
    """The answer of a CLEVR program on `objects` (as CLEVR writes answers: "3", "yes", "red")."""
    rels = relationships(objects)
    out: list[Any] = []
    for node in program:
        fn, args = node["function"], [out[j] for j in node["inputs"]]
        value = node["value_inputs"][0] if node["value_inputs"] else None
        out.append(_step(fn, args, value, objects, rels))
    result = out[-1]
    if isinstance(result, bool):
        return "yes" if result else "no"
    return str(result)


def _step(fn: str, args: list[Any], value: str | None, objects: Sequence[dict], rels: dict) -> Any:
    if fn == "scene":
        return list(range(len(objects)))
    if fn.startswith("filter_"):
        return [i for i in args[0] if objects[i][fn[7:]] == value]
    if fn == "unique":
        if len(args[0]) != 1:
            raise ProgramError(f"unique on {len(args[0])} objects")
        return args[0][0]
    if fn == "relate":
        return list(rels[str(value)][args[0]])
    if fn == "count":
        return len(args[0])
    if fn == "exist":
        return bool(args[0])
    if fn.startswith("query_"):
        return objects[args[0]][fn[6:]]
    if fn.startswith("equal_") and fn != "equal_integer":
        return objects[args[0]][fn[6:]] == objects[args[1]][fn[6:]]
    if fn in ("equal_integer", "less_than", "greater_than"):
        a, b = args
        return a == b if fn == "equal_integer" else (a < b if fn == "less_than" else a > b)
    raise ProgramError(f"unknown function {fn!r}")
