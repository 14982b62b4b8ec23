"""Image loading, the one image check, and LLaVA's pad-to-square preprocessing.

Every command that opens an image from user data (build, curate, train, eval, serve) goes through
`open_image` / `check_image`: the header is read first and the size checked against a pixel limit
and an aspect-ratio limit *before* any pixel is decoded, so a 234-byte PNG that claims 1 x 20000 or a
144-megapixel "bomb" costs nothing. Every failure is an `ImageError` (a ValueError) with a short
reason, never Pillow's `DecompressionBombError` or a bare OSError, so callers can ledger it.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

# CLIP's image mean (OpenAI), the colour LLaVA pads with (`image_aspect_ratio: pad`).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# 64 megapixels: far above any training resolution (LLaVA-OneVision's anyres tops out near 10 MP) and
# about 192 MB of RGB, so one hostile image cannot exhaust memory. Configurable per call.
DEFAULT_MAX_PIXELS = 64_000_000
# Longest side over shortest side; a 1 x 20000 strip is no picture and pads to a 20000^2 square.
DEFAULT_MAX_ASPECT = 50.0


# What Pillow raises for a file it cannot decode: its decoders raise all of these, and an image over
# its pixel limit raises DecompressionBombError, which is none of the others. Code that opens images
# itself (hashing, not through `open_image`) catches these to ledger one bad image, not crash.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class ImageError(ValueError):
    """An image that cannot be used: unreadable, empty, too large or too elongated. `reason` is short
    and stable (for ledgers and counts); the message also names the file."""

    def __init__(self, source: object, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class ImageLimits:
    """What an acceptable image is; `None` disables a limit."""

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_aspect: float | None = DEFAULT_MAX_ASPECT
    min_side: int = 1
    # Longest side: LLaVA pads to a square of it, so it bounds the padded copy (`vitune serve`).
    max_side: int | None = None


def _check_size(size: tuple[int, int], limits: ImageLimits, source: object) -> None:
    w, h = size
    if w < limits.min_side or h < limits.min_side:
        raise ImageError(source, f"image too small ({w}x{h})")
    if limits.max_side is not None and max(w, h) > limits.max_side:
        raise ImageError(source, f"image too large ({w}x{h}: a side > {limits.max_side})")
    if limits.max_pixels is not None and w * h > limits.max_pixels:
        raise ImageError(source, f"image too large ({w}x{h} = {w * h} pixels > {limits.max_pixels})")
    if limits.max_aspect is not None and max(w, h) / min(w, h) > limits.max_aspect:
        raise ImageError(
            source, f"image aspect ratio {max(w, h) / min(w, h):.0f}:1 > {limits.max_aspect:g}:1"
        )


def open_image(
    src: str | os.PathLike | bytes, limits: ImageLimits = ImageLimits(), *, source: object = None
) -> Image.Image:
    """Decode an image file (a path or its bytes) to RGB after checking its header against `limits`.

    Raises `ImageError` for anything unusable: missing or empty file, not an image, truncated or
    corrupt data, a size over the limits (checked before decoding), a decompression bomb.
    """
    img = _decode(src, limits, source, check_only=False)
    assert img is not None
    return img


def check_image(src: str | os.PathLike | bytes, limits: ImageLimits = ImageLimits()) -> str | None:
    """Why `src` is not a usable image (the `ImageError` reason), or None when it decodes fine.

    The whole file is decoded (truncated or corrupt data fails as in `open_image`), but a JPEG at
    1/8 scale: libjpeg still reads every entropy-coded block and only skips most of the inverse
    DCT, which makes the check of a data set's images several times cheaper.
    """
    try:
        _decode(src, limits, None, check_only=True)
    except ImageError as e:
        return e.reason
    return None


def _decode(
    src: str | os.PathLike | bytes, limits: ImageLimits, source: object, *, check_only: bool
) -> Image.Image | None:
    """The one decode behind `open_image` (RGB) and `check_image` (decoded and dropped)."""
    name = source if source is not None else ("<bytes>" if isinstance(src, bytes) else src)
    if isinstance(src, bytes):
        if not src:
            raise ImageError(name, "empty image data")
        fh: object = io.BytesIO(src)
    else:
        try:
            if os.path.getsize(src) == 0:
                raise ImageError(name, "empty image file")
        except OSError as e:
            raise ImageError(name, f"unreadable image ({e.strerror or e})") from e
        fh = src
    try:
        with warnings.catch_warnings():
            # Our own limit is the check; Pillow's bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as im:  # reads the header only
                _check_size(im.size, limits, name)
                if not check_only:
                    return im.convert("RGB")
                im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))  # JPEG only
                im.load()
                return None
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(name, f"decompression bomb ({e})") from e
    except DECODE_ERRORS as e:
        raise ImageError(name, f"unreadable image ({type(e).__name__}: {e})") from e
    except MemoryError as e:
        raise ImageError(name, "image too large to decode") from e


def _check_one(args: tuple[str, ImageLimits]) -> str | None:
    return check_image(*args)


def check_many(
    paths: Sequence[str | os.PathLike], limits: ImageLimits = ImageLimits(), *, workers: int = 1
) -> list[str | None]:
    """`check_image` of every path, in order; on a process pool when `workers` > 1 (decoding is
    CPU-bound). The reasons are short strings, so memory stays one entry per path."""
    jobs = [(str(p), limits) for p in paths]
    if workers <= 1 or len(jobs) < 64:
        return [_check_one(j) for j in jobs]
    import multiprocessing as mp

    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(workers) as pool:
        return list(pool.imap(_check_one, jobs, chunksize=max(1, len(jobs) // (workers * 8))))


def load_rgb(path: str | os.PathLike, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Open an image as RGB through the one image check; `ImageError` (a ValueError) names the file."""
    return open_image(path, limits)


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
