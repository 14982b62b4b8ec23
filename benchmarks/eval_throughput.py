"""Evaluation speed: batched vs batch-1 greedy generation, and scoring/caching 200K VQAv2 predictions.

1. Generation: a tiny LLaVA (`tiny128` preset, a BPE tokenizer trained on the fly from the world's
   text, weights drawn at random with a wide init so every answer depends on its input) answers the
   items of the world benchmarks (VQAv2, POPE, MME, MMBench, SEED, image folder) once with batch size
   1 and once batched, for each `--max-new-tokens`. Both must give IDENTICAL answers (else the script
   fails); it prints items/s side by side and the ratio (target: at least 4x).
2. Scoring: 200K synthetic VQAv2 predictions (`vqa_scoring_speed.synthetic`) scored through the
   registered `vqav2` benchmark (what `vitune eval` calls) next to the bare `score_vqa`, plus the
   runner's response cache: appending 200K answers in chunks of 64 (fsync each) and reloading them.

    .venv/bin/python benchmarks/eval_throughput.py [--items 160] [--batch-size 32] [--max-new-tokens 16 64]
        [--threads 1] [--n 200000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # for vqa_scoring_speed

import torch
from vqa_scoring_speed import synthetic

from vitune.eval import vqav2
from vitune.eval.benchmarks import BenchItem, get_benchmark, to_gen_item
from vitune.eval.generate import Generator
from vitune.eval.runner import ResponseCache, cache_key, generation_params
from vitune.eval.vqav2 import score_vqa
from vitune.eval.world_bench import write_world_benchmarks
from vitune.sources.merge import load_world
from vitune.train.model import build_model, processor_for
from vitune.train.tokenizer import train_tokenizer
from vitune.world import generate_world


def world_items(tmp: Path, n_items: int) -> tuple[list, list[str]]:
    """GenItems drawn round-robin from every world benchmark, and the world's texts (tokenizer corpus)."""
    generate_world(tmp / "world", 400, seed=0, workers=1)
    paths = write_world_benchmarks(tmp / "world", tmp / "bench", "test", seed=0)
    per = {name: get_benchmark(name).load(p) for name, p in paths.items()}
    roots = {name: (p if p.is_dir() else p.parent) for name, p in paths.items()}
    picked: list[tuple[str, BenchItem]] = []
    k = 0
    while len(picked) < n_items and any(k < len(v) for v in per.values()):
        picked += [(name, items[k]) for name, items in per.items() if k < len(items)]
        k += 1
    picked = picked[:n_items]
    texts = [
        c for r in load_world(tmp / "world", "train") for c in [*r.captions, *(q.question for q in r.qas)]
    ]
    texts += [it.question for _, it in picked]
    return [to_gen_item(it, roots[name]) for name, it in picked], texts


def tiny_model(tmp: Path, texts: list[str]) -> Path:
    tok = train_tokenizer(texts, vocab_size=1000)
    model = build_model("tiny128", tok, seed=0)
    torch.manual_seed(1)
    with torch.no_grad():
        for w in model.parameters():
            if w.dim() >= 2:
                w.normal_(0.0, 0.1)
    d = tmp / "model"
    model.save_pretrained(d)
    processor_for(model, tok).save_pretrained(d)
    return d


def timed(gen: Generator, items: list) -> tuple[list[str], float]:
    t0 = time.perf_counter()
    out = gen.generate(items)
    return out, time.perf_counter() - t0


def generation(args: argparse.Namespace, tmp: Path) -> None:
    items, texts = world_items(tmp, args.items)
    model_dir = tiny_model(tmp, texts)
    n = len(items)
    print(f"generation: {n} world benchmark items, tiny128 (random weights: every answer runs to the token "
          f"limit), greedy, best of {args.repeats}, {torch.get_num_threads()} torch thread(s), load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"  {'max_new_tokens':>14} | {'batch 1 items/s':>15} | {f'batch {args.batch_size} items/s':>16} | "
          f"{'speed-up':>8} | identical")  # fmt: skip
    for max_new in args.max_new_tokens:
        one = Generator.from_dir(model_dir, batch_size=1, max_new_tokens=max_new)
        many = Generator.from_dir(model_dir, batch_size=args.batch_size, max_new_tokens=max_new)
        one.generate(items[:2])  # warm-up: first-call allocations are not throughput
        many.generate(items[:2])
        # Best of `repeats`, batched and batch-1 alternating: other jobs on a shared machine slow
        # whichever run they overlap, and the minimum is the least disturbed one.
        t_one = t_many = float("inf")
        for _ in range(args.repeats):
            batched, t = timed(many, items)
            t_many = min(t_many, t)
            single, t = timed(one, items)
            t_one = min(t_one, t)
        same = sum(a == b for a, b in zip(single, batched, strict=True))
        print(f"  {max_new:>14} | {n / t_one:15.2f} | {n / t_many:16.2f} | {t_one / t_many:7.2f}x | {same}/{n}"
              f"  ({t_one:.1f} s vs {t_many:.1f} s, {len(set(single))} distinct answers)")  # fmt: skip
        if same != n:
            raise SystemExit("batched answers differ from batch-1 answers")


def cold() -> None:
    """Both scorers start with nothing normalized or prepared yet."""
    vqav2.normalize_answer.cache_clear()
    vqav2._prepare_cached.cache_clear()


def scoring(args: argparse.Namespace, tmp: Path) -> None:
    qas, preds = synthetic(args.n)
    items = [
        BenchItem(qa.question_id, "?", answers=qa.answers, category=qa.answer_type, subcategory=qa.question_type,
                  meta={"raw_question": "?"})
        for qa in qas
    ]  # fmt: skip
    bench = get_benchmark("vqav2")
    cold()
    t0 = time.perf_counter()
    res = bench.score(preds, items)
    t_bench = time.perf_counter() - t0
    cold()
    t0 = time.perf_counter()
    raw = score_vqa(preds, qas)
    t_raw = time.perf_counter() - t0
    assert abs(raw.overall - res["overall"]) < 1e-9
    print(f"scoring: {args.n:,} VQAv2 predictions, overall {res['overall']:.2f}")
    print(f"  registered benchmark .score : {t_bench:6.2f} s  {args.n / t_bench:10,.0f} predictions/s")
    print(f"  bare score_vqa              : {t_raw:6.2f} s  {args.n / t_raw:10,.0f} predictions/s")

    params = generation_params(16)
    rows = [(cache_key("m", "vqav2", q, "?", "", params), "vqav2", q, p) for q, p in preds.items()]
    cache = ResponseCache(tmp / "responses.jsonl")
    t0 = time.perf_counter()
    for i in range(0, len(rows), 64):
        cache.append(rows[i : i + 64])
    t_append = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = ResponseCache(tmp / "responses.jsonl")
    t_load = time.perf_counter() - t0
    assert len(again) == len(rows)
    print(f"  response cache: append {t_append:.2f} s ({len(rows) // 64 + 1} fsync'ed chunks of 64), "
          f"reload {t_load:.2f} s ({len(rows) / t_load:,.0f} rows/s)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each mode (the best counts)")
    ap.add_argument("--n", type=int, default=200_000, help="VQAv2 predictions to score")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--skip-generation", action="store_true")
    args = ap.parse_args()
    if args.threads:
        # On a shared machine one thread per process is often faster than two fighting for cores.
        torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_generation:
            generation(args, Path(d))
        scoring(args, Path(d))


if __name__ == "__main__":
    main()
