"""The one image check (`vitune.data.images.check_many`) on a build's images: serial vs parallel.

Writes `--images` JPEGs of `--size` (default 640x480, a COCO-sized photo of noise and shapes) plus a
few bad files (empty, corrupt, truncated, a header-only bomb), then checks them all once per worker
count. Printed: seconds, images/s and ms per image per run, the ratio of each run to the first (the
baseline), and that every run gives the same reasons (the bad files, and nothing else).

    .venv/bin/python benchmarks/image_check.py [--images 400] [--workers 1 2] [--size 640 480]
"""

from __future__ import annotations

import argparse
import random
import struct
import tempfile
import time
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

from vitune.data.images import check_many


def _bomb(path: Path) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def write_images(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    rng = random.Random(0)
    paths = []
    for i in range(n):
        im = Image.effect_noise(size, 40).convert("RGB")
        d = ImageDraw.Draw(im)
        for _ in range(4):
            x, y = rng.randrange(size[0] - 60), rng.randrange(size[1] - 60)
            d.rectangle((x, y, x + 60, y + 60), fill=tuple(rng.randrange(256) for _ in range(3)))
        p = folder / f"{i:06d}.jpg"
        im.save(p, quality=85)
        paths.append(p)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "corrupt.jpg").write_bytes(b"not a jpeg")
    good = paths[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    _bomb(folder / "bomb.png")
    return paths + [folder / n for n in ("empty.jpg", "corrupt.jpg", "truncated.jpg", "bomb.png")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--size", type=int, nargs=2, default=[640, 480])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), args.images, tuple(args.size))
        runs = []
        for w in args.workers:
            t0 = time.perf_counter()
            reasons = check_many(paths, workers=w)
            dt = time.perf_counter() - t0
            bad = sorted(p.name for p, r in zip(paths, reasons, strict=True) if r)
            runs.append((w, dt, reasons))
            print(f"workers={w}: {dt:.2f} s, {len(paths) / dt:.0f} images/s, {1000 * dt / len(paths):.2f} ms/image;"
                  f" refused: {bad}")  # fmt: skip
        base = runs[0][1]
        for w, dt, reasons in runs[1:]:
            same = reasons == runs[0][2]
            print(f"workers={w} vs workers={runs[0][0]}: {base / dt:.2f}x faster; same reasons: {same}")


if __name__ == "__main__":
    main()
