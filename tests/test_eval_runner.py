"""The generic benchmark runner: response cache keys, per-item resume, batching, results files, judge hook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from model_helpers import save_random_llava
from vitune.eval.benchmarks import Benchmark, get_benchmark, register_benchmark
from vitune.eval.benchmarks.base import _REGISTRY, BenchItem, pair_predictions, pct
from vitune.eval.runner import (
    CACHE_FILE,
    BenchSpec,
    ResponseCache,
    compare_rows,
    load_results,
    model_fingerprint,
    parse_bench,
    run_benchmarks,
    select_items,
)
from vitune.eval.world_bench import write_world_benchmarks
from vitune.world import generate_world

SENTENCES = [
    "What color is the cube? red",
    "How many circles are there? 3",
    "Is there a dog in the picture? no",
    "Answer with the option's letter from the given choices directly. A",
    "Answer the question using a single word or phrase. yes",
] * 20


@pytest.fixture(scope="module")
def bench_paths(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("world")
    generate_world(root / "w", 40, seed=1, workers=1, split_fractions=(0.5, 0.0, 0.5))
    return write_world_benchmarks(root / "w", root / "bench", "test", seed=0, max_images=8, pope_pairs=1)


def _save_micro(d: Path, seed: int) -> Path:
    return save_random_llava(d, SENTENCES, seed=seed)


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory) -> Path:
    return _save_micro(tmp_path_factory.mktemp("micro"), seed=0)


class Stub:
    """Answers "yes" to everything, records every prompt; raises once it has answered `fail_after`."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.asked: list[str] = []
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self, items):
        if self.fail_after is not None and len(self.asked) + len(items) > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        self.asked.extend(it.text for it in items)
        return ["yes" for _ in items]


def _run(specs, out, stub, **kw):
    kw.setdefault("model_id", "stub-model")
    return run_benchmarks(specs, out, answer_fn=stub, show_progress=False, **kw)


def test_parse_bench_and_default_image_root(tmp_path):
    s = parse_bench("pope=data/pope")
    assert s.name == "pope" and s.path == Path("data/pope")
    f = tmp_path / "x.tsv"
    f.write_text("")
    assert BenchSpec("mmbench", f).images == tmp_path
    assert BenchSpec("pope", tmp_path).images == tmp_path
    with pytest.raises(ValueError):
        parse_bench("pope")


def test_cache_hits_and_misses_by_key(bench_paths, tmp_path):
    spec = BenchSpec("vqav2", bench_paths["vqav2"])
    n = len(get_benchmark("vqav2").load(spec.path))
    first = Stub()
    r = _run([spec], tmp_path / "a", first, max_new_tokens=8)
    assert len(first.asked) == n and r["benchmarks"]["vqav2"]["n_generated"] == n

    again = Stub()
    r = _run([spec], tmp_path / "a", again, max_new_tokens=8)
    assert again.calls == 0 and r["benchmarks"]["vqav2"]["n_cached"] == n

    other_params = Stub()
    _run([spec], tmp_path / "a", other_params, max_new_tokens=9)
    assert len(other_params.asked) == n  # generation parameters are in the key

    other_model = Stub()
    _run([spec], tmp_path / "a", other_model, max_new_tokens=8, model_id="another-model")
    assert len(other_model.asked) == n

    # Change one question's text: only that item is asked again.
    qfile = next(spec.path.glob("*questions*.json"))
    backup = qfile.read_text(encoding="utf-8")
    doc = json.loads(backup)
    doc["questions"][0]["question"] = "Is this a changed question?"
    qfile.write_text(json.dumps(doc), encoding="utf-8")
    try:
        changed = Stub()
        _run([spec], tmp_path / "a", changed, max_new_tokens=8)
        assert changed.asked == [
            "Is this a changed question?\nAnswer the question using a single word or phrase."
        ]
    finally:
        qfile.write_text(backup, encoding="utf-8")


