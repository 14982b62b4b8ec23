"""Atomic file writes: readers never see a half-written file, even after a kill.

Whole outputs too: `staged_dir(out)` gives a command a staging folder inside `out`; only when the
command completes are its entries moved over the previous ones, so a failed or killed rebuild
leaves the previous output intact (never a mix of old and new files). `clean_orphans` removes the
`.NAME.XXXXXXXX.tmp` files a kill -9 leaves behind; commands call it (via `staged_dir`) on start.
A write that fails for lack of space names the file it was writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            # write() and fsync() errors (ENOSPC above all) name no file: name the one we wrote.
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(path)) from e
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


# mkstemp's names in `atomic_open`: `.NAME.` + 8 random characters + `.tmp`.
_ORPHAN = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
STAGING = ".staging"


def clean_orphans(folder: str | os.PathLike) -> int:
    """Remove the temporary files killed writers left under `folder`; returns how many. Only call it
    when no writer of this folder is running (a command's start)."""
    n = 0
    root = Path(folder)
    if not root.is_dir():
        return 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if _ORPHAN.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    n += 1
    return n


def _recover(out: Path) -> None:
    """Undo a kill between the two renames of `_publish`: `.NAME.old` whose NAME is gone goes back."""
    for old in out.glob(".*.old"):
        name = old.name[1:-4]
        if name and not (out / name).exists():
            os.replace(old, out / name)
        else:
            shutil.rmtree(old, ignore_errors=True)


def _publish(stage: Path, out: Path, last: tuple[str, ...]) -> None:
    """Move every entry of `stage` over its namesake in `out`; folders in `last` move last."""
    entries = sorted(stage.iterdir(), key=lambda p: (p.name in last, p.is_dir(), p.name))
    for p in entries:
        dest = out / p.name
        if dest.is_dir() and not dest.is_symlink():
            old = out / f".{p.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(p, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(p, dest)
    stage.rmdir()


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, *, last: tuple[str, ...] = ()) -> Iterator[Path]:
    """A fresh staging folder `out/.staging` to write a command's outputs into.

    On success its entries replace their namesakes in `out` (a folder is swapped whole; those named
    in `last`, e.g. the one holding a manifest, move after everything else); anything else already in
    `out` (caches a run resumes from) stays. On failure the staging folder is removed and `out` is
    as it was. A killed run's leftovers (staging folder, orphan temp files) are cleared on start.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _recover(out)
    stage = out / STAGING
    shutil.rmtree(stage, ignore_errors=True)
    clean_orphans(out)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _publish(stage, out, last)
