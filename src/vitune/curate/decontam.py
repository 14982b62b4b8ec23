"""Benchmark decontamination: training samples whose image is a benchmark's, or whose question is one.

The benchmarks are read through the evaluation registry's own loaders (`vitune eval --bench
NAME=PATH` folders), so every format the evaluator reads can be decontaminated against. A training
image matches a benchmark image when its file bytes are identical (sha256) or, for re-encoded or
resized copies, when its perceptual hash is within `phash_distance` bits (pigeonhole banding over
the benchmark hashes, so 1M training images against 50K benchmark images is not a 5e10 comparison).

Two policies (`match`):
- `image` (default): every sample on a benchmark image is removed: the model must not have seen the
  picture it is tested on.
- `question`: only samples on a benchmark image whose user turns contain a benchmark question of
  that image are removed (normalized word n-grams: lowercase, punctuation as spaces; at least
  `overlap` of the benchmark question's n-grams present), so a caption of the image stays.

Every removal is ledgered with the benchmark, the item it matched and how (sha256, pHash distance,
question overlap).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from vitune.curate.images import ImageHashes, popcount
from vitune.data.images import DECODE_ERRORS

_NON_WORD = re.compile(r"[^0-9a-z]+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of the normalized text (the whole text as one gram when it is shorter)."""
    words = _NON_WORD.sub(" ", text.lower()).split()
    if len(words) <= n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass
class BenchImage:
    """One distinct benchmark image and the items (benchmark, item id, raw question) asked on it."""

    sha256: str
    phash: int
    items: list[tuple[str, str, str]] = field(default_factory=list)


def _phash_bytes(data: bytes) -> int:
    import io

    import imagehash

    with Image.open(io.BytesIO(data)) as im:
        return int(str(imagehash.phash(im)), 16)


def _phash_or_none(hashes: ImageHashes, path: str) -> int | None:
    try:
        return hashes.phash(path)
    except DECODE_ERRORS:
        return None


def benchmark_images(entries: Sequence[str], hashes: ImageHashes) -> list[BenchImage]:
    """Every distinct image of the benchmarks `NAME=PATH` (read by the eval registry's loaders)."""
    from vitune.data.paths import resolve_image
    from vitune.eval.benchmarks import get_benchmark
    from vitune.eval.runner import parse_bench

    by_sha: dict[str, BenchImage] = {}
    for entry in entries:
        spec = parse_bench(entry)
        if not spec.path.exists():
            raise FileNotFoundError(f"decontaminate: benchmark {spec.name}: {spec.path} does not exist")
        for it in get_benchmark(spec.name).load(spec.path):
            if it.image is None:
                continue
            if isinstance(it.image, bytes):
                sha, ph = hashlib.sha256(it.image).hexdigest(), None
            else:
                path = str(resolve_image(spec.images, it.image))
                sha, ph = hashes.sha256(path), path
            img = by_sha.get(sha)
            if img is None:
                try:
                    phash = _phash_bytes(it.image) if ph is None else hashes.phash(ph)  # type: ignore[arg-type]
                except DECODE_ERRORS as e:
                    raise ValueError(
                        f"decontaminate: benchmark {spec.name} item {it.item_id}: unreadable image ({e})"
                    ) from e
                img = by_sha[sha] = BenchImage(sha, phash)
            img.items.append((spec.name, it.item_id, str(it.meta.get("raw_question", it.question))))
    return list(by_sha.values())


