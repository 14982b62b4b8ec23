"""Page assets as data URIs: matplotlib figures (reproducible PNG bytes) and image thumbnails.

Reports and dataset cards are single HTML files that must open anywhere (a browser on a laptop, a
CI artifact, the Hub) without a network or the data folder beside them, so every image is
inlined. Thumbnails come from user data, so they are read only through the project's one image
check (`data.images.open_image`, header checked before decoding) at paths resolved inside their
root (`sources.paths.resolve_image`); a bad image becomes a short reason on the page, not a crash.
"""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from vitune.data.images import ImageError, ImageLimits, expand2square, open_image
from vitune.data.paths import UnsafePathError, resolve_image

THUMB_SIDE = 160  # pixels of the longer side: small enough that a 200-card gallery stays a few MB
JPEG_QUALITY = 80
# A normalized box as the tasks and SVIT's referring QA write it: [x1, y1, x2, y2] in 0..1.
_NUM = r"(?:0|1|0?\.\d+|1\.0+|0\.\d*)"
BOX_RE = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
BOX_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4")


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes without the metadata that names the version or the time."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def normalized_boxes(texts: Sequence[str]) -> list[tuple[float, float, float, float]]:
    """Every well-formed normalized box in `texts`, in order, without repeats."""
    out: list[tuple[float, float, float, float]] = []
    for text in texts:
        for m in BOX_RE.finditer(text):
            x1, y1, x2, y2 = (float(v) for v in m.groups())
            box = (x1, y1, x2, y2)
            if x1 < x2 <= 1.0 and y1 < y2 <= 1.0 and box not in out:
                out.append(box)
    return out


@dataclass(frozen=True)
class Thumb:
    """An inlined thumbnail (`uri`), or why there is none (`error`)."""

    uri: str = ""
    width: int = 0
    height: int = 0
    error: str = ""


def thumbnail(
    image_root: str | os.PathLike | None,
    image: str | bytes | None,
    *,
    boxes: Sequence[tuple[float, float, float, float]] = (),
    pad_square: bool = False,
    side: int = THUMB_SIDE,
) -> Thumb:
    """A small JPEG of `image` (a path under `image_root`, or encoded bytes) with `boxes` drawn.

    `pad_square`: boxes are in the frame of the image padded to a square (SVIT's LLaVA export), so
    the thumbnail is padded the same way before they are drawn.
    """
    if image is None:
        return Thumb(error="no image")
    try:
        if isinstance(image, bytes):
            img = open_image(image, ImageLimits(), source="<embedded image>")
        else:
            if image_root is None:
                return Thumb(error=f"{image}: no image root given")
            img = open_image(resolve_image(image_root, image))
    except (ImageError, UnsafePathError) as e:
        return Thumb(error=str(e))
    if pad_square:
        img = expand2square(img)
    img.thumbnail((side, side), Image.Resampling.BICUBIC)
    if boxes:
        _draw_boxes(img, boxes)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return Thumb(data_uri(buf.getvalue(), "image/jpeg"), img.width, img.height)


def _draw_boxes(img: Image.Image, boxes: Sequence[tuple[float, float, float, float]]) -> None:
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        color = BOX_COLORS[i % len(BOX_COLORS)]
        draw.rectangle((x1 * w, y1 * h, x2 * w - 1, y2 * h - 1), outline=color, width=2)
