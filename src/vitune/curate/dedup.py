"""Deduplication: exact duplicates, near-duplicate text (MinHash LSH) and near-duplicate images (pHash;
hashing, its cache and the banded clustering live in `images.py`).

Every function here works on plain arrays (texts, keys, hashes) and returns, per item, the index of
the item that represents its cluster (`rep[i] == i` means "kept"). The instance-level wrappers at the
bottom turn that into kept indices plus removals that name the kept representative, so the ledger can
say "removed X as a near duplicate of Y".

Representative rule, stated once: `keep="first"` keeps the first item of a cluster in input order;
`keep="longest"` keeps the item with the longest text (ties: the first in input order).

MinHash is the bottleneck at millions of records, so it is vectorized end to end: words are hashed
once per distinct word (cached), k-word shingles are combined with numpy over a whole chunk of
documents, and the `num_perm` hash functions are applied to all shingles of a chunk as one
(shingles x perms) matrix reduced per document with `np.minimum.reduceat`. The hash family is
multiply-add-shift on 64-bit shingle hashes (no modulo, unlike datasketch's Mersenne-prime family),
which estimates Jaccard the same way; chunks are spread over worker processes. LSH banding
(bands x rows chosen by datasketch's own optimizer for the threshold) is done with numpy sorts,
and every candidate pair is verified against the full signature before it is merged.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from typing import Literal

import numpy as np

from vitune.curate.images import phash_clusters, popcount
from vitune.data.instance import Instance

Keep = Literal["first", "longest"]
Progress = Callable[[int], None]

_PUNCT = str.maketrans({c: " " for c in string.punctuation})
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# ----------------------------------------------------------------------------------------------
# text normalization and keys


def normalize_text(text: str) -> str:
    """Lowercase and collapse whitespace: what "exact duplicate" compares."""
    return " ".join(text.lower().split())


def instance_text(inst: Instance, fields: str = "all") -> str:
    """The text of an instance's turns (`all`, `user` or `assistant`), one turn per line."""
    turns = inst.turns if fields == "all" else [t for t in inst.turns if t.role == fields]
    return "\n".join(t.text for t in turns)


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).digest()


# ----------------------------------------------------------------------------------------------
# clustering helpers


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of pairs (i, j); label = smallest index in the component."""
    labels = np.arange(n, dtype=np.int64)
    if len(i) == 0:
        return labels
    while True:
        li, lj = labels[i], labels[j]
        m = np.minimum(li, lj)
        before = labels.copy()
        np.minimum.at(labels, i, m)
        np.minimum.at(labels, j, m)
        # pointer jumping until every label points at a root
        while True:
            nxt = labels[labels]
            if np.array_equal(nxt, labels):
                break
            labels = nxt
        if np.array_equal(labels, before):
            return labels


def representatives(labels: np.ndarray, lengths: np.ndarray | None, keep: Keep) -> np.ndarray:
    """Per item, the index of its cluster's representative under the `keep` rule."""
    n = len(labels)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if keep == "first" or lengths is None:
        # labels are already the smallest index of each component for _components; for arbitrary
        # group keys map each to its first member.
        order = np.lexsort((np.arange(n), labels))
    elif keep == "longest":
        order = np.lexsort((np.arange(n), -np.asarray(lengths, dtype=np.int64), labels))
    else:
        raise ValueError(f"keep must be 'first' or 'longest', got {keep!r}")
    sl = labels[order]
    head = np.r_[True, sl[1:] != sl[:-1]]
    first = order[head]
    group_of_sorted = np.cumsum(head) - 1
    rep = np.empty(n, dtype=np.int64)
    rep[order] = first[group_of_sorted]
    return rep


def group_duplicates(keys: np.ndarray, lengths: np.ndarray | None = None, keep: Keep = "first") -> np.ndarray:
    """Exact grouping: items with equal keys form a cluster; returns representative per item."""
    _, inv = np.unique(keys, return_inverse=True)
    return representatives(inv.reshape(-1).astype(np.int64), lengths, keep)


# ----------------------------------------------------------------------------------------------
# MinHash


@dataclass(frozen=True)
class MinHashParams:
    num_perm: int = 128
    shingle: int = 5
    threshold: float = 0.7
    seed: int = 1


