"""Rendering a `Scene` to pixels with Pillow, and encoding it to JPEG bytes.

Deterministic: the background noise comes from the scene's own seed, fonts are Pillow's built-in
default font at a fixed size, and the JPEG settings are fixed, so the same scene gives the same bytes.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

from vitune.world.scene import Scene

JPEG_QUALITY = 90


def _background(scene: Scene) -> Image.Image:
    """A light gradient (or solid colour) with optional grey noise, built with C-level Pillow ops."""
    bg = scene.background
    w, h = scene.width, scene.height
    n = h if bg["vertical"] else w
    t = np.linspace(0.0, 1.0, n)[:, None]
    ramp = np.rint(np.array(bg["top"]) * (1 - t) + np.array(bg["bottom"]) * t).astype(np.uint8)
    strip = Image.fromarray(ramp[:, None, :] if bg["vertical"] else ramp[None, :, :], "RGB")
    img = strip.resize((w, h), Image.Resampling.NEAREST)
    if bg["noise"]:
        k = bg["noise"]
        gen = np.random.default_rng(bg["noise_seed"])
        noise = Image.fromarray(gen.integers(0, 2 * k + 1, size=(h, w), dtype=np.uint8), "L")
        # add() clips to 0..255: pixel + noise - k, the same noise on all channels (no colour speckle).
        img = ImageChops.add(img, Image.merge("RGB", (noise, noise, noise)), offset=-k)
    return img


def render(scene: Scene) -> Image.Image:
    img = _background(scene)
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        # A darker rim keeps touching same-coloured objects apart, as real object edges do.
        rim = tuple(int(c * 0.6) for c in obj.rgb)
        draw.polygon(obj.polygon, fill=obj.rgb, outline=rim, width=2)
        if obj.text:
            font = ImageFont.load_default(size=obj.font_size)
            draw.text(obj.text_xy, obj.text, fill=obj.text_rgb, font=font)
    return img


def encode_jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False, subsampling=0)
    return buf.getvalue()
