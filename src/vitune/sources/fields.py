"""Validation of the small values every format shares: ids, numbers, pixel boxes.

These run once per annotation (millions of times on COCO train and Visual Genome), so they are
plain functions returning `(value, reason)` instead of raising, and avoid pydantic on purpose.
"""

from __future__ import annotations

import math
from typing import Any

from vitune.data.records import Box

_NUM = frozenset((int, float))  # exact types: bool (a subclass of int) is not a coordinate


def as_id(value: Any) -> str | None:
    """A record id as a string: a (non-bool) integer or a non-empty string; None when unusable."""
    t = type(value)
    if t is int:
        return str(value)
    if t is str and value.strip():
        return value.strip()
    if t is float and value.is_integer():  # some exporters write 42.0
        return str(int(value))
    return None


def as_number(value: Any) -> float | None:
    """A finite int/float (bool excluded: JSON `true` is not a coordinate); None otherwise."""
    t = type(value)
    if t is int:
        return value
    if t is float and math.isfinite(value):
        return value
    return None


def as_size(value: Any) -> int | None:
    """A positive integral image dimension, or None."""
    n = as_number(value)
    if n is None or n <= 0 or n != int(n):
        return None
    return int(n)


def box_from_xywh(x: Any, y: Any, w: Any, h: Any, width: int, height: int) -> tuple[Box | None, str]:
    """Validate a pixel box; `width`/`height` of 0 mean "image size unknown" (bounds not checked)."""
    # Hot path (once per COCO/VG annotation): exact type tests plus `v - v == 0`, which is False for
    # inf and nan, replace four `as_number` calls.
    if not (
        type(x) in _NUM
        and type(y) in _NUM
        and type(w) in _NUM
        and type(h) in _NUM
        and x - x == 0
        and y - y == 0
        and w - w == 0
        and h - h == 0
    ):
        return None, f"non-numeric box {[x, y, w, h]!r}"
    if w <= 0 or h <= 0:
        return None, f"non-positive box size {w}x{h}"
    box = Box(x, y, w, h)
    if width and height and not box.inside(width, height):
        return None, f"box {box.to_list()} outside the {width}x{height} image"
    return box, ""


def box_from_list(bbox: Any, width: int, height: int) -> tuple[Box | None, str]:
    """A COCO `bbox` `[x, y, w, h]`."""
    if not isinstance(bbox, list) or len(bbox) != 4:
        return None, f"bbox must be a list [x, y, w, h], got {bbox!r}"
    return box_from_xywh(bbox[0], bbox[1], bbox[2], bbox[3], width, height)


def clean_text(value: Any) -> str | None:
    """A non-empty string with surrounding whitespace removed and inner runs collapsed, or None."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text or None
