"""Curation at scale: N synthetic instruction records through exact dedup, MinHash LSH dedup and a
selection, with records/s per step, peak RSS, and datasketch's per-record MinHash loop as baseline.

Records look like SVIT/LLaVA instructions (question + 1-3 sentence answer, ~40-70 words) over
~N/40 images; 2% are exact copies and 3% near copies (a word or two changed) of earlier records.
The texts are generated first (timed apart, not counted) and held in memory like a real run's
records, so the peak RSS includes them.

    .venv/bin/python benchmarks/curate_scale.py --n 300000 --workers 2 [--baseline 5000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import time

import numpy as np

from vitune.curate.dedup import group_duplicates, minhash_clusters, minhash_signatures, normalize_text
from vitune.curate.select import cluster_balanced, hashed_tfidf, select_random

WORDS = [
    f"{a}{b}"
    for a in ("red", "big", "old", "tall", "dark", "wide", "soft", "new")
    for b in (
        "dog",
        "cat",
        "car",
        "tree",
        "man",
        "woman",
        "sign",
        "table",
        "bus",
        "kite",
        "boat",
        "cup",
        "sky",
        "road",
        "wall",
        "horse",
        "bird",
        "plate",
        "chair",
        "lamp",
    )
] + [
    "the",
    "a",
    "is",
    "on",
    "in",
    "near",
    "with",
    "of",
    "and",
    "there",
    "what",
    "where",
    "how",
    "many",
    "left",
    "right",
    "top",
    "bottom",
    "color",
    "holding",
    "standing",
    "sitting",
    "behind",
    "front",
]


def record(k: int) -> tuple[str, int]:
    """(text, image id) of record k: deterministic, with planted exact and near duplicates."""
    r = random.Random(k)
    if k > 100 and r.random() < 0.05:
        src = r.randrange(k - 100, k)
        text, img = record(src)
        if r.random() < 0.4:
            return text, img  # exact copy
        words = text.split()
        words[r.randrange(len(words))] = r.choice(WORDS)
        return " ".join(words), img  # near copy
    n = r.randint(40, 70)
    return " ".join(r.choice(WORDS) for _ in range(n)), k // 40


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4_200_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument(
        "--diversity-sample", type=int, default=50_000, help="kept records embedded for diversity"
    )
    ap.add_argument(
        "--baseline", type=int, default=5000, help="records for the datasketch baseline (0: skip)"
    )
    args = ap.parse_args()
    n = args.n
    print(f"n={n} workers={args.workers} cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")

    t0 = time.perf_counter()
    recs = [record(k) for k in range(n)]
    texts = [t for t, _ in recs]
    img = np.fromiter((i for _, i in recs), dtype=np.uint64, count=n)
    del recs
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    keys = np.empty(n, dtype="S16")
    for k, (t, i) in enumerate(zip(texts, img.tolist(), strict=True)):
        keys[k] = hashlib.blake2b((normalize_text(t) + f"\x1f{i}").encode(), digest_size=16).digest()
    rep = group_duplicates(keys)
    t_exact = time.perf_counter() - t0
    exact_dups = int((rep != np.arange(n)).sum())
    t0 = time.perf_counter()
    sig = minhash_signatures(texts, num_perm=args.num_perm, workers=args.workers, chunk=8192)
    t_sig = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels, _ = minhash_clusters(sig, args.threshold, scope_keys=img)
    t_lsh = time.perf_counter() - t0
    near = int((labels != np.arange(n)).sum())
    kept = np.flatnonzero((rep == np.arange(n)) & (labels == np.arange(n)))
    rss_dedup = rss_mb()
    t0 = time.perf_counter()
    size = max(1, round(len(kept) * 157_712 / 4_200_000))  # SVIT-core's share of SVIT
    chosen = select_random(len(kept), size, 0)
    t_sel = time.perf_counter() - t0
    m = min(args.diversity_sample, len(kept))
    t0 = time.perf_counter()
    emb = hashed_tfidf([texts[i] for i in kept[:m]], dim=128)
    div = cluster_balanced(emb, max(1, m // 5), 0)
    t_div = time.perf_counter() - t0
    print(f"{'step':<38}{'seconds':>10}{'records/s':>14}")
    rows = [
        ("generate records (not counted)", t_gen),
        ("exact dedup (normalize+digest+group)", t_exact),
        ("MinHash signatures", t_sig),
        ("MinHash LSH bands + verify + cluster", t_lsh),
    ]
    for name, t in rows:
        print(f"{name:<38}{t:>10.2f}{n / max(t, 1e-9):>14,.0f}")
    print(f"{'random selection (of kept)':<38}{t_sel:>10.2f}{len(kept) / max(t_sel, 1e-9):>14,.0f}")
    print(
        f"{f'diversity select (tfidf+kmeans, {m})':<38}{t_div:>10.2f}{m / max(t_div, 1e-9):>14,.0f}"
        f"   ({len(div):,} chosen)"
    )
    total = t_sig + t_exact + t_lsh
    print(
        f"exact duplicates {exact_dups:,}, near duplicates (in clusters) {near:,}, kept {len(kept):,}, selected {len(chosen):,}"
    )
    print(
        f"dedup total {total:.1f}s -> {n / total:,.0f} records/s; extrapolated to 4.2M: {total * 4.2e6 / n / 60:.1f} min"
    )
    print(
        f"peak RSS after dedup {rss_dedup:,.0f} MB (signatures {sig.nbytes / 2**20:,.0f} MB); "
        f"after selection {rss_mb():,.0f} MB (main process; pool workers hold one chunk each)"
    )

    if args.baseline:
        from datasketch import MinHash

        sample = [record(k)[0] for k in range(args.baseline)]
        t0 = time.perf_counter()
        for t in sample:
            ws = normalize_text(t).split()
            m = MinHash(num_perm=args.num_perm)
            for s in range(max(len(ws) - 4, 1)):
                m.update(" ".join(ws[s : s + 5]).encode())
        t_ds = time.perf_counter() - t0
        t0 = time.perf_counter()
        minhash_signatures(sample, num_perm=args.num_perm, workers=1)
        t_ours = time.perf_counter() - t0
        print(
            f"baseline datasketch MinHash.update loop (1 core): {args.baseline / t_ds:,.0f} records/s; "
            f"vectorized (1 core): {args.baseline / t_ours:,.0f} records/s; speedup x{t_ds / t_ours:.1f}"
        )


if __name__ == "__main__":
    main()
