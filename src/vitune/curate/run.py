"""Run a curation recipe: load inputs, apply caps, run the steps in order, mix, write the outputs.

Outputs in `out_dir`::

    instances/       the curated instance set (Parquet shards + manifest)
    llava.json       the same instances in LLaVA-1.5 JSON (with `task_name` when output.with_task)
    removed.jsonl    the ledger: every removed (or unreadable) record with its step and reason
    curation.json    counts per source / task / category before and after every step
    .cache/          per-step results and image hashes (safe to delete; makes re-runs resume)

Records stay columnar in a `pool.Pool` (one Arrow table) and are decoded a batch at a time, so a
run over millions of records holds arrays, not Python objects; the ledger is streamed to disk.
Every step works on indices into the loaded pool, and its result (kept indices + removals) is
cached under a key made of its parameters and the previous step's key (which chains back to the
input file checksums and load options). A re-run after a kill therefore redoes only the steps
that did not finish; a changed step invalidates itself and everything after it. Counts always
reconcile: for each step, in = kept + removed, and removed items are exactly those that left.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa

from vitune.curate import balance, dedup, select
from vitune.curate.filters import DEFAULT_ERROR_PATTERNS, DEFAULT_SOURCE_PATTERNS, FilterConfig, apply_filters
from vitune.curate.pool import ItemView, Pool, TextView, load_pool
from vitune.curate.recipe import Recipe, load_recipe
from vitune.data.images import DECODE_ERRORS
from vitune.data.instance import Instance
from vitune.data.ledger import Ledger, Rejection
from vitune.data.llava import write_llava_json
from vitune.data.store import write_instance_set
from vitune.utils.atomic import atomic_open, staged_dir, write_json
from vitune.utils.hashing import derive_seed

Progress = Callable[[str, int, int], None]
Removal = tuple[int, str, dict]
CACHE_FORMAT = "vitune.curate.step/2"


@dataclass
class Removals:
    """A step's removals, compact: pool indices with a reason code each, and the (sparse) details.

    Millions of records can leave in one step (a selection); tuples with a dict each would cost
    more than the records themselves.
    """

    index: np.ndarray  # int64 pool indices, ascending
    code: np.ndarray  # int32 index into `reasons`
    reasons: list[str]
    detail: dict[int, dict] = field(default_factory=dict)  # pool index -> detail, only where non-empty

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def of(cls, removed: list[Removal]) -> Removals:
        removed = sorted(removed, key=lambda t: t[0])
        reasons: dict[str, int] = {}
        code = np.fromiter(
            (reasons.setdefault(r, len(reasons)) for _, r, _ in removed), np.int32, len(removed)
        )
        index = np.fromiter((i for i, _, _ in removed), np.int64, len(removed))
        return cls(index, code, list(reasons), {int(i): d for i, _, d in removed if d})

    @classmethod
    def uniform(cls, index: np.ndarray, reason: str) -> Removals:
        return cls(np.asarray(index, np.int64), np.zeros(len(index), np.int32), [reason])

    def by_reason(self) -> dict[str, int]:
        n = np.bincount(self.code, minlength=len(self.reasons))
        return dict(sorted((r, int(n[k])) for k, r in enumerate(self.reasons) if n[k]))

    def __iter__(self) -> Iterator[Removal]:
        for i, c in zip(self.index.tolist(), self.code.tolist(), strict=True):
            yield i, self.reasons[c], self.detail.get(i, {})


def _digest(*parts: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\x1f")
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# steps: each takes (pool, current indices, params) and returns (kept indices, removals)


def _image_keys(pool: Pool, idx: np.ndarray) -> list[str | None]:
    assert pool.hashes is not None
    out: list[str | None] = []
    images = pool.images(idx)
    for img, p in zip(images, pool.image_paths(idx, images), strict=True):
        if img is None:
            out.append(None)
        elif p is not None and os.path.exists(p):
            out.append("sha256:" + pool.hashes.sha256(p))
        else:
            out.append("path:" + str(img))  # no file to read: the path is the identity
    return out


def _local(fn_result: tuple[Any, list[Removal]], idx: np.ndarray) -> tuple[np.ndarray, list[Removal]]:
    """Map a function's positions (into `idx`) back to pool indices."""
    kept, removed = fn_result

    def remap(d: dict) -> dict:
        if "kept_index" in d:
            d = dict(d)
            d["kept_index"] = int(idx[d["kept_index"]])
        return d

    return idx[np.asarray(kept, np.int64)], [(int(idx[i]), r, remap(d)) for i, r, d in removed]


