"""Decontamination at scale: N training records over D distinct images against a benchmark of B items.

    python benchmarks/decontam_scale.py --records 1000000 --images 20000 --bench-items 50000 \\
        --bench-images 5000 --tmp /tmp

Writes D small distinct JPEGs (64 px) and a POPE-format benchmark (B questions over its own images),
plants `--planted` exact copies and as many re-encoded copies of benchmark images among the training
images, then runs `curate.decontam.decontaminate` (sha256 of every distinct training image, pHash of
those without an exact match, banded nearest-hash search) and prints the time per phase, records/s,
what was found against what was planted, and the banded search next to a brute-force all-pairs
search of the same hashes (the baseline), as a ratio. Nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vitune.curate.decontam import DecontamConfig, decontaminate, nearest_hashes
from vitune.curate.images import ImageHashes, popcount


def _image(path: Path, rng: random.Random) -> None:
    arr = np.zeros((64, 64, 3), np.uint8)
    for _ in range(4):  # a few random rectangles: distinct pHashes
        x0, y0 = rng.randrange(0, 48), rng.randrange(0, 48)
        arr[y0 : y0 + rng.randrange(8, 24), x0 : x0 + rng.randrange(8, 24)] = [
            rng.randrange(256) for _ in range(3)
        ]
    Image.fromarray(arr).save(path, quality=90)


def build(root: Path, args: argparse.Namespace) -> tuple[list[str], set[str]]:
    rng = random.Random(0)
    bench, train = root / "pope", root / "train"
    bench.mkdir(parents=True)
    train.mkdir()
    for k in range(args.bench_images):
        _image(bench / f"b{k}.jpg", rng)
    rows = [{"question_id": q, "image": f"b{q % args.bench_images}.jpg", "text": f"Is there a thing {q}?",
             "label": "yes"} for q in range(args.bench_items)]  # fmt: skip
    (bench / "coco_pope_random.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    planted = set()
    for k in range(args.images):
        dst = train / f"t{k}.jpg"
        if k < args.planted:
            shutil.copyfile(bench / f"b{k}.jpg", dst)
            planted.add(str(dst))
        elif k < 2 * args.planted:
            with Image.open(bench / f"b{k}.jpg") as im:
                im.resize((58, 58)).save(dst, quality=70)
            planted.add(str(dst))
        else:
            _image(dst, rng)
    paths = [str(train / f"t{i % args.images}.jpg") for i in range(args.records)]
    return paths, planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--bench-items", type=int, default=50_000)
    ap.add_argument("--bench-images", type=int, default=5_000)
    ap.add_argument("--planted", type=int, default=100)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="decontam-", dir=args.tmp))
    try:
        t0 = time.perf_counter()
        paths, planted = build(root, args)
        print(
            f"wrote {args.images} training and {args.bench_images} benchmark images in {time.perf_counter() - t0:.1f} s"
        )
        hashes = ImageHashes()
        cfg = DecontamConfig((f"pope={root / 'pope'}",), "image", 4)
        t0 = time.perf_counter()
        _kept, removed = decontaminate(paths, lambda pos: [""] * len(pos), cfg, hashes)
        total = time.perf_counter() - t0
        found = {paths[i] for i, _, _ in removed}
        print(f"decontaminate: {args.records:,} records / {args.images:,} images vs {args.bench_items:,} items: "
              f"{total:.1f} s ({args.records / total:,.0f} records/s); removed {len(removed):,} records, "
              f"{len(found & planted)}/{len(planted)} planted images found, {len(found - planted)} others")  # fmt: skip
        refs = np.array([hashes.phash(str(p)) for p in sorted((root / "pope").glob("*.jpg"))], np.uint64)
        queries = np.array(
            [hashes.phash(str(root / "train" / f"t{k}.jpg")) for k in range(args.images)], np.uint64
        )
        t0 = time.perf_counter()
        nearest_hashes(queries, refs, 4)
        banded = time.perf_counter() - t0
        t0 = time.perf_counter()
        for q in queries:  # baseline: every query against every reference
            popcount(refs ^ q).min()
        brute = time.perf_counter() - t0
        print(
            f"nearest-hash search: banded {banded:.2f} s, brute force {brute:.2f} s, ratio {brute / banded:.1f}x"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
