"""The one image check (`data/images.py`): every unusable image is an ImageError with a short reason,
and sizes are refused from the header, before any pixel is decoded."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from vitune.data.images import ImageError, ImageLimits, check_image, load_rgb, open_image


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(good)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_bytes(b"this is not an image")
    data = good.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "strip.png").write_bytes(_png((1, 20000), "L"))
    (tmp_path / "bomb.png").write_bytes(_png((12000, 12000), "1"))  # 144 MP, a few KB on disk
    return tmp_path


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("good.png", None),
        ("empty.png", "empty image file"),
        ("text.png", "unreadable image"),
        ("truncated.png", "unreadable image"),
        ("strip.png", "aspect ratio"),
        ("bomb.png", "too large"),
        ("missing.png", "unreadable image"),
    ],
)
def test_check_image_reasons(files, name, reason):
    got = check_image(files / name)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


def test_open_image_is_rgb_and_names_the_file(files):
    im = open_image(files / "good.png")
    assert im.mode == "RGB" and im.size == (40, 30) and im.getpixel((0, 0)) == (200, 10, 10)
    with pytest.raises(ImageError) as e:
        load_rgb(files / "text.png")
    assert "text.png" in str(e.value) and isinstance(e.value, ValueError)


def test_limits_are_configurable(files):
    assert check_image(files / "good.png", ImageLimits(max_pixels=100)) is not None
    assert "too small" in check_image(files / "good.png", ImageLimits(min_side=64))
    assert check_image(files / "strip.png", ImageLimits(max_aspect=None, max_pixels=None)) is None


def test_size_refused_before_decoding(files):
    """The size comes from the header: a file that claims 144 MP but holds no pixel data at all is
    refused as too large (decoding it would have failed as truncated instead)."""
    data = (files / "bomb.png").read_bytes()
    header_only = data[: data.index(b"IDAT") + 8]
    assert check_image(header_only) is not None and "too large" in check_image(header_only)
    with pytest.raises(ImageError, match="too large"):
        open_image(data)
    assert check_image(b"") == "empty image data"


def test_the_jpeg_check_at_reduced_scale_still_reads_every_block():
    """`check_image` decodes JPEGs at 1/8 scale: a file cut anywhere or with a damaged middle must
    still be refused, exactly as the full decode refuses it."""
    import numpy as np

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (336, 336, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    assert check_image(data) is None
    for cut in (0.3, 0.6, 0.9, 0.99):
        part = data[: int(len(data) * cut)]
        assert (check_image(part) or "").startswith("unreadable image (OSError: image file is truncated"), cut
        with pytest.raises(ImageError):
            open_image(part)
    bad = bytearray(data)
    bad[len(bad) // 2 : len(bad) // 2 + 200] = b"\xff" * 200
    assert (check_image(bytes(bad)) or "").startswith("unreadable image")
