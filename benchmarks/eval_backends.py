"""Evaluation backends: items/s through `--api-url` against `vitune serve` vs local batched generation
of the same checkpoint, and `accelerate launch` on 2 processes vs 1 process.

A `tiny128` LLaVA with random weights (every answer runs to the token limit; the model of
`eval_throughput.py`) answers the world's POPE and VQAv2 items (`--images` test images). Each mode
runs the whole `vitune eval` path (runner, cache, scoring) into a fresh folder, and the script
fails if any mode's predictions differ from local generation.

- local: `run_benchmarks(model_dir=...)`, batch size `--batch-size`, in this process;
- api: the same checkpoint behind `vitune serve` (micro-batches of `--batch-size`) on 127.0.0.1,
  evaluated through `api_source` with `--concurrency` requests in flight (server and client share
  this process and its cores);
- 1 vs 2 processes: `python -m vitune.cli eval` vs `accelerate launch --config_file
  configs/accelerate/cpu-2proc.yaml -m vitune.cli eval`, wall time of the whole command (start-up
  and model loading included), `--threads` torch threads per process in both.

    .venv/bin/python benchmarks/eval_backends.py [--images 40] [--batch-size 16] [--max-new-tokens 16]
        [--concurrency 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # for eval_throughput

import torch
from eval_throughput import tiny_model

from vitune.eval.runner import BenchSpec, run_benchmarks
from vitune.eval.world_bench import write_world_benchmarks
from vitune.models import api_source
from vitune.serve.server import BackgroundServer, load_app
from vitune.sources.merge import load_world
from vitune.world import generate_world

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ("pope", "vqav2")


def preds(out: Path) -> dict[str, dict[str, str]]:
    return {b: json.loads((out / b / "predictions.json").read_text()) for b in BENCHES}


def timed_run(specs: list[BenchSpec], out: Path, **kw) -> tuple[float, int]:
    t0 = time.perf_counter()
    res = run_benchmarks(specs, out, show_progress=False, **kw)
    return time.perf_counter() - t0, sum(b["n_items"] for b in res["benchmarks"].values())


def cli_run(cmd: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "COLUMNS": "200"}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40, help="world test images the benchmarks are drawn from")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--skip-processes", action="store_true", help="only local vs api")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="eval_backends_"))
    try:
        generate_world(tmp / "world", 2 * a.images + 40, seed=0, workers=1, split_fractions=(0.5, 0.0, 0.5))
        paths = write_world_benchmarks(
            tmp / "world", tmp / "bench", "test", seed=0, max_images=a.images, benchmarks=list(BENCHES)
        )
        texts = [
            c for r in load_world(tmp / "world", "train") for c in [*r.captions, *(q.question for q in r.qas)]
        ]
        model = tiny_model(tmp, texts)
        specs = [BenchSpec(b, paths[b]) for b in BENCHES]
        kw = dict(batch_size=a.batch_size, max_new_tokens=a.max_new_tokens)
        print(f"load average {os.getloadavg()[0]:.1f}, {a.threads} torch thread(s) per process, "
              f"tiny128 random weights, max_new_tokens {a.max_new_tokens}, batch size {a.batch_size}")  # fmt: skip

        t_local, n = timed_run(specs, tmp / "local", model_dir=model, **kw)
        app = load_app(model, model_name="tiny", batch_size=a.batch_size, max_wait_ms=10)
        with BackgroundServer(app) as srv:
            source = api_source(srv.url, "tiny", max_new_tokens=a.max_new_tokens, concurrency=a.concurrency)
            t_api, _ = timed_run(specs, tmp / "api", source=source, batch_size=a.batch_size)
        same = preds(tmp / "local") == preds(tmp / "api")
        print(f"\n{n} items (POPE + VQAv2)")
        print("| mode | seconds | items/s | ratio |\n|---|---:|---:|---:|")
        print(f"| local batched generation (baseline) | {t_local:.1f} | {n / t_local:.1f} | 1.00x |")
        print(f"| --api-url -> vitune serve, {a.concurrency} in flight | {t_api:.1f} | {n / t_api:.1f} | "
              f"{t_local / t_api:.2f}x |")  # fmt: skip
        print(f"api predictions identical to local: {same}")
        if not same:
            raise SystemExit("the API backend's predictions differ from local generation")
        if a.skip_processes:
            return

        bench_args = [x for b in BENCHES for x in ("--bench", f"{b}={paths[b]}")]
        common = ["eval", "--model", str(model), *bench_args, "--batch-size", str(a.batch_size),
                  "--max-new-tokens", str(a.max_new_tokens)]  # fmt: skip
        t1 = cli_run([sys.executable, "-m", "vitune.cli", *common, "--out", str(tmp / "p1")], a.threads)
        launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
        config = ROOT / "configs" / "accelerate" / "cpu-2proc.yaml"
        launch = [launcher, "launch", "--config_file", str(config), "--main_process_port", str(free_port())]
        t2 = cli_run([*launch, "-m", "vitune.cli", *common, "--out", str(tmp / "p2")], a.threads)
        same2 = preds(tmp / "p1") == preds(tmp / "p2") == preds(tmp / "local")
        print(
            "\n| launch (whole command, start-up included) | seconds | items/s | ratio |\n|---|---:|---:|---:|"
        )
        print(f"| 1 process (baseline) | {t1:.1f} | {n / t1:.1f} | 1.00x |")
        print(f"| accelerate launch, 2 CPU processes | {t2:.1f} | {n / t2:.1f} | {t1 / t2:.2f}x |")
        print(
            f"2-process predictions identical to 1 process: {same2}; load average now {os.getloadavg()[0]:.1f}"
        )
        if not same2:
            raise SystemExit("2 processes gave other predictions than 1")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
