"""World benchmarks: written in the official formats, read back by the registered loaders, scored."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from vitune.eval.benchmarks import get_benchmark
from vitune.eval.world_bench import (
    BENCHMARKS,
    run_world_benchmarks,
    world_results_table,
    write_world_benchmarks,
)
from vitune.sources.merge import load_world
from vitune.world import WorldLayout, generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wb") / "w"
    generate_world(root, 60, seed=3, workers=1, split_fractions=(0.5, 0.0, 0.5))
    return root


@pytest.fixture(scope="module")
def written(world, tmp_path_factory) -> dict[str, Path]:
    return write_world_benchmarks(world, tmp_path_factory.mktemp("out") / "b", "test", seed=0)


@pytest.fixture(scope="module")
def records(world):
    return {r.image_id: r for r in load_world(world, "test")}


def _present(rec) -> set[str]:
    return {o.name for o in rec.objects if o.source == "coco"}


def _best(answers: list[str]) -> str:
    return Counter(answers).most_common(1)[0][0]


def _wrong(name: str, it) -> str:
    if it.options:
        return next(k for k in it.options if k != it.answers[0])
    if name in ("pope", "mme"):
        return "no" if it.answers[0] == "yes" else "yes"
    if name == "imagefolder":
        return next(c for c in it.meta["classes"] if c != it.answers[0])
    return "zzz"  # VQAv2: no annotator ever says this


def test_every_benchmark_loads_and_scores_perfect_and_wrong(written):
    assert set(written) == set(BENCHMARKS)
    for name, path in written.items():
        bench = get_benchmark(name)
        items = bench.load(path)
        # Only images with a sign have TextVQA questions; ScienceQA has one problem per chosen image.
        assert len(items) >= (10 if name in ("textvqa", "scienceqa") else 20), name
        perfect = {it.item_id: _best(it.answers) for it in items}
        wrong = {it.item_id: _wrong(name, it) for it in items}
        if name == "chair":  # an error rate: every object named is there, or none is
            cats = sorted({a for it in items for a in it.answers})
            perfect = {it.item_id: "A picture with " + " and ".join(it.answers) + "." for it in items}
            wrong = {it.item_id: "A " + next(c for c in cats if c not in it.answers) + "." for it in items}
            assert (
                bench.score(perfect, items)["overall"] == 0.0
                and bench.score(wrong, items)["overall"] == 100.0
            )
            continue
        top = bench.score(perfect, items)
        low = bench.score(wrong, items)
        assert top["n_missing"] == low["n_missing"] == 0
        if name == "vqav2":
            # Annotators disagree on some world questions, so even the majority answer can miss 100.
            assert top["overall"] > 90 and low["overall"] == 0.0
        elif name == "mme":
            assert top["overall"] == 200.0 * len(top["per_category"]) and low["overall"] == 0.0
            assert set(top["per_category"]) == {"existence", "count", "position", "color", "OCR"}
        else:
            assert top["overall"] == 100.0 and low["overall"] == 0.0, name
        # Every image an item points at exists under the loader's image root.
        root = path if path.is_dir() else path.parent
        for it in items:
            if isinstance(it.image, str):
                assert (root / it.image).is_file(), (name, it.image)


def test_vqav2_is_the_splits_own_questions(written, records, world):
    items = get_benchmark("vqav2").load(written["vqav2"])
    want = {qa.question_id: (qa.question, qa.answers, rec) for rec in records.values() for qa in rec.qas}
    assert {it.item_id for it in items} == set(want)
    for it in items:
        q, answers, rec = want[it.item_id]
        assert it.meta["raw_question"] == q and it.answers == answers
        copied = (written["vqav2"] / it.image).read_bytes()
        assert copied == (WorldLayout(world).image_root / rec.file_name).read_bytes()


def test_pope_negative_sampling_strategies(written, records):
    rows = {}
    for s in ("random", "popular", "adversarial"):
        lines = (written["pope"] / f"world_pope_{s}.json").read_text().splitlines()
        rows[s] = [json.loads(line) for line in lines]
        assert [r["question_id"] for r in rows[s]] == list(range(1, len(lines) + 1))
    by_file = {f"COCO_test_{int(i):012d}.jpg": r for i, r in records.items()}
    freq = Counter(c for r in records.values() for c in _present(r))
    co = Counter()
    for r in records.values():
        p = _present(r)
        co.update((a, b) for a in p for b in p if a != b)
    categories = set(freq)
    for s, lines in rows.items():
        per_image: dict[str, dict[str, list[str]]] = {}
        for r in lines:
            cat = re.fullmatch(r"Is there an? (\w+) in the image\?", r["text"]).group(1)
            per_image.setdefault(r["image"], {"yes": [], "no": []})[r["label"]].append(cat)
        for image, qs in per_image.items():
            present = _present(by_file[image])
            absent = categories - present
            assert set(qs["yes"]) <= present and set(qs["no"]) <= absent
            assert len(qs["yes"]) == len(qs["no"]) == min(3, len(present), len(absent))
            n = len(qs["no"])
            if s == "popular":
                assert sorted(absent, key=lambda c: (-freq[c], c))[:n] == qs["no"]
            if s == "adversarial":
                score = {c: sum(co[(p, c)] for p in present) for c in absent}
                assert min(score[c] for c in qs["no"]) >= max(
                    [score[c] for c in absent - set(qs["no"])] or [0]
                )
    # Positives are shared by the three splits; the random negatives differ from the popular ones.
    assert [r for r in rows["random"] if r["label"] == "yes"] == [
        r for r in rows["popular"] if r["label"] == "yes"
    ]
    assert [r["text"] for r in rows["random"]] != [r["text"] for r in rows["popular"]]


def test_mme_one_yes_one_no_per_image(written, records):
    txts = sorted(written["mme"].glob("*/*.txt"))
    assert txts
    for txt in txts:
        lines = [ln.split("\t") for ln in txt.read_text().splitlines()]
        assert [a for _, a in lines] == ["Yes", "No"]
        assert all(q.endswith(" Please answer yes or no.") for q, _ in lines)
        assert (txt.parent / f"{txt.stem}.jpg").is_file()
        if txt.parent.name == "existence":
            present = _present(records[txt.stem])
            cats = [re.match(r"Is there an? (\w+) in this image\?", q).group(1) for q, _ in lines]
            assert cats[0] in present and cats[1] not in present
    subtasks = Counter(t.parent.name for t in txts)
    assert max(subtasks.values()) - min(subtasks.values()) <= max(3, len(txts) // 3)  # balanced


def test_mmbench_circular_copies(written):
    path = written["mmbench"]
    with path.open(encoding="utf-8", newline="") as fh:
        rows = {int(r["index"]): r for r in csv.DictReader(fh, delimiter="\t")}
    mains = [i for i in rows if i < 1_000_000]
    for i in mains:
        m = rows[i]
        opts = [m[c] for c in "ABCD" if m[c]]
        assert 2 <= len(opts) <= 4 and len(m["image"]) > 100
        for k in range(1, len(opts)):
            r = rows[i + k * 1_000_000]
            assert r["question"] == m["question"] and r["image"] == str(i)
            assert [r[c] for c in "ABCD" if r[c]] == opts[k:] + opts[:k]
            assert r[r["answer"]] == m[m["answer"]]  # the right option text moved with its letter
        assert i + len(opts) * 1_000_000 not in rows
    bench = get_benchmark("mmbench")
    items = bench.load(path)
    assert len(items) == len(rows)
    # Right on every pass but one: the circular group fails.
    preds = {it.item_id: it.answers[0] for it in items}
    first_rotated = next(it for it in items if it.meta["index"] >= 1_000_000)
    preds[first_rotated.item_id] = next(k for k in first_rotated.options if k != first_rotated.answers[0])
    r = bench.score(preds, items)
    assert r["overall"] == pytest.approx(100 * (len(mains) - 1) / len(mains))


def test_seed_and_imagefolder_contents(written, records):
    doc = json.loads(written["seed_bench"].read_text())
    assert {q["question_type_id"] for q in doc["questions"]} <= {2, 3, 5, 9}
    assert all(q["answer"] in "ABCD" and q["data_type"] == "image" for q in doc["questions"])
    assert Counter(q["answer"] for q in doc["questions"]).most_common(1)[0][1] < len(doc["questions"]) * 0.6
    n_objects = Counter(o.name for r in records.values() for o in r.objects if o.source == "coco")
    crops = Counter(p.parent.name for p in written["imagefolder"].glob("*/*.jpg"))
    assert crops == n_objects  # world objects are never smaller than the minimum crop


def test_deterministic_and_sampled(world, written, tmp_path):
    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "world_benchmarks.json"
        }

    again = write_world_benchmarks(world, tmp_path / "again", "test", seed=0)
    assert digest(tmp_path / "again") == digest(written["vqav2"].parent)
    assert again["mmbench"].relative_to(tmp_path / "again") == written["mmbench"].relative_to(
        written["vqav2"].parent
    )
    few = write_world_benchmarks(
        world, tmp_path / "few", "test", seed=0, max_images=5, benchmarks=["seed_bench"]
    )
    assert set(few) == {"seed_bench"} and len(json.loads(few["seed_bench"].read_text())["questions"]) <= 5
    # A rewrite with fewer images leaves no stale files behind.
    write_world_benchmarks(
        world, tmp_path / "again", "test", seed=0, max_images=3, benchmarks=["imagefolder"]
    )
    full = sum(1 for _ in written["imagefolder"].rglob("*.jpg"))
    assert 0 < sum(1 for _ in (tmp_path / "again" / "imagefolder").rglob("*.jpg")) < full
    with pytest.raises(ValueError, match="unknown"):
        write_world_benchmarks(world, tmp_path / "x", benchmarks=["nope"])


def test_run_world_benchmarks_end_to_end(world, tmp_path):
    from test_eval_runner import _save_micro

    model = _save_micro(tmp_path / "m", seed=0)
    kw = {"max_images": 2, "pope_pairs": 1, "benchmarks": ["pope", "seed_bench"], "max_new_tokens": 3}
    res = run_world_benchmarks(model, world, tmp_path / "run", **kw)
    assert set(res["benchmarks"]) == {"pope", "seed_bench"}
    assert all(b["n_missing"] == 0 and b["n_generated"] > 0 for b in res["benchmarks"].values())
    assert (tmp_path / "run" / "results" / "results.md").exists()
    assert world_results_table(res).row_count >= 2
    again = run_world_benchmarks(model, world, tmp_path / "run", **kw)
    assert all(b["n_generated"] == 0 for b in again["benchmarks"].values())  # every answer from the cache