def _names(codes: np.ndarray, vocab: list[str], idx: np.ndarray) -> list[str]:
    return [vocab[c] for c in codes[idx].tolist()]


def _group_names(pool: Pool, by: str, idx: np.ndarray) -> list[str]:
    if by == "source":
        return _names(pool.source, pool.sources, idx)
    if by == "task":
        return _names(pool.task, pool.tasks, idx)
    return _names(pool.category, pool.categories, idx)


def run_caps(pool: Pool, idx: np.ndarray, recipe: Recipe) -> tuple[np.ndarray, list[Removal]]:
    removed: list[Removal] = []
    seed = recipe.seed
    per_input = {i.name: i.cap for i in recipe.inputs if i.cap is not None}
    stages: list[tuple[str, Any, str]] = []
    if per_input:
        stages.append(("input", per_input, "source"))
    if recipe.caps.per_source is not None:
        stages.append(("source", recipe.caps.per_source, "source"))
    if recipe.caps.tasks:
        stages.append(("named task", recipe.caps.tasks, "task"))
    if recipe.caps.per_task is not None:
        stages.append(("task", recipe.caps.per_task, "task"))
    for what, cap, by in stages:
        kept, rem = balance.cap_groups(_group_names(pool, by, idx), cap, seed, f"caps.{what}", what)
        removed += [(int(idx[i]), r, d) for i, r, d in rem]
        idx = idx[np.asarray(kept, np.int64)]
    return idx, removed


def run_mix(
    pool: Pool, idx: np.ndarray, step: Any, seed: int, label: str
) -> tuple[np.ndarray, list[Removal]]:
    keys = _group_names(pool, step.by, idx)
    removed: list[Removal] = []
    if getattr(step, "cap", None) is not None:
        kept, rem = balance.cap_groups(keys, step.cap, seed, f"{label}.cap", step.by)
        removed += [(int(idx[i]), r, d) for i, r, d in rem]
        idx, keys = idx[np.asarray(kept, np.int64)], [keys[k] for k in kept]
    if step.weights is not None or step.temperature is not None or step.target_size is not None:
        sizes = dict(Counter(keys))
        quotas = balance.mixture_quotas(sizes, step.target_size, step.weights, step.temperature)
        kept, rem = balance.sample_groups(
            keys, quotas, seed, f"{label}.mixture", f"mixture quota by {step.by}"
        )
        removed += [(int(idx[i]), r, d) for i, r, d in rem]
        idx = idx[np.asarray(kept, np.int64)]
    return idx, removed


def _select(pool: Pool, idx: np.ndarray, step: Any, seed: int, label: str) -> tuple[np.ndarray, Removals]:
    size = step.size if step.size is not None else round(step.fraction * len(idx))
    s = derive_seed(seed, label)
    if step.method == "random":
        chosen = select.select_random(len(idx), size, s)
    elif step.method == "informative":
        vocab = select.load_vocabulary(
            step.vocabulary, step.vocabulary_files, step.vocabulary_min_count, step.vocabulary_max_size
        )
        chosen = select.select_informative(TextView(pool, idx), vocab, size, s)
    else:
        emb, _ = select.embed(TextView(pool, idx), model=step.embedding_model, dim=step.embedding_dim, seed=s)
        if step.algorithm == "kcenter":
            chosen = select.kcenter_greedy(emb, size, s)
        else:
            chosen = select.cluster_balanced(emb, size, s, step.clusters)
    keep = np.zeros(len(idx), dtype=bool)
    keep[np.asarray(chosen, np.int64)] = True
    return idx[keep], Removals.uniform(idx[~keep], f"not selected ({step.method})")


