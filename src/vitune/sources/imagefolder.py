"""Classification image folders (`root/<class name>/**/*.jpg|png|...`) → records with a class label.

The torchvision `ImageFolder` layout, which CIFAR/MNIST/miniImageNet exports and most
classification datasets use: every top-level folder under `root` is a class, every image file
below it (subfolders included) an example of that class. Each image becomes an `ImageRecord` with
`labels == [class name]` (the folder name, or `label_map[folder]` for e.g. WordNet ids →
readable names), keyed `{source}:{path relative to root}`.

- Order is deterministic: folders and files are visited in sorted name order.
- Hidden files and folders (name starting with ".", e.g. `.DS_Store`, `.ipynb_checkpoints`) are
  ignored entirely. Other non-image files (by extension) are counted as `filtered`.
- An image directly under `root` (no class folder) is rejected, as is an image that Pillow cannot
  open and `verify()` (truncated, empty, not an image), and a symlink that leads outside
  `image_root`. With `verify=False` files are not opened at all and sizes stay 0 (unknown).
- `file_name` is relative to `image_root` (default: `root`), so the records can join other sources
  that share one image root; `root` must lie inside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from PIL import Image

from vitune.data.ledger import Ledger
from vitune.data.paths import UnsafePathError, resolve_image
from vitune.data.records import ImageRecord
from vitune.sources.stats import SourceResult, Tally

STAGE = "sources.imagefolder"
IMAGE_EXTENSIONS = frozenset(
    (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".gif", ".tif", ".tiff", ".webp")
)


def read_imagefolder(
    root: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    source: str = "imagefolder",
    split: str = "",
    label_map: Mapping[str, str] | None = None,
    verify: bool = True,
    ledger: Ledger | None = None,
) -> SourceResult:
    """Read the class folders under `root`; bad images go to `ledger` with their relative path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder not found (or not a directory)")
    base = Path(image_root).resolve() if image_root is not None else root.resolve()
    real_root = root.resolve()
    if not real_root.is_relative_to(base):
        raise ValueError(f"image folder {root} is not inside the image root {image_root}")
    prefix = real_root.relative_to(base).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    ledger = ledger if ledger is not None else Ledger()
    result = SourceResult(source)
    t = Tally(ledger, STAGE, str(root), "images")
    st = t.stats
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            label = label_map.get(entry.name, entry.name) if label_map is not None else entry.name
            for rel in _walk(Path(entry.path), entry.name):
                if not _is_image(rel):
                    st.filtered += 1
                    continue
                st.seen += 1
                rec, reason = _record(base, prefix + rel, rel, source, split, verify)
                if rec is None:
                    t.reject(rel, reason)
                    continue
                rec.labels.append(label)
                rec.meta["class_dir"] = entry.name
                result.records[rec.image_id] = rec
                st.kept += 1
        elif _is_image(entry.name):
            st.seen += 1
            t.reject(entry.name, "image outside a class folder (no label)")
        else:
            st.filtered += 1
    result.stats.append(st)
    return result


def _walk(folder: Path, rel: str) -> list[str]:
    """Non-hidden files below `folder` as `rel/...` posix paths, in sorted order at every level.

    Symlinked subfolders are not descended (they could loop or leave the root); symlinked files
    are listed and checked by `resolve_image` like any other.
    """
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        sub = Path(dirpath).relative_to(folder).as_posix()
        here = rel if sub == "." else f"{rel}/{sub}"
        out.extend(f"{here}/{f}" for f in sorted(filenames) if not f.startswith("."))
    # os.walk visits a folder's files before its subfolders; a full sort keeps one rule for all.
    return sorted(out)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _record(
    base: Path, file_name: str, rel: str, source: str, split: str, verify: bool
) -> tuple[ImageRecord | None, str]:
    try:
        path = resolve_image(base, file_name)
    except UnsafePathError as e:
        return None, str(e)
    w = h = 0
    if verify:
        try:
            # `verify()` checks the file without decoding pixels (cheap); the size comes from the
            # header read by `open`, before `verify()` leaves the image unusable.
            with Image.open(path) as im:
                w, h = im.size
                im.verify()
        except Exception as e:  # Pillow raises many types for corrupt input; all mean "unreadable"
            return None, f"unreadable image ({type(e).__name__}: {e})"
    key = f"{source}:{rel}"
    return ImageRecord(key, file_name, w, h, split=split, sources=[source]), ""
