"""Run any registered benchmark on a model: load -> batched greedy generation (cached) -> official score.

    results = run_benchmarks([BenchSpec("pope", Path("data/pope"))], "runs/m1", model_dir="ckpt")
    print(results_markdown(results))

Response cache (`<out>/responses.jsonl`, or `cache_path`): one JSON row per answered item,
`{"key", "bench", "item_id", "response"}`, appended and fsync'ed after every chunk of generation, so
a killed run loses at most one chunk and a re-run generates only what is missing. The key is the
SHA-256 of everything that changes an answer: the model fingerprint (names, sizes and mtimes of the
checkpoint's weight, config, tokenizer and processor files, so a model retrained at the same path
never gets the old answers), the benchmark, the item id, the prompt text, the image (its relative
path and size, or a digest of embedded bytes) and the generation parameters (template name and
its rendered text, `max_new_tokens`, greedy, dtype). The batch size is NOT in the key: `Generator` gives identical
answers for every batch size (tested). One writer per cache file at a time.

Output folder: `responses.jsonl` (the cache), `results.json` and `results.md` (overall and
per-category scores of every benchmark, written atomically; a later run of the same model and
parameters into the same folder adds or replaces its benchmarks), and per benchmark
`<name>/predictions.json` (item id -> answer) and `<name>/scores.json` (the scorer's full output).

Scoring protocol (`protocol=`, `vitune eval --protocol paper|official`, see
`eval/benchmarks/base.py`): each benchmark entry of results.json records the `protocol` it was
scored under and its `scorer_version`. Neither is in the response cache key on purpose: the answers
do not depend on how they are scored, so re-running with another protocol rescores the cached
answers without loading the model, and the entry (with its protocol) replaces the old one.

Honest results: before anything is generated, every benchmark is loaded (a missing path, or files
holding no item, is a `BenchmarkDataError`) and every item that still needs an answer has its image
checked (one error listing everything missing). Each entry counts empty answers (`n_empty`) and
answers the official rule cannot read (`n_unparsable`, `Benchmark.unparsable`), with their shares
of the items (`empty_share`, `unparsable_share`, percent); tables show them and warn above
`ANSWER_WARN_SHARE` percent.

Benchmarks with `needs_judge` get `judge=` in `score`; the judge is built by `judge_factory` once,
and only when such a benchmark is run (before any generation, so a missing judge fails fast).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune import __version__
from vitune.data.ledger import Ledger
from vitune.data.paths import UnsafePathError, resolve_image
from vitune.data.templates import saved_template
from vitune.eval.benchmarks import BenchItem, Benchmark, get_benchmark, to_gen_item
from vitune.eval.benchmarks.base import BenchmarkDataError, image_problems
from vitune.eval.health import (  # noqa: F401 - re-exported: the runner's public helpers
    ANSWER_WARN_SHARE,
    answer_health,
    answer_warnings,
    check_files,
    missing_files,
    protocol_label,
    protocol_mismatches,
)
from vitune.eval.parallel import Ranks, current_ranks, leftover_rank_files, merge_rank_files, rank_file
from vitune.models.base import AnswerFn, ModelSource, model_fingerprint  # noqa: F401  (re-exported)
from vitune.models.sources import generation_params, local_source
from vitune.utils.atomic import write_json, write_text
from vitune.utils.hashing import derive_seed

log = logging.getLogger(__name__)

CACHE_FILE = "responses.jsonl"
RESULTS_FILE = "results.json"
MARKDOWN_FILE = "results.md"

REJECTED_FILE = "rejected.jsonl"  # per benchmark: items not asked (bad image), with the reason


@dataclass(frozen=True)
class BenchSpec:
    """A benchmark to run: registry `name`, the `path` its loader reads, where its images are."""

    name: str
    path: Path
    image_root: Path | None = None  # default: `path` when it is a folder, else its parent
    options: dict[str, Any] = field(default_factory=dict)  # constructor options of the benchmark

    @property
    def images(self) -> Path:
        if self.image_root is not None:
            return Path(self.image_root)
        return self.path if self.path.is_dir() else self.path.parent


def parse_bench(text: str) -> BenchSpec:
    """`NAME=PATH` (the CLI's `--bench`)."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ValueError(f"expected NAME=PATH, got {text!r}")
    return BenchSpec(name.strip(), Path(path.strip()))


def cache_key(
    model: str, bench: str, item_id: str, prompt: str, image: str, params: Mapping[str, Any]
) -> str:
    blob = json.dumps(
        {"model": model, "bench": bench, "item": item_id, "prompt": prompt, "image": image, "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def image_ref(item: BenchItem, image_root: Path) -> str:
    """What identifies an item's image in the cache key, without reading (possibly huge) image files."""
    if item.image is None:
        return ""
    if isinstance(item.image, bytes):
        return "bytes:" + hashlib.blake2b(item.image, digest_size=16).hexdigest()
    try:
        path = resolve_image(image_root, item.image)
    except UnsafePathError:
        return f"{item.image}:unsafe"  # never looked at: the item is refused before generation
    size = path.stat().st_size if path.exists() else -1  # a missing image is refused before generation
    return f"{item.image}:{size}"


class ResponseCache:
    """Append-only JSONL of answered items, keyed by `cache_key`; durable after every `append`."""

    def __init__(self, path: str | os.PathLike, write_path: str | os.PathLike | None = None) -> None:
        """`write_path`: where `append` writes, when not `path` (a data-parallel process's own file)."""
        self.path = Path(path)
        self.write_path = Path(write_path) if write_path is not None else self.path
        self.responses: dict[str, str] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            # A kill during a write leaves a last row without its newline; appending after it would
            # glue two rows together, so cut the file back to its last complete row.
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping a partial last row (%d bytes)", self.path, len(data) - keep)
            with self.path.open("r+b") as fh:
                fh.truncate(keep)
            data = data[:keep]
        for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                self.responses[row["key"]] = str(row["response"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{self.path}:{n}: bad cache row ({e})") from e

    def get(self, key: str) -> str | None:
        return self.responses.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.responses

    def __len__(self) -> int:
        return len(self.responses)

    def append(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        """Rows `(key, bench, item_id, response)`, on disk (fsync) when this returns."""
        rows = list(rows)
        if not rows:
            return
        self.write_path.parent.mkdir(parents=True, exist_ok=True)
        with self.write_path.open("a", encoding="utf-8") as fh:
            for key, bench, item_id, response in rows:
                row = {"key": key, "bench": bench, "item_id": item_id, "response": response}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        for key, _, _, response in rows:
            self.responses[key] = response


def select_items(
    bench: Benchmark, items: list[BenchItem], limit: int | None, seed: int = 0
) -> list[BenchItem]:
    """`limit` whole groups (see `Benchmark.group_key`) drawn with a fixed seed, in load order.

    A sample rather than the first N: POPE's files, for one, come one negative-sampling split
    after the other. The seed depends only on the benchmark name, so runs with the same limit
    see the same items (and hit the cache).
    """
    if limit is None:
        return items
    groups: dict[str, list[BenchItem]] = {}
    for it in items:
        groups.setdefault(bench.group_key(it), []).append(it)
    if limit >= len(groups):
        return items
    keys = list(groups)
    chosen = set(random.Random(derive_seed(seed, "eval.limit", bench.name)).sample(keys, limit))
    return [it for it in items if bench.group_key(it) in chosen]


def load_benchmark(
    spec: BenchSpec, *, protocol: str | None = None, limit: int | None = None
) -> tuple[Benchmark, list[BenchItem]]:
    """The benchmark (under `protocol`) and its selected items; a missing path, unreadable files or
    no item at all is a `BenchmarkDataError` naming the benchmark and the path."""
    bench = get_benchmark(spec.name, protocol=protocol, **spec.options)
    if not spec.path.exists():
        raise BenchmarkDataError(f"{spec.name}: {spec.path} does not exist")
    try:
        items = bench.load(spec.path)
    except BenchmarkDataError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
        raise BenchmarkDataError(f"{spec.name}: cannot read {spec.path}: {type(e).__name__}: {e}") from e
    if not items:
        raise BenchmarkDataError(f"{spec.name}: {spec.path} holds no benchmark item (empty or wrong folder?)")
    items = select_items(bench, items, limit)
    ids = [it.item_id for it in items]
    if len(set(ids)) != len(ids):
        raise BenchmarkDataError(f"{spec.name}: duplicate item ids in {spec.path}; predictions would be lost")
    return bench, items


def _category_value(v: Any) -> float | None:
    """A per-category entry as one number: a float, or the headline of a metrics dict."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, Mapping):
        for k in ("score", "f1", "accuracy", "overall", "total"):
            if isinstance(v.get(k), int | float):
                return float(v[k])
    return None


def _category_n(v: Any, n_per: Mapping[str, Any], cat: str) -> int | None:
    if isinstance(v, Mapping):
        for k in ("n", "n_questions"):
            if isinstance(v.get(k), int):
                return v[k]
    n = n_per.get(cat)
    return n if isinstance(n, int) else None


def groups_per_category(bench: Benchmark, items: Iterable[BenchItem]) -> dict[str, int]:
    """Scored units per category (an MMBench question with all its passes counts once)."""
    seen: dict[str, set[str]] = {}
    for it in items:
        seen.setdefault(it.category, set()).add(bench.group_key(it))
    return {c: len(g) for c, g in seen.items()}


def summarize(
    bench: Benchmark,
    spec: BenchSpec,
    scores: Mapping[str, Any],
    n_per_category: Mapping[str, int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The results.json entry of one benchmark: headline, per-category numbers, counts.

    A category's `n` comes from the scorer when it reports one, else from `n_per_category`.
    """
    per = scores.get("per_category") or {}
    n_per = {**(n_per_category or {}), **(scores.get("n_per_category") or {})}
    # Scores averaged over repeated judge runs (MM-Vet's num_run) carry their std across runs.
    stds = scores.get("per_category_std") or {}
    cats = {}
    for cat, v in per.items():
        value = _category_value(v)
        if value is not None:
            cats[str(cat)] = {"score": value, "n": _category_n(v, n_per, cat)}
            if isinstance(stds.get(cat), int | float):
                cats[str(cat)]["std"] = float(stds[cat])
    scalars = {
        k: v
        for k, v in scores.items()
        if k not in ("overall", "n", "n_missing", "metric", "benchmark")
        and isinstance(v, int | float | str)
        and not isinstance(v, bool)
    }
    return {
        "name": spec.name,
        "path": str(spec.path),
        "image_root": str(spec.images),
        "protocol": bench.active_protocol,
        "scorer_version": bench.scorer_version,
        "metric": scores.get("metric", bench.metric),
        "higher_is_better": bench.higher_is_better,
        "overall": float(scores["overall"]),
        "n": scores.get("n"),
        "n_missing": scores.get("n_missing", 0),
        "per_category": cats,
        "extra": scalars,
        **extra,
    }


def run_benchmark(
    spec: BenchSpec,
    out_dir: Path,
    cache: ResponseCache,
    get_answer_fn: Callable[[], AnswerFn],
    *,
    model_id: str,
    params: Mapping[str, Any],
    chunk_size: int,
    limit: int | None = None,
    judge: Any = None,
    progress: Any = None,
    protocol: str | None = None,
    loaded: tuple[Benchmark, list[BenchItem]] | None = None,
    ranks: Ranks | None = None,
) -> dict[str, Any] | None:
    """One benchmark: answer what the cache lacks, score, write `<out>/<name>/`; return its summary.

    `loaded`: the benchmark and items of `load_benchmark` when the caller has them already. Under a
    data-parallel launch (`ranks`) this process answers its shard of the uncached items; process 0
    then merges the others' answers, scores and returns the summary, the others None.
    """
    ranks = ranks or Ranks()
    bench, items = loaded if loaded is not None else load_benchmark(spec, protocol=protocol, limit=limit)
    root = spec.images
    keys = [
        cache_key(model_id, spec.name, it.item_id, it.question, image_ref(it, root), params) for it in items
    ]
    all_todo = [i for i, k in enumerate(keys) if k not in cache]
    if loaded is None:  # run_benchmarks checked every benchmark's files before generating any
        check_files(spec.name, spec.images, [items[i] for i in all_todo])
    # Files that exist but do not decode (corrupt, empty, a bomb) are not asked: ledgered, scored wrong.
    bad = image_problems([items[i] for i in all_todo], root)
    if ranks.is_main:
        _write_rejected(
            out_dir / spec.name / REJECTED_FILE, spec, [(items[all_todo[k]], r) for k, r in bad.items()]
        )
    all_todo = [i for k, i in enumerate(all_todo) if k not in bad]
    todo = ranks.shard(all_todo)
    n_cached = len(items) - len(all_todo) - len(bad)
    log.info("%s: %d items, %d cached, %d to generate", spec.name, len(items), n_cached, len(todo))
    task = None
    if progress is not None:
        task = progress.add_task(spec.name, total=len(items), completed=n_cached, info=f"{n_cached} cached")
    t0 = time.perf_counter()
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        answers = get_answer_fn()([to_gen_item(items[i], root) for i in chunk])
        if len(answers) != len(chunk):
            raise RuntimeError(f"{spec.name}: {len(answers)} answers for {len(chunk)} items")
        cache.append((keys[i], spec.name, items[i].item_id, a) for i, a in zip(chunk, answers, strict=True))
        if task is not None:
            progress.advance(task, len(chunk))
    gen_seconds = time.perf_counter() - t0
    if ranks.world > 1:
        ranks.barrier()  # every process's answers are on disk
        if not ranks.is_main:
            return None
        n_merged = merge_rank_files(cache)
        log.info("%s: %d of %d answers came from the other processes", spec.name, n_merged, len(all_todo))

    preds = {it.item_id: r for it, k in zip(items, keys, strict=True) if (r := cache.get(k)) is not None}
    # Every item was answered above; "wrong" (or the benchmark's own policy) makes any gap visible
    # as n_missing instead of a crash.
    kwargs: dict[str, Any] = {"missing": bench.missing_in_runs}
    if bench.needs_judge:
        kwargs["judge"] = judge
    scores = bench.score(preds, items, **kwargs)
    n_missing = len(items) - len(preds)
    if n_missing:
        log.warning("%s: %d item(s) without an answer, scored as wrong", spec.name, n_missing)
    bdir = out_dir / spec.name
    write_json(bdir / "predictions.json", preds, indent=1)
    write_json(bdir / "scores.json", scores, indent=2)
    return summarize(
        bench,
        spec,
        scores,
        groups_per_category(bench, items),
        n_items=len(items),
        n_generated=len(all_todo),
        n_cached=n_cached,
        n_processes=ranks.world,
        n_unanswered=n_missing,
        **answer_health(bench, preds, items),
        n_bad_images=len(bad),
        generation_seconds=round(gen_seconds, 3),
        items_per_s=round(len(all_todo) / gen_seconds, 2) if all_todo and gen_seconds > 0 else None,
    )


def _write_rejected(path: Path, spec: BenchSpec, bad: list[tuple[BenchItem, str]]) -> None:
    """`<bench>/rejected.jsonl`: the items not asked, with the reason (removed when there are none)."""
    if not bad:
        path.unlink(missing_ok=True)  # a previous run's, now stale
        return
    rejected = Ledger()
    for it, reason in bad:
        rejected.reject("eval.images", str(spec.path), f"item {it.item_id}", reason, image=str(it.image))
        log.warning("%s: item %s not asked: %s", spec.name, it.item_id, reason)
    rejected.write(path)


def run_benchmarks(
    specs: Sequence[BenchSpec],
    out_dir: str | os.PathLike,
    *,
    model_dir: str | os.PathLike | None = None,
    answer_fn: AnswerFn | None = None,
    model_id: str | None = None,
    source: ModelSource | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    limit: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    cache_path: str | os.PathLike | None = None,
    chunk_size: int | None = None,
    judge_factory: Callable[[], Any] | None = None,
    show_progress: bool = True,
    protocol: str | None = None,
) -> dict[str, Any]:
    """Run `specs` on one model; write results.json + results.md under `out_dir`; return the results.

    `protocol`: "paper" or "official" for every benchmark that distinguishes them (None: each one's
    default, `paper`). Every benchmark is loaded, and the images of what still needs an answer are
    checked, before anything is generated. Give `model_dir` (any registered model family, loaded only
    if something is not cached), a `source` (`vitune.models`: a checkpoint or an OpenAI-compatible
    server), or `answer_fn` with a `model_id` naming what answers (it replaces the fingerprint in the
    cache key). Answers are cached every `chunk_size` items (default: 8 batches). Under `accelerate
    launch` every process answers a shard and process 0 scores (`vitune.eval.parallel`); the others
    return an empty `benchmarks` mapping.
    """
    if sum(x is not None for x in (model_dir, answer_fn, source)) != 1:
        raise ValueError("give exactly one of model_dir, source and answer_fn")
    if answer_fn is not None and not model_id:
        raise ValueError("answer_fn needs a model_id (the cache key's model identity)")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"a benchmark is given twice: {names}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranks = current_ranks()
    if model_dir is not None:
        source = local_source(
            model_dir,
            device=ranks.device(device),
            dtype=dtype,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
        )
    fingerprint = source.identity() if source is not None else str(model_id)
    params = (
        source.params() if source is not None else generation_params(max_new_tokens, saved_template(None))
    )
    cache = _open_cache(Path(cache_path) if cache_path is not None else out / CACHE_FILE, ranks)

    # Every benchmark's files are read and checked before anything is generated.
    prepared = [load_benchmark(s, protocol=protocol, limit=limit) for s in specs]
    for spec, (_, items) in zip(specs, prepared, strict=True):
        keys = (
            cache_key(fingerprint, spec.name, it.item_id, it.question, image_ref(it, spec.images), params)
            for it in items
        )
        check_files(spec.name, spec.images, [it for it, k in zip(items, keys, strict=True) if k not in cache])

    # Fail before any generation when a judged benchmark has no judge; build the judge only if needed.
    judge = None
    if ranks.is_main and any(bench.needs_judge for bench, _ in prepared):
        if judge_factory is None:
            raise ValueError(
                "a benchmark needs an LLM judge: give judge options (--judge-base-url, --judge-model)"
            )
        judge = judge_factory()

    loaded: list[AnswerFn] = [answer_fn] if answer_fn is not None else []

    def get_answer_fn() -> AnswerFn:
        # The model is loaded at the first item the cache cannot answer, and once for all benchmarks.
        if not loaded:
            assert source is not None
            loaded.append(source.open())
        return loaded[0]

    results = _previous_results(out, fingerprint, params, limit) if ranks.is_main else {"benchmarks": {}}
    results.update(
        {
            "model": source.describe() if source is not None else str(model_id),
            "model_fingerprint": fingerprint,
            "params": params,
            "limit": limit,
            "vitune_version": __version__,
        }
    )
    progress = None
    if show_progress and ranks.is_main:
        from vitune.utils.progress import make_progress

        progress = make_progress()
        progress.start()
    try:
        for spec, done in zip(specs, prepared, strict=True):
            summary = run_benchmark(
                spec,
                out,
                cache,
                get_answer_fn,
                model_id=fingerprint,
                params=params,
                chunk_size=chunk_size or batch_size * 8,
                limit=limit,
                judge=judge,
                progress=progress,
                loaded=done,
                ranks=ranks,
            )
            if summary is None:  # a data-parallel process other than 0: it only answers
                continue
            results["benchmarks"][spec.name] = summary
            # Written after each benchmark: a later failure keeps the finished ones' results.
            write_results(out, results)
    finally:
        if progress is not None:
            progress.stop()
        if judge is not None and hasattr(judge, "close"):
            judge.close()
    return results


def _open_cache(path: Path, ranks: Ranks) -> ResponseCache:
    """The response cache; under a data-parallel launch, process 0 first merges what the processes of
    an earlier (killed) run left in rank files, and the others write to their own rank file."""
    if ranks.world == 1 and not leftover_rank_files(path):
        return ResponseCache(path)
    if ranks.is_main:
        cache = ResponseCache(path)
        merge_rank_files(cache)
    ranks.barrier()  # process 0's merge (and any cut of a partial row) is done before others read
    if not ranks.is_main:
        cache = ResponseCache(path, write_path=rank_file(path, ranks.rank))
    ranks.barrier()  # everyone has read the cache before process 0 appends to it
    return cache


def _previous_results(
    out: Path, fingerprint: str, params: Mapping[str, Any], limit: int | None
) -> dict[str, Any]:
    """Earlier results in `out` of the same model and settings (their benchmarks are kept), else empty."""
    path = out / RESULTS_FILE
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        same = (old.get("model_fingerprint"), old.get("params"), old.get("limit")) == (
            fingerprint,
            dict(params),
            limit,
        )
        if same:
            return old
        log.info("%s: results of another model or settings are replaced", path)
    return {"benchmarks": {}}


def write_results(out: Path, results: Mapping[str, Any]) -> None:
    write_json(out / RESULTS_FILE, results, indent=2)
    write_text(out / MARKDOWN_FILE, results_markdown(results))


def load_results(run: str | os.PathLike) -> dict[str, Any]:
    """A run's results.json (given the run folder or the file itself)."""
    p = Path(run)
    p = p / RESULTS_FILE if p.is_dir() else p
    return json.loads(p.read_text(encoding="utf-8"))


# ---- tables ------------------------------------------------------------------------------------

RESULT_COLUMNS = (
    "benchmark",
    "category",
    "metric",
    "protocol",
    "n",
    "score",
    "missing",
    "empty",
    "unparsable",
)
COMPARE_COLUMNS = ("benchmark", "category", "metric", "A", "B", "delta (B - A)")


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _fmt_std(v: float | None, std: float | None) -> str:
    """`mean ± std` for a score averaged over repeated judge runs, else the plain score."""
    return _fmt(v) if v is None or std is None else f"{v:.2f} ± {std:.2f}"


def _share(count: int | None, share: float | None) -> str:
    """`count (share%)`, or "—" for results written before answers were counted."""
    return "—" if count is None else f"{count} ({share or 0.0:.1f}%)"


def result_rows(results: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Rows of `RESULT_COLUMNS`: per benchmark the overall score, then its categories (indented)."""
    rows = []
    for name, b in results["benchmarks"].items():
        missing = b.get("n_missing", 0) or 0
        overall = _fmt_std(b["overall"], (b.get("extra") or {}).get("overall_std"))
        empty = _share(b.get("n_empty"), b.get("empty_share"))
        unparsable = _share(b.get("n_unparsable"), b.get("unparsable_share"))
        rows.append(
            (
                name,
                "overall",
                b["metric"],
                protocol_label(b),
                str(b.get("n") or ""),
                overall,
                str(missing),
                empty,
                unparsable,
            )
        )
        for cat, c in b["per_category"].items():
            n = "" if c["n"] is None else str(c["n"])
            rows.append(("", f"  {cat}", "", "", n, _fmt_std(c["score"], c.get("std")), "", "", ""))
    return rows


def _delta(x: float | None, y: float | None, higher_is_better: bool) -> str:
    if x is None or y is None:
        return "—"
    d = y - x
    tag = "" if abs(d) < 1e-9 else (" (better)" if (d > 0) == higher_is_better else " (worse)")
    return f"{d:+.2f}{tag}"


def compare_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Rows of `COMPARE_COLUMNS` over the union of both runs' benchmarks and categories.

    The delta is B - A; a trailing "(better)"/"(worse)" follows each benchmark's direction
    (lower CHAIR is better). A benchmark or category one run lacks shows "—". A benchmark scored
    under different protocols or scorer versions names both next to its metric.
    """
    rows = []
    ba, bb = a["benchmarks"], b["benchmarks"]
    for name in [*ba, *(n for n in bb if n not in ba)]:
        ra, rb = ba.get(name) or {}, bb.get(name) or {}
        ref = ra or rb
        up = ref.get("higher_is_better", True)
        oa, ob = ra.get("overall"), rb.get("overall")
        metric = ref["metric"]
        if ra and rb and protocol_label(ra) != protocol_label(rb):  # scored differently: say so
            metric += f" ({protocol_label(ra)} vs {protocol_label(rb)})"
        rows.append((name, "overall", metric, _fmt(oa), _fmt(ob), _delta(oa, ob, up)))
        ca, cb = ra.get("per_category", {}), rb.get("per_category", {})
        for cat in [*ca, *(c for c in cb if c not in ca)]:
            x = ca[cat]["score"] if cat in ca else None
            y = cb[cat]["score"] if cat in cb else None
            rows.append(("", f"  {cat}", "", _fmt(x), _fmt(y), _delta(x, y, up)))
    return rows


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    def cell(s: str) -> str:
        return s.strip().replace("|", "\\|")  # rich's indentation means nothing in Markdown

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def results_markdown(results: Mapping[str, Any]) -> str:
    head = f"# Benchmark results\n\nmodel: `{results.get('model', '')}` (fingerprint `{results.get('model_fingerprint', '')}`)"
    params = results.get("params", {})
    head += f", greedy, max_new_tokens {params.get('max_new_tokens')}"
    if results.get("limit") is not None:
        head += f", limit {results['limit']} per benchmark"
    warnings = "".join(f"\n**Warning**: {w}\n" for w in answer_warnings(results))
    return head + "\n\n" + markdown_table(RESULT_COLUMNS, result_rows(results)) + warnings


def results_table(results: Mapping[str, Any], title: str = "Benchmark results"):
    """A rich `Table` of `result_rows` (the CLI's and the quickstart's printout)."""
    from rich.table import Table

    table = Table(*RESULT_COLUMNS, title=title)
    for row in result_rows(results):
        table.add_row(*row, style="bold" if row[1] == "overall" else None)
    return table
