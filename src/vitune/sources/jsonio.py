"""Load the annotation JSON files with errors that say which file, where, and what is wrong.

The stdlib `json` is used on purpose: it reports line and column of a syntax error, needs no extra
dependency, and parses the 400 MB Visual Genome files in one call (no per-record Python overhead).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def gc_paused(fn: F) -> F:
    """Run `fn` with the cyclic garbage collector off (restored afterwards, even on error).

    Parsing and walking these files allocates tens of millions of dicts and small objects, none of
    them in reference cycles; with the collector on, its repeated full-heap scans made reading
    Visual Genome objects.json ~4x slower (58 s vs 14 s on 3.8M objects).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper  # type: ignore[return-value]


def load_json(path: str | os.PathLike, expect: type | tuple[type, ...] | None = None, shape: str = "") -> Any:
    """Parse `path`; when `expect` is given the top level must be of that type (`shape` describes it).

    Raises FileNotFoundError naming the file when it is missing and ValueError naming the file with
    the line/column (syntax) or the expected shape (wrong top-level type).
    """
    path = Path(path)
    text = read_text(path, "a JSON file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if expect is not None and not isinstance(data, expect):
        want = shape or _type_names(expect)
        raise ValueError(f"{path}: expected {want} at the top level, got {_json_type(data)}")
    return data


def read_text(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of `path` (a BOM tolerated). Raises FileNotFoundError naming the file when it
    is missing, ValueError naming it for a directory (`what` is the file expected) or bytes that
    are not UTF-8 (with the byte and line), OSError naming it when it cannot be read."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{path}: file not found") from e
    except IsADirectoryError as e:
        raise ValueError(f"{path}: is a directory, expected {what}") from e
    except OSError as e:
        raise OSError(f"{path}: cannot read ({e.strerror})") from e
    try:
        return raw.decode("utf-8-sig")  # tolerate a BOM, which some editors add
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}: not UTF-8 at byte {e.start} (line {line}): {e.reason}") from e


def require_list(
    data: dict[str, Any], key: str, path: str | os.PathLike, *, optional: bool = False
) -> list[Any]:
    """`data[key]` when it is a list; a missing key is `[]` if `optional`, otherwise an error naming the file."""
    if key not in data:
        if optional:
            return []
        raise ValueError(f"{path}: expected a JSON object with a {key!r} list, key {key!r} is missing")
    value = data[key]
    if not isinstance(value, list):
        raise ValueError(f"{path}: {key!r} must be a list, got {_json_type(value)}")
    return value


def _type_names(expect: type | tuple[type, ...]) -> str:
    types = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join(_JSON_NAMES.get(t, t.__name__) for t in types)


_JSON_NAMES = {dict: "a JSON object", list: "a JSON list", str: "a string"}


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


class _PlainUnpickler(pickle.Unpickler):
    """Builds only plain data (dict, list, tuple, str, bytes, numbers, bools, None): any global,
    i.e. any class or function the file names, is refused, so loading can run no code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refers to {module}.{name} (only plain data is accepted)")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("uses persistent ids (only plain data is accepted)")


def load_plain_pickle(path: str | os.PathLike, expect: type | tuple[type, ...] | None = None) -> Any:
    """A pickle of plain data (the refer toolkit's `refs(unc).p`, written by Python 2), read without
    running code: a pickle naming any class or function is refused with a message naming the file.
    Python 2 byte strings are read as UTF-8 text."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = _PlainUnpickler(fh, encoding="utf-8").load()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{path}: file not found") from e
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: refused pickle: {e}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: pickle holds a string that is not UTF-8 ({e.reason})") from e
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as e:
        raise ValueError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e
    if expect is not None and not isinstance(data, expect):
        raise ValueError(
            f"{path}: expected {_type_names(expect)} at the top level, got {type(data).__name__}"
        )
    return data


def is_pickle(path: str | os.PathLike) -> bool:
    """True for a pickle file: protocol 2+ starts with the PROTO opcode 0x80; older ones are told
    by the refer toolkit's `.p` suffix."""
    path = Path(path)
    if path.suffix in (".p", ".pkl", ".pickle"):
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(1) == b"\x80"
    except OSError:
        return False
