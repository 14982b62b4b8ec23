"""Atomic file writes: readers never see a half-written file, even after a kill."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# mkstemp creates 0600 files; give outputs the mode a plain open() would (0666 minus the umask).
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8", *, fsync: bool = True
) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it replaces `path` in one rename.

    `fsync=False` keeps the all-or-nothing rename (safe against a killed process) but skips the flush
    to disk (not safe against power loss): for bulk, reproducible outputs such as generated images.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> None:
    """Write JSON atomically with stable key order (same object -> same bytes)."""
    # dumps, not dump: the same bytes, but dump never uses the C encoder (several times slower).
    with atomic_open(path, "w") as fh:
        fh.write(json.dumps(obj, ensure_ascii=False, indent=indent, sort_keys=False))
        if indent is not None:
            fh.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    with atomic_open(path, "wb", encoding=None, fsync=fsync) as fh:
        fh.write(data)
