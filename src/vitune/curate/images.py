"""Image hashes for deduplication: sha256 of the file bytes and pHash, cached, plus pHash clustering.

Near-duplicate images (resized, re-encoded, lightly edited copies) have perceptual hashes within a
small Hamming distance. Clustering avoids O(n^2) by pigeonhole banding: split the 64 bits into
`max_distance + 1` bands; two hashes within the distance agree exactly on at least one band, so only
items sharing a band value are ever compared.
"""

from __future__ import annotations

import hashlib
import os
from itertools import pairwise
from pathlib import Path

import numpy as np


class ImageHashes:
    """sha256 of file bytes and pHash per image path, cached in memory and optionally on disk.

    The disk cache is a TSV of `path, size, mtime_ns, sha256, phash` so a re-run (or another recipe
    over the same images) skips reading files that did not change.
    """

    def __init__(self, cache_file: str | os.PathLike | None = None, hash_size: int = 8) -> None:
        self.cache_file = Path(cache_file) if cache_file else None
        self.hash_size = hash_size
        self._mem: dict[str, tuple[int, int, str, str]] = {}
        self._dirty = False
        if self.cache_file and self.cache_file.exists():
            for line in self.cache_file.read_text(encoding="utf-8").splitlines():
                parts = line.split("\t")
                if len(parts) == 5:
                    self._mem[parts[0]] = (int(parts[1]), int(parts[2]), parts[3], parts[4])

    def _entry(self, path: str) -> tuple[int, int, str, str]:
        st = os.stat(path)
        hit = self._mem.get(path)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit
        data = Path(path).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        hit = (st.st_size, st.st_mtime_ns, sha, hit[3] if hit and hit[2] == sha else "")
        self._mem[path] = hit
        self._dirty = True
        return hit

    def sha256(self, path: str) -> str:
        return self._entry(path)[2]

    def phash(self, path: str) -> int:
        size, mtime, sha, ph = self._entry(path)
        # A hash of another size (an earlier step or run with another `hash_size`) is not this one.
        if len(ph) != self.hash_size * self.hash_size // 4:
            import imagehash
            from PIL import Image

            with Image.open(path) as im:
                ph = str(imagehash.phash(im, hash_size=self.hash_size))
            self._mem[path] = (size, mtime, sha, ph)
            self._dirty = True
        return int(ph, 16)

    def save(self) -> None:
        if self.cache_file and self._dirty:
            from vitune.utils.atomic import write_text

            lines = [f"{p}\t{s}\t{m}\t{h}\t{ph}\n" for p, (s, m, h, ph) in sorted(self._mem.items())]
            write_text(self.cache_file, "".join(lines))
            self._dirty = False


def popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)  # pragma: no cover


def phash_clusters(hashes: np.ndarray, max_distance: int, bits: int = 64) -> np.ndarray:
    """Cluster labels of 64-bit perceptual hashes within `max_distance` Hamming distance.

    Pigeonhole banding: split the bits into max_distance + 1 bands; two hashes within the distance
    agree exactly on at least one band, so only items sharing a band value are compared.
    """
    from vitune.curate.dedup import _components  # dedup imports this module: import at call time

    h = np.asarray(hashes, dtype=np.uint64)
    n = len(h)
    nb = max_distance + 1
    widths = [bits // nb + (1 if k < bits % nb else 0) for k in range(nb)]
    pi: list[np.ndarray] = []
    pj: list[np.ndarray] = []
    off = 0
    for wdt in widths:
        key = (h >> np.uint64(off)) & np.uint64((1 << wdt) - 1)
        off += wdt
        order = np.argsort(key, kind="stable")
        sk = key[order]
        bounds = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1], True])
        for s, e in pairwise(bounds):
            if e - s < 2:
                continue
            members = order[s:e]
            mh = h[members]
            for t in range(len(members) - 1):
                d = popcount(mh[t + 1 :] ^ mh[t])
                hit = members[t + 1 :][d <= max_distance]
                if len(hit):
                    pi.append(np.full(len(hit), members[t], dtype=np.int64))
                    pj.append(hit.astype(np.int64))
    i = np.concatenate(pi) if pi else np.zeros(0, np.int64)
    j = np.concatenate(pj) if pj else np.zeros(0, np.int64)
    return _components(n, i, j)