def run_step(pool: Pool, idx: np.ndarray, step: Any, seed: int, label: str, progress: Progress | None):
    if len(idx) == 0:  # everything was rejected earlier: nothing to filter, dedup or select
        return np.zeros(0, np.int64), []
    items = ItemView(pool, idx)
    t = step.type
    if t == "filter":
        cfg = FilterConfig(
            checks=step.checks,
            max_reply_words=step.max_reply_words,
            leak_min_chars=step.leak_min_chars,
            source_patterns=step.source_patterns or DEFAULT_SOURCE_PATTERNS,
            error_patterns=step.error_patterns or DEFAULT_ERROR_PATTERNS,
        )
        images = pool.images(idx)
        paths = pool.image_paths(idx, images)
        if "missing_image" in step.checks:
            lacking = sorted(
                {
                    pool.source_name(i)
                    for i, img, p in zip(idx.tolist(), images, paths, strict=True)
                    if img and p is None
                }
            )
            if lacking:
                raise ValueError(f"{label}: missing_image needs image_root on input(s) {lacking}")
        return _local(apply_filters(items, cfg, paths), idx)
    if t == "dedup_exact":
        keys = _image_keys(pool, idx) if step.use_image else [None] * len(idx)
        return _local(dedup.dedup_exact(items, keys, keep=step.keep), idx)
    if t == "dedup_minhash":
        scope = _image_keys(pool, idx) if step.scope == "image" else None
        params = dedup.MinHashParams(
            step.num_perm, step.shingle, step.threshold, derive_seed(seed, "minhash") & 0xFFFFFFFF
        )
        done = [0]

        def tick(k: int) -> None:
            done[0] += k
            if progress:
                progress(label, done[0], len(idx))

        workers = step.workers if len(idx) >= 20_000 else 1  # a pool costs more than it saves on small sets
        res = dedup.dedup_minhash(
            items,
            params=params,
            fields=step.fields,
            scope_keys=scope,
            keep=step.keep,
            workers=workers,
            progress=tick,
            texts=TextView(pool, idx, step.fields),
        )
        return _local(res, idx)
    if t == "dedup_image":
        assert pool.hashes is not None
        images = pool.images(idx)
        paths = pool.image_paths(idx, images)
        with_img = [k for k, img in enumerate(images) if img is not None]
        lacking = sorted({pool.source_name(idx[k]) for k in with_img if paths[k] is None})
        if lacking:
            raise ValueError(f"{label}: dedup_image needs image_root on input(s) {lacking}")
        pool.hashes.hash_size = step.hash_size
        hashed: list[int] = []
        values: list[int] = []
        unreadable: list[Removal] = []
        for n, k in enumerate(with_img):
            try:
                values.append(pool.hashes.phash(paths[k]))  # type: ignore[arg-type]
                hashed.append(k)
            except DECODE_ERRORS as e:  # a record's image, not the run, is what is broken
                why = f"{type(e).__name__}: {e}"
                unreadable.append((int(idx[k]), "unreadable image", {"image": paths[k], "error": why}))
            if progress and n % 1000 == 0:
                progress(label, n, len(with_img))
        sub = idx[np.asarray(hashed, np.int64)]
        ph = np.asarray(values, dtype=np.uint64)
        _kept, removed = _local(
            dedup.dedup_images(
                ItemView(pool, sub), ph, max_distance=step.max_distance, per=step.per, keep=step.keep
            ),
            sub,
        )
        removed = unreadable + removed
        gone = np.fromiter((i for i, _, _ in removed), np.int64, len(removed))
        return idx[~np.isin(idx, gone)], removed
    if t == "decontaminate":
        return _decontaminate(pool, idx, step, label, progress)
    if t == "balance_yes_no":
        return _local(
            balance.balance_yes_no(items, step.yes_ratio, derive_seed(seed, label), by_task=step.by_task), idx
        )
    if t == "select":
        return _select(pool, idx, step, seed, label)
    if t == "mix":
        return run_mix(pool, idx, step, seed, label)
    raise ValueError(f"unknown step type {t!r}")  # pragma: no cover - the schema rejects it first


def _decontaminate(pool: Pool, idx: np.ndarray, step: Any, label: str, progress: Progress | None):
    from vitune.curate.decontam import DecontamConfig, decontaminate, split_entries

    cfg = DecontamConfig(
        split_entries(step.benchmarks), step.match, step.phash_distance, step.overlap, step.ngram
    )
    if not cfg.benchmarks:  # the bundled recipes' step until --var decontaminate=... is given
        return idx, []
    assert pool.hashes is not None
    images = pool.images(idx)
    paths = pool.image_paths(idx, images)
    lacking = sorted({pool.source_name(i) for i, img, p in zip(idx.tolist(), images, paths, strict=True)
                      if img and p is None})  # fmt: skip
    if lacking:
        raise ValueError(f"{label}: decontaminate needs image_root on input(s) {lacking}")

    def user_texts(positions: list[int]) -> list[str]:
        insts = pool.decode(idx[np.asarray(positions, np.int64)])
        return ["\n".join(t.text for t in inst.turns if t.role == "user") for inst in insts]

    tick = (lambda n, total: progress(label, n, total)) if progress else None
    return _local(decontaminate(paths, user_texts, cfg, pool.hashes, tick), idx)


