"""The one path rule: safe resolution of paths taken from data files and requests.

Annotation files are input, not code: a `file_name` of `../../etc/passwd`, an absolute path, or a
symlink inside the image folder pointing elsewhere must never make us read outside the image root.
`check_rel_path` is the cheap lexical test readers run on every record (no filesystem access, so it
is fast on 100K+ images); `resolve_image` adds the filesystem check that catches escaping symlinks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# `C:foo`, `C:\foo`: a drive prefix makes a path absolute (or drive-relative) on Windows.
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePathError(ValueError):
    """An image path that is absolute, escapes the image root, or is otherwise unusable."""


def check_rel_path(rel: object) -> str | None:
    """Why `rel` is not a safe path relative to an image root, or None when it is.

    Both `/` and `\\` count as separators, so a Windows-style `..\\x.jpg` cannot slip through.
    """
    if not isinstance(rel, str):
        return f"image path is not a string ({type(rel).__name__})"
    if not rel.strip():
        return "empty image path"
    if "\x00" in rel:
        return "image path contains a NUL byte"
    if rel.startswith(("/", "\\")) or _DRIVE.match(rel):
        return f"absolute image path {rel!r}"
    parts = re.split(r"[/\\]", rel)
    if ".." in parts:
        return f"image path {rel!r} escapes the image root ('..')"
    if all(p in ("", ".") for p in parts):
        return f"image path {rel!r} names no file"
    return None


def image_prefix(subdir: str, what: str) -> str:
    """`subdir` as a prefix (`"images/"`, or `""`) for file names; an unsafe subdir is a config error.

    Readers join it to every record's file name, so it is checked once here and fails loudly
    (naming `what`, e.g. "GQA image_subdir") instead of rejecting every record.
    """
    if not subdir:
        return ""
    reason = check_rel_path(subdir)
    if reason is not None:
        raise ValueError(f"{what}: {reason}")
    return subdir.replace("\\", "/").rstrip("/") + "/"


def resolve_image(image_root: str | os.PathLike, rel: str, *, allow_absolute: bool = False) -> Path:
    """The absolute path of image `rel` under `image_root`, refusing anything that leaves the root.

    The file need not exist (callers decide whether a missing image is an error), but every
    symlink on the way is followed and the final target must still lie under the resolved root.
    `allow_absolute` is a source's explicit opt-in to absolute paths (they are then taken as they are;
    relative ones still must stay inside the root).
    """
    if allow_absolute and isinstance(rel, str) and os.path.isabs(rel) and "\x00" not in rel:
        return Path(rel).resolve()
    reason = check_rel_path(rel)
    if reason is not None:
        raise UnsafePathError(f"{reason} (image root {image_root})")
    root = Path(image_root).resolve()
    target = (root / rel.replace("\\", "/")).resolve()
    if not target.is_relative_to(root):
        raise UnsafePathError(f"image path {rel!r} resolves to {target}, outside the image root {root}")
    return target


# A Hugging Face hub id: `name` or `org/name` (letters, digits, `-`, `_`, `.`; no leading dot).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def check_model_source(name: str | os.PathLike, what: str = "model") -> str | None:
    """Why `name` can be neither a local model folder nor a hub id, or None when it can be used.

    A missing *local* path must never turn into a download attempt of the same string: anything
    that is not shaped like `org/name`, or whose first folder exists here (`run/model` when `run/`
    does), is a local path and must exist.
    """
    text = os.fspath(name)
    if os.path.exists(text):
        return None
    first = re.split(r"[/\\]", text, maxsplit=1)[0]
    looks_local = (
        not _HUB_ID.match(text) or text.startswith(("~", ".")) or (first != text and os.path.isdir(first))
    )
    if looks_local:
        return f"{what} {text!r}: no such local folder (a local path is never fetched from the hub)"
    return None
