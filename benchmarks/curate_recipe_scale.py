"""The recipe runner at scale: N synthetic instruction records as an instance set (Parquet) through
`vitune.curate.run.curate` with filter, exact + MinHash dedup and a random selection, end to end
(loading, the removal ledger, the output set and LLaVA JSON included). Prints seconds, records/s and
peak RSS, next to the array-level dedup of `benchmarks/curate_scale.py` on the same records as the
baseline (no Python objects per record, no I/O).

    .venv/bin/python benchmarks/curate_recipe_scale.py --n 1000000 --tmp /tmp
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from curate_scale import record

from vitune.curate.run import curate
from vitune.data.instance import Instance, Turn
from vitune.data.store import write_instance_set


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_records(n: int, out: Path) -> None:
    insts = []
    for k in range(n):
        text, img = record(k)
        q, _, a = text.partition(" ")
        insts.append(
            Instance(
                f"r{k}", f"img/{img}.jpg", "svit", [Turn("user", f"What about {q}?"), Turn("assistant", a)]
            )
        )
    write_instance_set(insts, out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--select", type=int, default=150_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        t0 = time.perf_counter()
        # Written by a child process, so this process's peak RSS is curate()'s alone.
        child = multiprocessing.get_context("spawn").Process(
            target=write_records, args=(args.n, Path(tmp) / "in")
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"writing the records failed ({child.exitcode})")
        print(f"n={args.n}: wrote the instance set in {time.perf_counter() - t0:.1f} s (not counted)")
        recipe = {
            "name": "scale",
            "seed": 0,
            "inputs": [{"name": "svit", "kind": "instances", "path": str(Path(tmp) / "in")}],
            "steps": [
                {"type": "filter", "checks": ["empty_reply", "long_reply"]},
                {"type": "dedup_exact"},
                {"type": "dedup_minhash", "threshold": 0.7, "num_perm": 128, "shingle": 5, "workers": 2},
                {"type": "select", "method": "random", "size": args.select},
            ],
            "output": {"llava_json": True, "with_task": True},
        }
        import yaml

        (Path(tmp) / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        rss0 = rss_mb()
        t1 = time.perf_counter()
        summary = curate(Path(tmp) / "recipe.yaml", Path(tmp) / "out")
        dt = time.perf_counter() - t1
        print("step                     in        kept     removed")
        for st in summary["steps"]:
            print(f"{st['step']!s:20} {st['in']:>10,} {st['kept']:>10,} {st['removed']:>10,}")
        print(
            f"curate() of {args.n:,} records: {dt:.1f} s, {args.n / dt:,.0f} records/s; "
            f"peak RSS {rss_mb():,.0f} MB (at start {rss0:,.0f} MB); "
            f"linear extrapolation to 4.2M: {dt * 4.2e6 / args.n / 60:.1f} min, "
            f"~{(rss_mb() - rss0) * 4.2e6 / args.n / 1024 + rss0 / 1024:.1f} GB"
        )


if __name__ == "__main__":
    main()