# ----------------------------------------------------------------------------------------------
# cache: kept and removed indices as arrays (.npz), reasons and details as JSON inside it


def _cache_path(cache_dir: Path, label: str, key: str) -> Path:
    return cache_dir / "steps" / f"{label}-{key[:16]}.npz"


def _save(path: Path, key: str, kept: np.ndarray, removed: Removals) -> None:
    head = {
        "format": CACHE_FORMAT,
        "key": key,
        "reasons": removed.reasons,
        "detail": [[i, removed.detail[i]] for i in sorted(removed.detail)],
    }
    with atomic_open(path, "wb", encoding=None) as fh:
        np.savez(
            fh,
            head=np.array(json.dumps(head, ensure_ascii=False)),
            kept=kept,
            removed=removed.index,
            code=removed.code,
        )


def _cached(path: Path, key: str) -> tuple[np.ndarray, Removals] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            head = json.loads(str(z["head"]))
            if head.get("format") != CACHE_FORMAT or head.get("key") != key:
                return None
            removed = Removals(
                z["removed"], z["code"], head["reasons"], {int(i): d for i, d in head["detail"]}
            )
            return z["kept"], removed
    except (OSError, ValueError, KeyError):
        return None


def _reconcile(label: str, before: np.ndarray, kept: np.ndarray, removed: Removals) -> None:
    both = np.sort(np.concatenate([kept, removed.index]))
    if len(before) != len(both) or not np.array_equal(both, before):
        raise RuntimeError(
            f"step {label}: counts do not reconcile ({len(before)} in, {len(kept)} kept, {len(removed)} removed)"
        )


class _LedgerSink:
    """Rejections written to the open ledger file as they come, counted per stage."""

    def __init__(self, fh: IO[str]) -> None:
        self.fh, self.total, self.by_stage = fh, 0, Counter()

    def reject(self, stage: str, file: str, locator: str, reason: str, **detail: Any) -> None:
        self.fh.write(Rejection(stage, file, locator, reason, detail).to_json() + "\n")
        self.total += 1
        self.by_stage[stage] += 1


def _plan(recipe: Recipe) -> list[tuple[str, Any]]:
    plan: list[tuple[str, Any]] = []
    c = recipe.caps
    if (
        c.per_task is not None
        or c.per_source is not None
        or c.tasks
        or any(i.cap is not None for i in recipe.inputs)
    ):
        plan.append(("00-caps", None))
    plan += list(zip(recipe.step_names(), recipe.steps, strict=True))
    if recipe.mixture is not None:
        plan.append((f"{len(recipe.steps) + 1:02d}-mixture", recipe.mixture))
    return plan


def _final(pool: Pool, order: np.ndarray) -> Iterator[Instance]:
    """The output records, decoded a batch at a time, with their source and category in meta."""
    for x, i in zip(pool.iter_instances(order), order.tolist(), strict=True):
        x.meta.setdefault("source", pool.source_name(i))
        x.meta.setdefault("category", pool.categories[pool.category[i]])
        yield x


