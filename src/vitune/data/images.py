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


def pad_color(image_processor: object) -> tuple[int, int, int]:
    """The colour LLaVA pads with: the processor's own normalization mean, so padding maps to 0."""
    mean = getattr(image_processor, "image_mean", None) or CLIP_MEAN
    return tuple(int(c * 255) for c in mean)  # LLaVA truncates: int(x * 255)  # type: ignore[return-value]


def pixel_statistics(paths: list[str | os.PathLike]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (in [0, 1]) over the pixels of `paths`.

    A vision tower trained from scratch learns far faster when its inputs are centred on the data's
    own statistics: with CLIP's constants a light background becomes a large constant vector that
    drowns the objects in every patch embedding.
    """
    import numpy as np

    total = np.zeros(3)
    total_sq = np.zeros(3)
    n = 0
    for path in paths:
        a = np.asarray(load_rgb(path), dtype=np.float64) / 255.0
        flat = a.reshape(-1, 3)
        total += flat.sum(0)
        total_sq += (flat**2).sum(0)
        n += flat.shape[0]
    if n == 0:
        return CLIP_MEAN, CLIP_STD
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 1e-6))
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


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
