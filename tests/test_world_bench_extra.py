"""`vitune world --benchmarks`: every drawable benchmark, each loadable by its registered loader with
every image where the loader looks, and answer keys that round-trip (gold answers score 100)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitune.cli import app
from vitune.eval.benchmarks import get_benchmark
from vitune.eval.runner import BenchSpec, run_benchmarks
from vitune.eval.world_bench import BENCHMARKS, write_world_benchmarks
from vitune.world import generate_world

ORACLE_OK = {"gqa": 100.0, "scienceqa": 100.0, "ai2d": 100.0, "vqav2": 100.0}


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("wbx")
    generate_world(root / "w", 60, seed=5, workers=1, split_fractions=(0.5, 0.0, 0.5))
    return root, write_world_benchmarks(root / "w", root / "bench", "test", seed=0, max_images=12)


def test_every_benchmark_written_and_loadable(bench_dir):
    _, paths = bench_dir
    assert set(paths) == set(BENCHMARKS) and {"gqa", "textvqa", "scienceqa", "ai2d", "chair"} <= set(paths)
    for name, path in paths.items():
        spec = BenchSpec(name, path)
        items = get_benchmark(name).load(path)
        assert items, name
        for it in items:
            src = it.image_source(spec.images)
            assert src is None or not isinstance(src, Path) or src.is_file(), (name, it.image)


@pytest.mark.parametrize("name", ["gqa", "textvqa", "scienceqa", "ai2d"])
def test_gold_answers_round_trip(bench_dir, name):
    _, paths = bench_dir
    bench = get_benchmark(name)
    items = bench.load(paths[name])
    gold = {it.item_id: it.answers[0] for it in items}
    res = bench.score(gold, items)
    if name == "textvqa":  # a leave-one-out score: 100 only when 4+ of the 10 answers agree
        assert res["overall"] > 30.0
    else:
        assert res["overall"] == ORACLE_OK[name]
    wrong = bench.score({k: "zzz" for k in gold}, items)
    assert wrong["overall"] == 0.0


def test_runner_runs_the_new_world_benchmarks(bench_dir, tmp_path):
    _, paths = bench_dir
    specs = [BenchSpec(n, paths[n]) for n in ("gqa", "textvqa", "scienceqa", "ai2d", "chair")]
    res = run_benchmarks(specs, tmp_path / "ev", answer_fn=lambda its: ["A" for _ in its], model_id="stub",
                         show_progress=False)  # fmt: skip
    for s in specs:
        scores = json.loads((tmp_path / "ev" / s.name / "scores.json").read_text())
        assert scores["n"] == len(get_benchmark(s.name).load(s.path)) and scores["n_missing"] == 0
    assert res is not None


def test_world_command_writes_benchmarks(tmp_path):
    out = tmp_path / "w"
    r = CliRunner().invoke(app, ["world", "--out", str(out), "--images", "30", "--workers", "1",
                                 "--benchmarks", "--bench-images", "3"])  # fmt: skip
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "benchmarks" / "world_benchmarks.json").read_text())
    assert set(meta["benchmarks"]) == set(BENCHMARKS) and meta["n_images"] == 3
    assert (out / "benchmarks" / "ai2d" / "questions").is_dir()