def test_resume_after_interruption_generates_only_the_rest(bench_paths, tmp_path):
    spec = BenchSpec("pope", bench_paths["pope"])
    n = len(get_benchmark("pope").load(spec.path))
    assert n > 12
    with pytest.raises(KeyboardInterrupt):
        _run([spec], tmp_path / "r", Stub(fail_after=8), chunk_size=4)
    assert len(ResponseCache(tmp_path / "r" / CACHE_FILE)) == 8  # two chunks were made durable
    # A kill in the middle of a write leaves a partial row: it is dropped, not fatal.
    with (tmp_path / "r" / CACHE_FILE).open("a", encoding="utf-8") as fh:
        fh.write('{"key": "abc", "bench": "po')
    rest = Stub()
    r = _run([spec], tmp_path / "r", rest, chunk_size=4)
    assert len(rest.asked) == n - 8
    assert rest.calls == -(-(n - 8) // 4)
    b = r["benchmarks"]["pope"]
    assert (b["n_cached"], b["n_generated"], b["n_missing"]) == (8, n - 8, 0)


def test_results_json_markdown_and_predictions(bench_paths, tmp_path):
    specs = [BenchSpec(n, bench_paths[n]) for n in ("pope", "mme", "seed_bench")]
    r = _run(specs, tmp_path / "o", Stub())
    out = tmp_path / "o"
    on_disk = load_results(out)
    assert on_disk == json.loads(json.dumps(r))
    assert set(on_disk["benchmarks"]) == {"pope", "mme", "seed_bench"}
    pope = on_disk["benchmarks"]["pope"]
    # Always "yes": recall 100, precision 50 -> F1 66.67 in every split; yes-ratio kept as detail.
    assert pope["overall"] == pytest.approx(200 / 3)
    assert set(pope["per_category"]) == {"random", "popular", "adversarial"}
    assert pope["per_category"]["random"]["score"] == pytest.approx(200 / 3)
    mme = on_disk["benchmarks"]["mme"]
    assert mme["extra"]["perception"] == mme["overall"]
    assert all(c["score"] == pytest.approx(50.0) for c in mme["per_category"].values())  # acc 50, acc+ 0
    seed = on_disk["benchmarks"]["seed_bench"]
    assert seed["overall"] == 0.0 and seed["n"] == len(get_benchmark("seed_bench").load(specs[2].path))
    md = (out / "results.md").read_text(encoding="utf-8")
    assert md.count("\n| pope | overall | mean_f1 |") == 1 and "|  | random |" in md
    n_seed = seed["per_category"]["Instance Identity"]["n"]
    assert f"|  | Instance Identity |  |  | {n_seed} | 0.00 |  |  |  |" in md
    preds = json.loads((out / "pope" / "predictions.json").read_text(encoding="utf-8"))
    assert len(preds) == pope["n"] and set(preds.values()) == {"yes"}
    assert (
        json.loads((out / "pope" / "scores.json").read_text())["per_category"]["random"]["yes_ratio"] == 100.0
    )

    # A second run of the same model adds its benchmark to the same results.
    _run([BenchSpec("mmbench", bench_paths["mmbench"])], out, Stub())
    assert set(load_results(out)["benchmarks"]) == {"pope", "mme", "seed_bench", "mmbench"}


def test_limit_takes_whole_groups(bench_paths):
    bench = get_benchmark("mmbench")
    items = bench.load(bench_paths["mmbench"])
    some = select_items(bench, items, 3)
    groups = {bench.group_key(it) for it in some}
    assert len(groups) == 3
    assert len(some) == sum(1 for it in items if bench.group_key(it) in groups)  # every circular pass
    assert select_items(bench, items, 3) == some  # seeded
    mme = get_benchmark("mme")
    pairs = select_items(mme, mme.load(bench_paths["mme"]), 2)
    assert len(pairs) == 4


def test_compare_rows_deltas():
    a = {
        "benchmarks": {
            "pope": {"metric": "f1", "overall": 50.0, "per_category": {"random": {"score": 40.0, "n": 3}}}
        }
    }
    b = {
        "benchmarks": {
            "pope": {"metric": "f1", "overall": 60.0, "per_category": {"random": {"score": 30.0, "n": 3}}},
            "chair": {"metric": "chair_i", "overall": 10.0, "higher_is_better": False, "per_category": {}},
        }
    }
    rows = compare_rows(a, b)
    assert rows[0] == ("pope", "overall", "f1", "50.00", "60.00", "+10.00 (better)")
    assert rows[1] == ("", "  random", "", "40.00", "30.00", "-10.00 (worse)")
    assert rows[2] == ("chair", "overall", "chair_i", "—", "10.00", "—")


@register_benchmark
class _JudgedToy(Benchmark):
    """A judged benchmark stand-in: the judge decides each item."""

    name = "_judged_toy"
    needs_judge: ClassVar[bool] = True

    def load(self, path):
        return [BenchItem(f"q{i}", f"question {i}?") for i in range(3)]

    def score(self, preds, items, *, missing="error", judge=None):
        assert judge is not None, "the runner must pass the judge"
        pairs, n_missing = pair_predictions(preds, items, missing)
        hits = [judge(it.item_id, p) for it, p in pairs]
        return {
            "overall": pct(sum(hits), len(hits)),
            "per_category": {},
            "n": len(hits),
            "n_missing": n_missing,
        }


@pytest.fixture
def judged_toy():
    yield BenchSpec("_judged_toy", Path("."))
    # Leave the registry as the other tests expect it.
    _REGISTRY.pop("_judged_toy", None)


def test_judge_is_built_lazily_and_passed_to_score(judged_toy, bench_paths, tmp_path):
    built = []

    def factory():
        built.append(1)
        return lambda item_id, pred: item_id != "q0"

    _run([BenchSpec("pope", bench_paths["pope"])], tmp_path / "j", Stub(), judge_factory=factory)
    assert built == []  # no judged benchmark, no judge
    r = _run([judged_toy], tmp_path / "j", Stub(), judge_factory=factory)
    assert built == [1] and r["benchmarks"]["_judged_toy"]["overall"] == pytest.approx(200 / 3)
    stub = Stub()
    with pytest.raises(ValueError, match="judge"):
        _run([judged_toy], tmp_path / "j2", stub)
    assert stub.calls == 0  # refused before generating anything


def test_batched_equals_batch_one_and_weights_change_misses(micro_dir, bench_paths, tmp_path):
    torch.use_deterministic_algorithms(True)
    specs = [BenchSpec(n, bench_paths[n]) for n in ("vqav2", "mmbench", "imagefolder")]
    kw = {"max_new_tokens": 4, "limit": 3, "show_progress": False}
    one = run_benchmarks(specs, tmp_path / "b1", model_dir=micro_dir, batch_size=1, **kw)
    many = run_benchmarks(specs, tmp_path / "b5", model_dir=micro_dir, batch_size=5, **kw)
    for s in specs:
        p1 = json.loads((tmp_path / "b1" / s.name / "predictions.json").read_text())
        p5 = json.loads((tmp_path / "b5" / s.name / "predictions.json").read_text())
        assert p1 == p5 and len(p1) == one["benchmarks"][s.name]["n_items"]
        assert one["benchmarks"][s.name]["overall"] == many["benchmarks"][s.name]["overall"]
    answers = {
        a
        for s in specs
        for a in json.loads((tmp_path / "b1" / s.name / "predictions.json").read_text()).values()
    }
    assert len(answers) >= 3, f"answers should depend on the input: {answers}"

    # Same path, new weights (a model retrained in place): nothing may come from the cache.
    fp = model_fingerprint(micro_dir)
    retrained = _save_micro(tmp_path / "m", seed=0)
    assert model_fingerprint(retrained) != fp
    again = run_benchmarks(specs[:1], tmp_path / "b1", model_dir=micro_dir, batch_size=4, **kw)
    assert again["benchmarks"]["vqav2"]["n_generated"] == 0  # unchanged model: all cached
    _save_micro(micro_dir, seed=7)
    assert model_fingerprint(micro_dir) != fp
    after = run_benchmarks(specs[:1], tmp_path / "b1", model_dir=micro_dir, batch_size=4, **kw)
    b = after["benchmarks"]["vqav2"]
    assert b["n_cached"] == 0 and b["n_generated"] == b["n_items"]