def nearest_hashes(queries: np.ndarray, refs: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """For each query hash, the index of the nearest ref hash within `max_distance` bits (-1: none)
    and that distance. Pigeonhole banding: a match agrees exactly on one of max_distance+1 bands."""
    q = np.asarray(queries, np.uint64)
    r = np.asarray(refs, np.uint64)
    best = np.full(len(q), -1, np.int64)
    dist = np.full(len(q), 65, np.int64)
    if not len(q) or not len(r):
        return best, dist
    nb = max_distance + 1
    off = 0
    for k in range(nb):
        width = 64 // nb + (1 if k < 64 % nb else 0)
        mask = np.uint64((1 << width) - 1)
        rk, qk = (r >> np.uint64(off)) & mask, (q >> np.uint64(off)) & mask
        off += width
        order = np.argsort(rk, kind="stable")
        sk = rk[order]
        lo, hi = np.searchsorted(sk, qk, "left"), np.searchsorted(sk, qk, "right")
        for qi in np.flatnonzero(hi > lo):
            cand = order[lo[qi] : hi[qi]]
            d = popcount(r[cand] ^ q[qi]).astype(np.int64)
            j = int(np.argmin(d))
            if d[j] <= max_distance and d[j] < dist[qi]:
                best[qi], dist[qi] = cand[j], d[j]
    return best, dist


@dataclass(frozen=True)
class DecontamConfig:
    benchmarks: tuple[str, ...]
    match: str = "image"  # image | question
    phash_distance: int | None = 4
    overlap: float = 0.8
    ngram: int = 3


def decontaminate(
    paths: Sequence[str | None],
    user_texts: Callable[[list[int]], list[str]],
    cfg: DecontamConfig,
    hashes: ImageHashes,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[int], list[tuple[int, str, dict[str, Any]]]]:
    """(kept positions, removals) of samples given their image paths (None: no image);
    `user_texts(positions)` returns those samples' user turns joined (read only for matches)."""
    bench = benchmark_images(cfg.benchmarks, hashes)
    by_sha = {b.sha256: k for k, b in enumerate(bench)}
    distinct = sorted({p for p in paths if p is not None})
    matched: dict[str, tuple[int, str]] = {}  # training image path -> (bench image, how)
    pending = []
    for n, p in enumerate(distinct):
        k = by_sha.get(hashes.sha256(p))
        if k is not None:
            matched[p] = (k, "sha256")
        elif cfg.phash_distance is not None:
            pending.append(p)
        if progress and n % 1000 == 0:
            progress(n, len(distinct))
    if pending:
        refs = np.array([b.phash for b in bench], np.uint64)
        hashed = [(p, h) for p in pending if (h := _phash_or_none(hashes, p)) is not None]
        pending = [p for p, _ in hashed]  # an undecodable training image has no near copy to find
        queries = np.array([h for _, h in hashed], np.uint64)
        near, dist = nearest_hashes(queries, refs, cfg.phash_distance or 0)
        for p, k, d in zip(pending, near.tolist(), dist.tolist(), strict=True):
            if k >= 0:
                matched[p] = (k, f"phash distance {d}")
    hits = [i for i, p in enumerate(paths) if p is not None and p in matched]
    removed: list[tuple[int, str, dict[str, Any]]] = []
    texts = user_texts(hits) if cfg.match == "question" and hits else []
    for n, i in enumerate(hits):
        img = bench[matched[paths[i]][0]]  # type: ignore[index]
        how = matched[paths[i]][1]  # type: ignore[index]
        if cfg.match == "image":
            name, item, _ = img.items[0]
            removed.append((i, "benchmark image", {"benchmark": name, "item": item, "match": how}))
            continue
        grams = ngrams(texts[n], cfg.ngram)
        for name, item, question in img.items:
            q = ngrams(question, cfg.ngram)
            share = len(q & grams) / len(q) if q else 0.0
            if share >= cfg.overlap:
                detail = {"benchmark": name, "item": item, "match": how, "overlap": round(share, 3)}
                removed.append((i, "benchmark question", detail))
                break
    gone = {i for i, _, _ in removed}
    return [i for i in range(len(paths)) if i not in gone], removed


def split_entries(entries: Sequence[str]) -> tuple[str, ...]:
    """`NAME=PATH` entries; one entry may hold several, comma-separated (a recipe variable), and
    empty ones (an unset variable) are dropped."""
    out = [e.strip() for entry in entries for e in str(entry).split(",")]
    return tuple(e for e in out if e)


def benchmarks_fingerprint(entries: Sequence[str]) -> list[str]:
    """A cheap identity of the benchmarks' annotation files (names, sizes, mtimes), for the step
    cache: a re-run after a benchmark file changes must redo the step."""
    from pathlib import Path

    from vitune.utils.hashing import dir_fingerprint

    out = []
    for entry in split_entries(entries):
        path = Path(entry.partition("=")[2])
        if path.is_dir():
            out.append(
                dir_fingerprint(path, ("*.json", "*.jsonl", "*.tsv", "*.parquet", "*.csv", "*/*.json"))
            )
        elif path.exists():
            out.append(f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns}")
    return out