def _perm_params(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(seed))
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    c = rng.integers(1, 2**63, size=64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # shingle mix
    return a, b, c


class _WordHashes(dict):
    """word -> 64-bit hash, computed once per distinct word (bounded so memory stays flat)."""

    limit = 1 << 21

    def __missing__(self, word: str) -> int:
        v = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        if len(self) >= self.limit:
            self.clear()
        self[word] = v
        return v


_WORDS = _WordHashes()


def _shingle_hashes(texts: Sequence[str], k: int, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of all k-word shingles of a chunk, and shingles per document (0 for empty texts).

    Documents shorter than k words give one shingle of all their words.
    """
    toks = [t.lower().translate(_PUNCT).split() for t in texts]
    lens = np.fromiter(map(len, toks), dtype=np.int64, count=len(toks))
    total = int(lens.sum())
    w = np.fromiter(map(_WORDS.__getitem__, chain.from_iterable(toks)), dtype=np.uint64, count=total)
    nsh = np.where(lens > 0, np.maximum(lens - k + 1, 1), 0)
    if total == 0:
        return np.zeros(0, dtype=np.uint64), nsh
    starts = np.cumsum(lens) - lens
    ends = np.repeat(starts + lens, lens)
    idx = np.arange(total, dtype=np.int64)
    room = ends - idx  # words left in the document from each position
    wp = np.concatenate([w, np.zeros(k, dtype=np.uint64)])
    h = w * c[0]
    for j in range(1, k):
        # the word j places after the shingle start, if it is still inside the same document
        term = wp[j : j + total] * c[j]
        term[room <= j] = 0
        h += term
    sel = (idx - np.repeat(starts, lens)) < np.repeat(nsh, lens)
    h = h[sel]
    # finalizer (splitmix-style) so linear combinations above do not leak structure into minima
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return h, nsh


def _signatures_chunk(args: tuple[list[str], int, int, int]) -> np.ndarray:
    texts, num_perm, k, seed = args
    a, b, c = _perm_params(num_perm, seed)
    h, nsh = _shingle_hashes(texts, k, c)
    sig = np.full((len(texts), num_perm), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    nonempty = np.flatnonzero(nsh)
    if len(nonempty) == 0:
        return sig
    counts = nsh[nonempty]
    offs = np.cumsum(counts) - counts
    # (shingles x perms) blocks of about 2M cells (16 MB) aligned to document boundaries
    block = max(1, (1 << 21) // num_perm)
    d0 = 0
    while d0 < len(nonempty):
        d1 = int(np.searchsorted(offs, offs[d0] + block, side="left"))
        d1 = max(d1, d0 + 1)
        s0 = int(offs[d0])
        s1 = int(offs[d1]) if d1 < len(nonempty) else len(h)
        # (perms x shingles): reducing along the contiguous axis is several times faster
        v = np.multiply.outer(a, h[s0:s1])
        v += b[:, None]
        v >>= np.uint64(32)
        sig[nonempty[d0:d1]] = np.minimum.reduceat(v, offs[d0:d1] - s0, axis=1).T.astype(np.uint32)
        d0 = d1
    return sig


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(texts)
    while chunk := list(islice(it, size)):
        yield chunk


def minhash_signatures(
    texts: Iterable[str],
    *,
    num_perm: int = 128,
    shingle: int = 5,
    seed: int = 1,
    workers: int = 1,
    chunk: int = 4096,
    progress: Progress | None = None,
) -> np.ndarray:
    """MinHash signatures (n x num_perm, uint32); an empty text gets all-max (never matches).

    `workers > 1` spreads chunks over processes; the result does not depend on `workers`.
    """
    if isinstance(texts, Sequence):
        # Known length: fill one preallocated array (no second copy from concatenating parts).
        n = len(texts)
        out = np.empty((n, num_perm), dtype=np.uint32)
        ranges = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
        fork = "fork" in mp.get_all_start_methods()
        if workers > 1 and len(ranges) > 1 and fork:
            global _SHARED
            # Forked workers read the texts from the inherited (copy-on-write) list: only (start,
            # end) goes out and only signatures come back, no pickling of the texts.
            _SHARED = texts
            try:
                with mp.get_context("fork").Pool(workers) as pool:
                    jobs = ((s, e, num_perm, shingle, seed) for s, e in ranges)
                    for (s, e), sig in zip(ranges, pool.imap(_shared_chunk, jobs), strict=True):
                        out[s:e] = sig
                        if progress:
                            progress(e - s)
            finally:
                _SHARED = None
            return out
        texts = iter(texts)
        chunks: Iterable[list[str]] = (list(islice(texts, e - s)) for s, e in ranges)
    else:
        out = None
        chunks = _chunks(texts, chunk)
    jobs = ((c, num_perm, shingle, seed) for c in chunks)
    parts: list[np.ndarray] = []
    pos = 0
    if workers > 1:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(workers) as pool:
            results = pool.imap(_signatures_chunk, jobs, chunksize=1)
            for sig in results:
                if out is not None:
                    out[pos : pos + len(sig)] = sig
                else:
                    parts.append(sig)
                pos += len(sig)
                if progress:
                    progress(len(sig))
    else:
        for job in jobs:
            sig = _signatures_chunk(job)
            if out is not None:
                out[pos : pos + len(sig)] = sig
            else:
                parts.append(sig)
            pos += len(sig)
            if progress:
                progress(len(sig))
    if out is not None:
        return out
    return np.concatenate(parts) if parts else np.zeros((0, num_perm), dtype=np.uint32)


_SHARED: Sequence[str] | None = None


def _shared_chunk(args: tuple[int, int, int, int, int]) -> np.ndarray:
    s, e, num_perm, k, seed = args
    assert _SHARED is not None
    return _signatures_chunk((list(_SHARED[s:e]), num_perm, k, seed))


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimizing false positives + negatives at `threshold` (datasketch's optimizer)."""
    try:
        from datasketch.lsh import _optimal_param

        return tuple(_optimal_param(threshold, num_perm, 0.5, 0.5))  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - private helper moved: fall back to a plain scan
        best = (1, num_perm)
        for b in range(1, num_perm + 1):
            r = num_perm // b
            if r and abs((1 / b) ** (1 / r) - threshold) < abs((1 / best[0]) ** (1 / best[1]) - threshold):
                best = (b, r)
        return best


def _band_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs from equal band keys: each member with its bucket's head and its predecessor."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    same_prev = np.r_[False, sk[1:] == sk[:-1]]
    if not same_prev.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    head_pos = np.maximum.accumulate(np.where(~same_prev, np.arange(len(sk)), 0))
    pos = np.flatnonzero(same_prev)
    i = np.concatenate([order[head_pos[pos]], order[pos - 1]])
    j = np.concatenate([order[pos], order[pos]])
    return i, j


def minhash_clusters(
    sig: np.ndarray,
    threshold: float,
    *,
    scope_keys: np.ndarray | None = None,
    bands: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels from signatures; only items with the same `scope_keys` value can match.

    Returns (labels, empty): labels are the smallest index of each cluster; `empty` flags all-max
    signatures (texts without words), which never join a cluster.
    """
    n, p = sig.shape
    b, r = bands or lsh_params(threshold, p)
    empty = (sig == np.uint32(0xFFFFFFFF)).all(axis=1)
    rng = np.random.Generator(np.random.PCG64(12345))
    coef = rng.integers(1, 2**63, size=r, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    scope = None if scope_keys is None else np.asarray(scope_keys, dtype=np.uint64)
    pi: list[np.ndarray] = []
    pj: list[np.ndarray] = []
    for band in range(b):
        cols = sig[:, band * r : (band + 1) * r].astype(np.uint64)
        key = (cols * coef).sum(axis=1, dtype=np.uint64) + np.uint64(band)
        if scope is not None:
            key ^= scope * np.uint64(0x9E3779B97F4A7C15)
        key[empty] = np.arange(int(empty.sum()), dtype=np.uint64) * np.uint64(0x632BE59BD9B4E019) + np.uint64(
            band
        )
        i, j = _band_pairs(key)
        keep = ~(empty[i] | empty[j])
        pi.append(i[keep])
        pj.append(j[keep])
    i = np.concatenate(pi) if pi else np.zeros(0, np.int64)
    j = np.concatenate(pj) if pj else np.zeros(0, np.int64)
    if len(i):
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        code = np.unique(lo * np.int64(n) + hi)
        i, j = code // n, code % n
        if scope is not None:
            same = scope[i] == scope[j]
            i, j = i[same], j[same]
        ok = np.zeros(len(i), dtype=bool)
        step = max(1, (1 << 22) // p)
        for s in range(0, len(i), step):
            e = s + step
            ok[s:e] = (sig[i[s:e]] == sig[j[s:e]]).mean(axis=1) >= threshold
        i, j = i[ok], j[ok]
    return _components(n, i, j), empty


def jaccard_estimate(sig: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return (sig[i] == sig[j]).mean(axis=1) if len(i) else np.zeros(0)


# ----------------------------------------------------------------------------------------------
# instance-level wrappers: (kept indices, removals) where removal = (index, reason, detail)

Removal = tuple[int, str, dict]


def _ids(instances: Sequence[Instance]) -> Sequence[str]:
    return instances.ids() if hasattr(instances, "ids") else [x.id for x in instances]


def _result(rep: np.ndarray, ids: Sequence[str], reason: Callable[[int, int], tuple[str, dict]]):
    kept = np.flatnonzero(rep == np.arange(len(rep)))
    removed = [(int(i), *reason(int(i), int(rep[i]))) for i in np.flatnonzero(rep != np.arange(len(rep)))]
    return kept, removed


def _reply_lengths(instances: Sequence[Instance]) -> np.ndarray:
    # A columnar view (curate.pool.ItemView) computes these without decoding every record again.
    if hasattr(instances, "reply_lengths"):
        return instances.reply_lengths()
    return np.fromiter(
        (sum(len(t.text) for t in x.turns if t.role == "assistant") for x in instances),
        np.int64,
        len(instances),
    )


def dedup_exact(
    instances: Sequence[Instance], image_keys: Sequence[str | None] | None = None, *, keep: Keep = "first"
) -> tuple[np.ndarray, list[Removal]]:
    """Exact duplicates: same normalized text of all turns (with roles) and the same image content."""
    keys = np.empty(len(instances), dtype="S16")
    for n, inst in enumerate(instances):
        img = (image_keys[n] if image_keys is not None else inst.image) or ""
        text = "\x1e".join(f"{t.role}:{t.text}" for t in inst.turns)
        keys[n] = hashlib.blake2b((normalize_text(text) + "\x1f" + img).encode(), digest_size=16).digest()
    rep = group_duplicates(keys, _reply_lengths(instances), keep)
    ids = _ids(instances)
    return _result(rep, ids, lambda i, r: ("exact duplicate", {"kept_id": ids[r], "kept_index": r}))


def scope_key_array(keys: Sequence[str | None]) -> np.ndarray:
    """64-bit keys from strings (image content hashes, paths): items with equal strings share a key."""
    out = np.empty(len(keys), dtype=np.uint64)
    memo: dict[str | None, int] = {}
    for n, k in enumerate(keys):
        v = memo.get(k)
        if v is None:
            v = memo[k] = int.from_bytes(hashlib.blake2b(str(k).encode(), digest_size=8).digest(), "little")
        out[n] = v
    return out


def dedup_minhash(
    instances: Sequence[Instance],
    *,
    params: MinHashParams = MinHashParams(),
    fields: str = "all",
    scope_keys: Sequence[str | None] | None = None,
    keep: Keep = "first",
    workers: int = 1,
    progress: Progress | None = None,
    texts: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[Removal]]:
    """Near-duplicate text. With `scope_keys` (e.g. image content hashes) only items sharing a key match.

    `texts` may supply `instance_text(x, fields)` of each instance, e.g. as a lazy view.
    """
    if texts is None:
        texts = [instance_text(x, fields) for x in instances]
    sig = minhash_signatures(
        texts,
        num_perm=params.num_perm,
        shingle=params.shingle,
        seed=params.seed,
        workers=workers,
        progress=progress,
    )
    scope = scope_key_array(scope_keys) if scope_keys is not None else None
    labels, _ = minhash_clusters(sig, params.threshold, scope_keys=scope)
    rep = representatives(labels, _reply_lengths(instances), keep)
    ids = _ids(instances)

    def why(i: int, r: int) -> tuple[str, dict]:
        sim = float((sig[i] == sig[r]).mean())
        return (
            f"near-duplicate text (MinHash Jaccard >= {params.threshold})",
            {"kept_id": ids[r], "kept_index": r, "jaccard_estimate": round(sim, 4)},
        )

    return _result(rep, ids, why)


def dedup_images(
    instances: Sequence[Instance],
    phashes: np.ndarray,
    *,
    max_distance: int = 4,
    per: str = "image_text",
    keep: Keep = "first",
) -> tuple[np.ndarray, list[Removal]]:
    """Near-duplicate images by pHash. `phashes[i]` is the hash of instance i's image; items with
    no image must be excluded by the caller.

    `per` says what makes two instances duplicates once their images are near-identical:
    `image` (one instance per image cluster), `image_task` (one per cluster and task),
    `image_text` (one per cluster and normalized conversation: the same sample on a re-encoded,
    resized or slightly edited copy of the image; the default, because many tasks share an image).
    """
    labels = phash_clusters(phashes, max_distance)
    if per == "image":
        keys = labels.astype("S20")
    elif per in ("image_task", "image_text"):
        keys = np.empty(len(instances), dtype="S16")
        for n, inst in enumerate(instances):
            extra = inst.task if per == "image_task" else instance_text(inst, "all")
            keys[n] = hashlib.blake2b(
                f"{labels[n]}\x1f{normalize_text(extra)}".encode(), digest_size=16
            ).digest()
    else:
        raise ValueError(f"per must be image, image_task or image_text, got {per!r}")
    rep = group_duplicates(keys, _reply_lengths(instances), keep)
    ids = _ids(instances)

    def why(i: int, r: int) -> tuple[str, dict]:
        dist = int(popcount(np.asarray([phashes[i] ^ phashes[r]], dtype=np.uint64))[0])
        return (
            f"near-duplicate image (pHash distance <= {max_distance}, per {per})",
            {"kept_id": ids[r], "kept_index": r, "phash_distance": dist},
        )

    return _result(rep, ids, why)
