"""Data-parallel evaluation: `accelerate launch -m vitune.cli eval` on 2 CPU processes gives the same
predictions and scores, byte for byte, as one process, and resumes a run begun with another process
count (rank files a killed run left behind are merged first).

Launched as the README tells users to: the shipped `configs/accelerate/cpu-2proc.yaml` and the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from model_helpers import save_random_llava
from vitune.eval.parallel import Ranks, rank_file
from vitune.eval.runner import CACHE_FILE, BenchSpec, run_benchmarks
from vitune.eval.world_bench import write_world_benchmarks
from vitune.world import generate_world

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "cpu-2proc.yaml"
TIMING = ("generation_seconds", "items_per_s", "n_generated", "n_cached", "n_processes")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("par")
    generate_world(root / "w", 24, seed=5, workers=1, split_fractions=(0.5, 0.0, 0.5))
    paths = write_world_benchmarks(
        root / "w", root / "bench", "test", seed=0, max_images=6, pope_pairs=1, benchmarks=["pope", "vqav2"]
    )
    sentences = ["Is there a red circle in the image? yes", "What color is the cube? blue"] * 30
    return root, paths, save_random_llava(root / "micro", sentences, seed=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(*args: str) -> subprocess.CompletedProcess:
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert launcher, "accelerate's launcher is installed with the package"
    cmd = [launcher, "launch", "--config_file", str(CONFIG), "--main_process_port", str(_free_port()), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def _results(out: Path) -> dict:
    res = json.loads((out / "results.json").read_text())
    for b in res["benchmarks"].values():
        for k in TIMING:
            b.pop(k)
    return res


def test_shard_is_deterministic_and_covers_everything():
    items = list(range(11))
    shards = [Ranks(r, 3).shard(items) for r in range(3)]
    assert sorted(x for sh in shards for x in sh) == items and shards[1] == [1, 4, 7, 10]
    assert Ranks(1, 2, 1).device("cuda") == "cuda:1" and Ranks().device("cuda") == "cuda"


def test_two_processes_equal_one_and_resume_after_a_change_of_n(setup, tmp_path):
    _, paths, model = setup
    specs = [BenchSpec("pope", paths["pope"]), BenchSpec("vqav2", paths["vqav2"])]
    one = tmp_path / "one"
    run_benchmarks(specs, one, model_dir=model, max_new_tokens=8, show_progress=False)

    # A run begun on one process (2 images' items of each benchmark), then "killed" on 2
    # processes: its rank-1 file holds some answers, the last row cut short.
    two = tmp_path / "two"
    part = run_benchmarks(specs, two, model_dir=model, max_new_tokens=8, limit=2, show_progress=False)
    rows = (two / CACHE_FILE).read_text().splitlines(keepends=True)
    (two / CACHE_FILE).write_text("".join(rows[:-3]))
    rank_file(two / CACHE_FILE, 1).write_text("".join(rows[-3:]) + rows[0][:20])
    n_before = sum(b["n_items"] for b in part["benchmarks"].values())
    assert n_before == len(rows)

    args = ["-m", "vitune.cli", "eval", "--model", str(model), "--out", str(two), "--max-new-tokens", "8"]
    r = _launch(*args, "--bench", f"pope={paths['pope']}", "--bench", f"vqav2={paths['vqav2']}")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert (r.stdout + r.stderr).count("benchmark results") == 1  # only process 0 reports

    for name in ("pope", "vqav2"):
        for f in ("predictions.json", "scores.json"):
            assert (two / name / f).read_bytes() == (one / name / f).read_bytes(), (name, f)
    assert _results(two) == _results(one)
    res = json.loads((two / "results.json").read_text())
    assert sum(b["n_cached"] for b in res["benchmarks"].values()) == n_before  # resumed, nothing redone
    assert sum(b["n_generated"] for b in res["benchmarks"].values()) > 0
    assert {b["n_processes"] for b in res["benchmarks"].values()} == {2}

    # Process 0 appended its shard (every other uncached item), then merged process 1's after it.
    def ids(path: Path, bench: str) -> list[str]:
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        return [r["item_id"] for r in rows if r["bench"] == bench]

    before = {json.loads(x)["item_id"] for x in rows if json.loads(x)["bench"] == "vqav2"}
    todo = [i for i in ids(one / CACHE_FILE, "vqav2") if i not in before]  # one: load order
    assert len(todo) >= 4
    assert ids(two / CACHE_FILE, "vqav2")[-len(todo) :] == todo[0::2] + todo[1::2]
    assert not list(two.glob(CACHE_FILE + ".rank*"))  # merged into the one cache file
    cache_rows = [json.loads(x) for x in (two / CACHE_FILE).read_text().splitlines()]
    one_rows = [json.loads(x) for x in (one / CACHE_FILE).read_text().splitlines()]
    assert {r["key"]: r["response"] for r in cache_rows} == {r["key"]: r["response"] for r in one_rows}
    assert len(cache_rows) == len(one_rows)  # every item answered once
