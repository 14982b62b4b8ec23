"""Synthesis throughput and resume cost against a local OpenAI-compatible server.

The server (`vitune.synth.fakeserver`, in this process) answers each request after a fixed latency
and serves at most `--capacity` requests at once, so its ceiling is capacity / latency requests/s.
Each client run is a separate process running `vitune.synth.synth` (no shared GIL with the server):

1. baseline: concurrency 1;
2. vitune: concurrency = capacity, reported as achieved requests/s and % of the ceiling (target >= 90%);
3. resume: a run killed with SIGKILL half-way, then re-run; duplicates = requests of the second
   run whose reply was already in the cache (target 0), plus those lost in flight at the kill.

Exits non-zero when a target is missed.

Usage: .venv/bin/python benchmarks/synth_throughput.py [--latency 0.2 --capacity 16 --seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vitune.data.records import Box, ImageRecord, ObjectAnn
from vitune.synth import ResponseCache
from vitune.synth.fakeserver import FakeChatServer

CHILD = """
import json, sys
from vitune.data.records import ImageRecord
from vitune.synth import OpenAIBackend, synth
url, recs_path, out, conc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
recs = [ImageRecord.from_dict(d) for d in json.load(open(recs_path))]
be = OpenAIBackend(url, "bench-model", api_key="k", concurrency=conc, timeout=30)
s = synth(recs, ["complex_reasoning"], be, out, export=False)
s.pop("items")
print(json.dumps(s["requests"]))
"""


def records(n: int) -> list[ImageRecord]:
    out = []
    for i in range(n):
        objs = [
            ObjectAnn(f"{i}:1", "circle", Box(10 + i % 50, 10, 40, 40), ["red"]),
            ObjectAnn(f"{i}:2", "square", Box(100, 60 + i % 40, 50, 50), ["blue"]),
        ]
        out.append(
            ImageRecord(
                str(i),
                f"{i}.jpg",
                320,
                240,
                captions=[f"A red circle and a blue square ({i})."],
                objects=objs,
            )
        )
    return out


def client(url: str, recs_path: Path, out: Path, conc: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(recs_path), str(out), str(conc)],
        stdout=subprocess.PIPE,
        text=True,
    )


def timed_run(srv: FakeChatServer, tmp: Path, name: str, n: int, conc: int) -> dict:
    recs_path = tmp / f"{name}.json"
    recs_path.write_text(json.dumps([r.to_dict() for r in records(n)]))
    # Rate from the server log: first arrival to last completion (process start-up excluded).
    n0 = len(srv.log)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = client(srv.url, recs_path, tmp / name, conc)
    proc.communicate()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{name}: client failed ({proc.returncode})")
    log = srv.log[n0:]
    span = max(e["t1"] for e in log) - min(e["t0"] for e in log)
    client_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return {"requests": len(log), "seconds": span, "rps": len(log) / span, "client_cpu_s": client_cpu}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--capacity", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0, help="target length of the main run")
    a = ap.parse_args()
    ceiling = a.capacity / a.latency
    with tempfile.TemporaryDirectory() as td, FakeChatServer(latency=a.latency, capacity=a.capacity) as srv:
        tmp = Path(td)
        base = timed_run(srv, tmp, "baseline", max(5, int(2.0 / a.latency)), 1)
        main_run = timed_run(srv, tmp, "vitune", int(ceiling * a.seconds), a.capacity)

        # Resume: kill -9 half-way, then finish.
        n = int(ceiling * 3)
        recs_path = tmp / "resume.json"
        recs_path.write_text(json.dumps([r.to_dict() for r in records(n)]))
        out = tmp / "resume"
        n0 = len(srv.log)
        proc = client(srv.url, recs_path, out, a.capacity)
        while len([e for e in srv.log[n0:] if e.get("completed")]) < n // 2:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        served = {e["key"] for e in srv.log[n0:] if e.get("completed")}
        with ResponseCache(out / "cache.sqlite") as c:
            cached = c.keys()
        n1 = len(srv.log)
        proc = client(srv.url, recs_path, out, a.capacity)
        proc.communicate()
        second = [e["key"] for e in srv.log[n1:]]
        dup_cached = len(set(second) & cached)
        lost_in_flight = len(set(second) & served)

    print(f"server: latency {a.latency}s, capacity {a.capacity} -> ceiling {ceiling:.1f} req/s")
    print(f"{'run':<22}{'requests':>9}{'seconds':>9}{'req/s':>9}{'% ceiling':>11}{'client CPU ms/req':>19}")
    for name, r in (("baseline (conc 1)", base), (f"vitune (conc {a.capacity})", main_run)):
        ms = 1000 * r["client_cpu_s"] / r["requests"]
        pct = 100 * r["rps"] / ceiling
        print(f"{name:<22}{r['requests']:>9}{r['seconds']:>9.2f}{r['rps']:>9.1f}{pct:>10.1f}%{ms:>19.2f}")
    print(f"speed-up over baseline: {main_run['rps'] / base['rps']:.1f}x")
    print(
        f"resume after kill -9 at {len(served)}/{n} served: cached {len(cached)}, re-sent {len(second)}, "
        f"duplicates of cached replies {dup_cached} (target 0), replies lost in flight {lost_in_flight} "
        f"(<= capacity {a.capacity}), total requests {len(cached) + len(second)} for {n} prompts"
    )
    pct = 100 * main_run["rps"] / ceiling
    ok = pct >= 90.0 and dup_cached == 0 and len(second) == len(set(second)) == n - len(cached)
    print(f"targets (>= 90% of capacity, 0 duplicates on resume): {'met' if ok else 'NOT met'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
