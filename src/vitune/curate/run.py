"""Run a curation recipe: load inputs, apply caps, run the steps in order, mix, write the outputs.

Outputs in `out_dir`::

    instances/       the curated instance set (Parquet shards + manifest)
    llava.json       the same instances in LLaVA-1.5 JSON (with `task_name` when output.with_task)
    removed.jsonl    the ledger: every removed (or unreadable) record with its step and reason
    curation.json    counts per source / task / category before and after every step
    .cache/          per-step results and image hashes (safe to delete; makes re-runs resume)

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitune.curate import balance, dedup, select
from vitune.curate.filters import DEFAULT_ERROR_PATTERNS, DEFAULT_SOURCE_PATTERNS, FilterConfig, apply_filters
from vitune.curate.images import ImageHashes
from vitune.curate.recipe import Recipe, load_recipe
from vitune.data.instance import Instance
from vitune.data.ledger import Ledger
from vitune.data.llava import read_llava_json, write_llava_json
from vitune.data.store import iter_instances, read_manifest, write_instance_set
from vitune.utils.atomic import write_json
from vitune.utils.hashing import derive_seed, sha256_file

Progress = Callable[[str, int, int], None]
Removal = tuple[int, str, dict]
CACHE_FORMAT = "vitune.curate.step/1"


@dataclass
class Pool:
    """Everything loaded, in input order; steps refer to items by their index here."""

    items: list[Instance]
    source: list[str]
    category: list[str]
    image_path: list[str | None]  # resolved file, or None (no image, or no image_root)
    locator: list[str]
    files: dict[str, str]  # source name -> input path (for the ledger)
    hashes: ImageHashes

    def counts(self, idx: list[int]) -> dict[str, dict[str, int]]:
        return {
            "source": dict(sorted(Counter(self.source[i] for i in idx).items())),
            "task": dict(sorted(Counter(self.items[i].task for i in idx).items())),
            "category": dict(sorted(Counter(self.category[i] for i in idx).items())),
        }


def _digest(*parts: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\x1f")
    return h.hexdigest()


def _input_files(kind: str, path: Path) -> list[Path]:
    if kind == "instances":
        return [path / "manifest.json", *(path / s for s in read_manifest(path)["shards"])]
    return [path]


def load_pool(recipe: Recipe, ledger: Ledger, cache_dir: Path) -> tuple[Pool, str]:
    """Read every input; returns the pool and a digest of the input bytes and load options."""
    pool = Pool([], [], [], [], [], {}, ImageHashes(cache_dir / "image-hashes.tsv"))
    fingerprints = []
    for inp in recipe.inputs:
        path = Path(inp.path)
        if not path.exists():
            raise FileNotFoundError(f"input {inp.name!r}: {path} does not exist")
        fingerprints.append([inp.model_dump(), [sha256_file(f) for f in _input_files(inp.kind, path)]])
        if inp.kind == "instances":
            items = list(iter_instances(path))
        else:
            sub = Ledger()
            # Vision-Flan rows must carry task_name: an empty default marks the ones that do not
            default = "" if inp.kind == "vision_flan" else (inp.task or inp.name)
            items = read_llava_json(path, sub, default_task=default)
            for r in sub.items:
                ledger.reject("curate.load", r.file, r.locator, r.reason, source=inp.name)
            for x in items:
                if not x.task:
                    ledger.reject(
                        "curate.load",
                        str(path),
                        f"[{x.meta.get('source_index')}]",
                        "vision_flan row without task_name",
                        source=inp.name,
                    )
            items = [x for x in items if x.task]
        pool.files[inp.name] = str(path)
        root = Path(inp.image_root) if inp.image_root else None
        for k, x in enumerate(items):
            pool.items.append(x)
            pool.source.append(inp.name)
            pool.category.append(str(x.meta.get("category") or inp.category or "uncategorized"))
            pool.image_path.append(
                str(root / x.image) if (root is not None and x.image is not None) else None
            )
            pool.locator.append(f"{inp.name}[{x.meta.get('source_index', k)}] id={x.id}")
    return pool, _digest("load", recipe.seed, fingerprints, recipe.caps.model_dump())


# ----------------------------------------------------------------------------------------------
# steps: each takes (pool, current indices, params) and returns (kept indices, removals)


def _image_keys(pool: Pool, idx: list[int]) -> list[str | None]:
    out: list[str | None] = []
    for i in idx:
        p = pool.image_path[i]
        if pool.items[i].image is None:
            out.append(None)
        elif p is not None and os.path.exists(p):
            out.append("sha256:" + pool.hashes.sha256(p))
        else:
            out.append("path:" + str(pool.items[i].image))  # no file to read: the path is the identity
    return out


def _local(fn_result: tuple[Any, list[Removal]], idx: list[int]) -> tuple[list[int], list[Removal]]:
    kept, removed = fn_result

    def remap(d: dict) -> dict:
        d = dict(d)
        if "kept_index" in d:
            d["kept_index"] = idx[d["kept_index"]]
        return d

    return [idx[int(k)] for k in kept], [(idx[i], r, remap(d)) for i, r, d in removed]


def run_caps(pool: Pool, idx: list[int], recipe: Recipe) -> tuple[list[int], list[Removal]]:
    removed: list[Removal] = []
    seed = recipe.seed
    per_input = {i.name: i.cap for i in recipe.inputs if i.cap is not None}
    stages: list[tuple[str, Any, Callable[[int], str]]] = []
    if per_input:
        stages.append(("input", per_input, lambda i: pool.source[i]))
    if recipe.caps.per_source is not None:
        stages.append(("source", recipe.caps.per_source, lambda i: pool.source[i]))
    if recipe.caps.tasks:
        stages.append(("named task", recipe.caps.tasks, lambda i: pool.items[i].task))
    if recipe.caps.per_task is not None:
        stages.append(("task", recipe.caps.per_task, lambda i: pool.items[i].task))
    for what, cap, key in stages:
        kept, rem = balance.cap_groups([key(i) for i in idx], cap, seed, f"caps.{what}", what)
        removed += [(idx[i], r, d) for i, r, d in rem]
        idx = [idx[k] for k in kept]
    return idx, removed


def _group_key(pool: Pool, by: str) -> Callable[[int], str]:
    if by == "source":
        return lambda i: pool.source[i]
    if by == "task":
        return lambda i: pool.items[i].task
    return lambda i: pool.category[i]


def run_mix(pool: Pool, idx: list[int], step: Any, seed: int, label: str) -> tuple[list[int], list[Removal]]:
    key = _group_key(pool, step.by)
    keys = [key(i) for i in idx]
    removed: list[Removal] = []
    if getattr(step, "cap", None) is not None:
        kept, rem = balance.cap_groups(keys, step.cap, seed, f"{label}.cap", step.by)
        removed += [(idx[i], r, d) for i, r, d in rem]
        idx, keys = [idx[k] for k in kept], [keys[k] for k in kept]
    if step.weights is not None or step.temperature is not None or step.target_size is not None:
        sizes = dict(Counter(keys))
        quotas = balance.mixture_quotas(sizes, step.target_size, step.weights, step.temperature)
        kept, rem = balance.sample_groups(
            keys, quotas, seed, f"{label}.mixture", f"mixture quota by {step.by}"
        )
        removed += [(idx[i], r, d) for i, r, d in rem]
        idx = [idx[k] for k in kept]
    return idx, removed


def run_step(pool: Pool, idx: list[int], step: Any, seed: int, label: str, progress: Progress | None):
    items = [pool.items[i] for i in idx]
    t = step.type
    if t == "filter":
        cfg = FilterConfig(
            checks=step.checks,
            max_reply_words=step.max_reply_words,
            leak_min_chars=step.leak_min_chars,
            source_patterns=step.source_patterns or DEFAULT_SOURCE_PATTERNS,
            error_patterns=step.error_patterns or DEFAULT_ERROR_PATTERNS,
        )
        if "missing_image" in step.checks:
            lacking = sorted(
                {pool.source[i] for i in idx if pool.items[i].image and pool.image_path[i] is None}
            )
            if lacking:
                raise ValueError(f"{label}: missing_image needs image_root on input(s) {lacking}")
        return _local(apply_filters(items, cfg, [pool.image_path[i] for i in idx]), idx)
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
        )
        return _local(res, idx)
    if t == "dedup_image":
        with_img = [k for k, i in enumerate(idx) if pool.items[i].image is not None]
        lacking = sorted({pool.source[idx[k]] for k in with_img if pool.image_path[idx[k]] is None})
        if lacking:
            raise ValueError(f"{label}: dedup_image needs image_root on input(s) {lacking}")
        pool.hashes.hash_size = step.hash_size
        ph = np.empty(len(with_img), dtype=np.uint64)
        for n, k in enumerate(with_img):
            ph[n] = pool.hashes.phash(pool.image_path[idx[k]])  # type: ignore[arg-type]
            if progress and n % 1000 == 0:
                progress(label, n, len(with_img))
        sub = [idx[k] for k in with_img]
        _kept, removed = _local(
            dedup.dedup_images(
                [pool.items[i] for i in sub], ph, max_distance=step.max_distance, per=step.per, keep=step.keep
            ),
            sub,
        )
        gone = {i for i, _, _ in removed}
        return [i for i in idx if i not in gone], removed
    if t == "balance_yes_no":
        return _local(
            balance.balance_yes_no(items, step.yes_ratio, derive_seed(seed, label), by_task=step.by_task), idx
        )
    if t == "select":
        size = step.size if step.size is not None else round(step.fraction * len(idx))
        s = derive_seed(seed, label)
        if step.method == "random":
            chosen = select.select_random(len(idx), size, s)
        elif step.method == "informative":
            vocab = select.load_vocabulary(
                step.vocabulary, step.vocabulary_files, step.vocabulary_min_count, step.vocabulary_max_size
            )
            chosen = select.select_informative([dedup.instance_text(x) for x in items], vocab, size, s)
        else:
            emb, _ = select.embed(
                [dedup.instance_text(x) for x in items],
                model=step.embedding_model,
                dim=step.embedding_dim,
                seed=s,
            )
            if step.algorithm == "kcenter":
                chosen = select.kcenter_greedy(emb, size, s)
            else:
                chosen = select.cluster_balanced(emb, size, s, step.clusters)
        keep = set(chosen.tolist())
        why = f"not selected ({step.method})"
        return [idx[k] for k in sorted(keep)], [(idx[k], why, {}) for k in range(len(idx)) if k not in keep]
    if t == "mix":
        return run_mix(pool, idx, step, seed, label)
    raise ValueError(f"unknown step type {t!r}")  # pragma: no cover - the schema rejects it first


# ----------------------------------------------------------------------------------------------
# cache


def _cache_path(cache_dir: Path, label: str, key: str) -> Path:
    return cache_dir / "steps" / f"{label}-{key[:16]}.json"


def _cached(path: Path, key: str) -> tuple[list[int], list[Removal]] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("format") != CACHE_FORMAT or data.get("key") != key:
        return None
    return data["kept"], [(int(i), r, d) for i, r, d in data["removed"]]


def _reconcile(label: str, before: list[int], kept: list[int], removed: list[Removal]) -> None:
    gone = [i for i, _, _ in removed]
    if (
        len(before) != len(kept) + len(removed)
        or set(before) != set(kept) | set(gone)
        or set(kept) & set(gone)
    ):
        raise RuntimeError(
            f"step {label}: counts do not reconcile ({len(before)} in, {len(kept)} kept, {len(gone)} removed)"
        )


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
    ledger = Ledger()
    pool, key = load_pool(recipe, ledger, cache_dir)
    idx = list(range(len(pool.items)))
    if progress:
        progress("load", len(idx), len(idx))
    loaded = {"count": len(idx), "unreadable": len(ledger), **pool.counts(idx)}

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

    steps_out: list[dict[str, Any]] = []
    cached_flags: list[bool] = []
    for k, (label, step) in enumerate(plan):
        params = (
            step.model_dump()
            if step is not None
            else {"caps": c.model_dump(), "inputs": [i.cap for i in recipe.inputs]}
        )
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
            kept = sorted(int(i) for i in kept)
            removed = sorted(((int(i), r, d) for i, r, d in removed), key=lambda t: t[0])
            _reconcile(label, idx, kept, removed)
            write_json(
                path,
                {"format": CACHE_FORMAT, "key": key, "kept": kept, "removed": [list(t) for t in removed]},
            )
            pool.hashes.save()
        else:
            kept, removed = hit
            _reconcile(label, idx, kept, removed)
        cached_flags.append(hit is not None)
        for i, reason, detail in removed:
            d = dict(detail)
            if "kept_index" in d:
                d["kept_locator"] = pool.locator[d.pop("kept_index")]
            ledger.reject(
                f"curate.{label}",
                pool.files[pool.source[i]],
                pool.locator[i],
                reason,
                source=pool.source[i],
                **d,
            )
        steps_out.append(
            {
                "step": label,
                "type": "caps" if step is None else getattr(step, "type", "mixture"),
                "in": len(idx),
                "kept": len(kept),
                "removed": len(removed),
                "removed_by_reason": dict(sorted(Counter(r for _, r, _ in removed).items())),
                "before": pool.counts(idx),
                "after": pool.counts(kept),
            }
        )
        idx = kept
        if progress:
            progress(label, len(idx), steps_out[-1]["in"])

    order = list(idx)
    if recipe.output.shuffle:
        rng = np.random.Generator(np.random.PCG64(derive_seed(recipe.seed, "output.shuffle")))
        order = [order[k] for k in rng.permutation(len(order))]
    final = []
    for i in order:
        x = pool.items[i]
        meta = dict(x.meta)
        meta.setdefault("source", pool.source[i])
        meta.setdefault("category", pool.category[i])
        final.append(Instance(x.id, x.image, x.task, x.turns, meta))

    summary: dict[str, Any] = {
        "format": "vitune.curation/1",
        "recipe": recipe.name,
        "seed": recipe.seed,
        "loaded": loaded,
        "steps": steps_out,
        "final": {"count": len(final), **pool.counts(idx)},
        "removed_total": len(ledger),
        "removed_by_stage": dict(sorted(Counter(r.stage for r in ledger.items).items())),
    }
    write_instance_set(
        final,
        out / "instances",
        shard_size=recipe.output.shard_size,
        extra={"curation": {"recipe": recipe.name, "seed": recipe.seed, "count": len(final)}},
    )
    if recipe.output.llava_json:
        write_llava_json(final, out / "llava.json", with_task=recipe.output.with_task)
    ledger.write(out / "removed.jsonl")
    write_json(out / "curation.json", summary, indent=2)
    return {**summary, "cached": cached_flags}
