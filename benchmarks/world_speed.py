"""Speed of the embedded world generator: images/s with 1 and 2 worker processes, side by side.

Each run generates a full world (images, COCO, VG, VQAv2 JSON, world.json) into a fresh temporary
folder, and the script checks that the outputs of the two worker counts are byte-identical. It also
prints the CPU milliseconds spent per image (parent + workers): on a machine that other jobs keep
busy, wall-clock speedup is capped by the free cores, while CPU per image shows the parallel overhead.

    .venv/bin/python benchmarks/world_speed.py [--sizes 5000 20000] [--workers 1 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from vitune.world import generate_world


def digest(root: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="parent folder for the temporary worlds")
    args = ap.parse_args()

    print(f"cpus={os.cpu_count()} load before={os.getloadavg()[0]:.2f}")
    header = "".join(f"{f'workers={w} img/s':>18}" for w in args.workers)
    header += "".join(f"{f'w={w} cpu ms/img':>16}" for w in args.workers)
    print(f"{'images':>8}{header}{'speedup':>10}{'identical':>11}")
    for n in args.sizes:
        rates, cpus, digests = [], [], []
        for w in args.workers:
            with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
                t0, c0 = time.perf_counter(), cpu_seconds()
                generate_world(Path(tmp) / "world", n, args.seed, workers=w)
                rates.append(n / (time.perf_counter() - t0))
                cpus.append(1000 * (cpu_seconds() - c0) / n)
                digests.append(digest(Path(tmp) / "world"))
                shutil.rmtree(Path(tmp) / "world")
        cols = "".join(f"{r:>18.1f}" for r in rates) + "".join(f"{c:>16.2f}" for c in cpus)
        print(f"{n:>8}{cols}{rates[-1] / rates[0]:>9.2f}x{len(set(digests)) == 1!s:>11}", flush=True)
    print(f"load after={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
