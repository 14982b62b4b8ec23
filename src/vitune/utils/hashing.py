"""Content hashes and seed derivation, so every random choice is reproducible from one seed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from a base seed and any labels (task name, image id, ...).

    Independent of PYTHONHASHSEED and of processing order, so sharded work gives the same result
    as sequential work.
    """
    key = "\x1f".join([str(seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1


def short_hash(text: str, n: int = 12) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()[:n]


def file_fingerprint(path: Path) -> dict:
    """What a manifest records of an input file."""
    st = path.stat()
    return {"path": str(path), "bytes": st.st_size, "sha256": sha256_file(path)}


def dir_fingerprint(path: Path, patterns: tuple[str, ...] = ("*.safetensors", "*.bin", "config.json")) -> str:
    """A cheap identity of a checkpoint folder: names, sizes and mtimes of its weight/config files.

    Changes when a model is retrained in place; costs no read of multi-GB weights.
    """
    files = sorted({f for pat in patterns for f in Path(path).glob(pat)})
    key = "\x1f".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return short_hash(key, 16)
