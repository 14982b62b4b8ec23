"""Image loading and LLaVA's pad-to-square preprocessing, shared by training and evaluation."""

from __future__ import annotations

import os

from PIL import Image

# CLIP's image mean (OpenAI), the colour LLaVA pads with (`image_aspect_ratio: pad`).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB, with a clear error naming the file when it cannot be read."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable image ({e})") from e


def expand2square(img: Image.Image, background: tuple[int, int, int] | None = None) -> Image.Image:
    """Pad the short side equally on both sides (offset `(long - short) // 2`), as LLaVA does."""
    if background is None:
        background = tuple(int(c * 255) for c in CLIP_MEAN)  # type: ignore[assignment]
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), background)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out