def curate(
    recipe_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    progress: Progress | None = None,
    *,
    variables: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run a recipe into `out_dir`; returns the summary (also written as curation.json).

    `progress(stage, done, total)` is called as stages advance. The returned summary also says
    which steps came from the cache (`cached`); that flag is not written, so outputs are
    byte-identical whether or not a run resumed.
    """
    recipe = load_recipe(recipe_path, variables)
    out = Path(out_dir)
    cache_dir = out / ".cache"
    load_ledger = Ledger()
    pool, fingerprints = load_pool(recipe, load_ledger, cache_dir)
    assert pool.hashes is not None
    key = _digest("load", recipe.seed, fingerprints, recipe.caps.model_dump())
    idx = np.arange(len(pool), dtype=np.int64)
    # The one path rule, before any step: an absolute or `..` image path never reaches llava.json.
    unsafe = pool.unsafe_paths()
    for i, reason in unsafe:
        load_ledger.reject("curate.load", pool.file(i), pool.locator(i), reason, source=pool.source_name(i))
    if unsafe:
        idx = np.setdiff1d(idx, np.asarray([i for i, _ in unsafe], np.int64))
    if progress:
        progress("load", len(idx), len(idx))
    loaded = {"count": len(idx), "unreadable": len(load_ledger), **pool.counts(idx)}

    steps_out: list[dict[str, Any]] = []
    cached_flags: list[bool] = []
    c = recipe.caps
    # Outputs go to a staging folder swapped in when complete (the `.cache` a re-run resumes from
    # stays in `out`): a failed re-run leaves the previous curation intact.
    with staged_dir(out, last=("instances",)) as stage, atomic_open(stage / "removed.jsonl", "w") as fh:
        ledger = _LedgerSink(fh)
        for r in load_ledger.items:
            ledger.reject(r.stage, r.file, r.locator, r.reason, **r.detail)
        for k, (label, step) in enumerate(_plan(recipe)):
            params = (
                step.model_dump()
                if step is not None
                else {"caps": c.model_dump(), "inputs": [i.cap for i in recipe.inputs]}
            )
            if getattr(step, "type", None) == "decontaminate":
                from vitune.curate.decontam import benchmarks_fingerprint

                params["benchmark_files"] = benchmarks_fingerprint(step.benchmarks)
            key = _digest(key, k, label, params, recipe.seed)
            path = _cache_path(cache_dir, label, key)
            hit = _cached(path, key)
            if hit is None:
                if step is None:
                    kept, removed = run_caps(pool, idx, recipe)
                elif label.endswith("-mixture"):
                    kept, removed = run_mix(pool, idx, step, recipe.seed, "mixture")
                else:
                    kept, removed = run_step(pool, idx, step, recipe.seed, label, progress)
                kept = np.sort(np.asarray(kept, np.int64))
                removed = removed if isinstance(removed, Removals) else Removals.of(removed)
                _reconcile(label, idx, kept, removed)
                _save(path, key, kept, removed)
                pool.hashes.save()
            else:
                kept, removed = hit
                _reconcile(label, idx, kept, removed)
            cached_flags.append(hit is not None)
            for i, reason, detail in removed:
                d = dict(detail)
                if "kept_index" in d:
                    d["kept_locator"] = pool.locator(d.pop("kept_index"))
                ledger.reject(
                    f"curate.{label}", pool.file(i), pool.locator(i), reason, source=pool.source_name(i), **d
                )
            steps_out.append(
                {
                    "step": label,
                    "type": "caps" if step is None else getattr(step, "type", "mixture"),
                    "in": len(idx),
                    "kept": len(kept),
                    "removed": len(removed),
                    "removed_by_reason": removed.by_reason(),
                    "before": pool.counts(idx),
                    "after": pool.counts(kept),
                }
            )
            idx = kept
            # Arrow's allocator keeps freed batches for reuse; between steps that is only footprint.
            pa.default_memory_pool().release_unused()
            if progress:
                progress(label, len(idx), steps_out[-1]["in"])

        order = idx
        if recipe.output.shuffle:
            rng = np.random.Generator(np.random.PCG64(derive_seed(recipe.seed, "output.shuffle")))
            order = idx[rng.permutation(len(idx))]
        summary: dict[str, Any] = {
            "format": "vitune.curation/1",
            "recipe": recipe.name,
            "seed": recipe.seed,
            "loaded": loaded,
            "steps": steps_out,
            "final": {"count": len(order), **pool.counts(idx)},
            "removed_total": ledger.total,
            "removed_by_stage": dict(sorted(ledger.by_stage.items())),
            # Where each input's image paths resolve: the dataset card's gallery reads thumbnails there.
            "image_roots": {i.name: i.image_root for i in recipe.inputs if i.image_root is not None},
        }
        write_instance_set(
            _final(pool, order),
            stage / "instances",
            shard_size=recipe.output.shard_size,
            extra={"curation": {"recipe": recipe.name, "seed": recipe.seed, "count": len(order)}},
        )
        if recipe.output.llava_json:
            write_llava_json(_final(pool, order), stage / "llava.json", with_task=recipe.output.with_task)
        write_json(stage / "curation.json", summary, indent=2)
    return {**summary, "cached": cached_flags}
