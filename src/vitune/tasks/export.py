"""Exports of a build: LLaVA JSON and the Vision-Flan release format, with optional flat images.

- `llava.json`: LLaVA-1.5's training list, `{"id", "image", "task_name", "conversations"}` with
  `<image>` at the start of the first human turn (`vitune.data.llava.instance_to_llava`).
- `visionflan.json`: the layout of the public release (`annotation_191-task_1k.json`), a JSON list of
  `{"task_name", "id", "image", "conversations"}`; `vitune.sources.read_visionflan` reads it back.
- `--flatten-images`: every instance's image is hard-linked (copied when linking is impossible, e.g.
  across file systems) to `images/<task>_<idx>_<original file name>`, `idx` being the instance's
  position within its task, as the release names its images; both JSON exports then give that
  name, relative to `images/`. Images are never opened or decoded.

Workers format their task's records to text (`format_task`); the parent appends the chunks in task
order with `JsonListWriter`, which writes the same bytes as `write_llava_json` and hashes as it goes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path, PurePosixPath
from typing import IO, Any

from vitune.data.instance import Instance
from vitune.data.llava import instance_to_llava
from vitune.data.paths import resolve_image
from vitune.utils.atomic import atomic_open

EXPORTS = ("llava", "visionflan")
EXPORT_FILES = {"llava": "llava.json", "visionflan": "visionflan.json"}
IMAGES_DIR = "images"
# A task name becomes part of a file name: letters, digits and `_ . + -` (Vision-Flan uses `+`).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


def check_exports(exports: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    bad = [e for e in exports if e not in EXPORTS]
    if bad:
        raise ValueError(f"unknown export {bad[0]!r}; known: {', '.join(EXPORTS)}")
    return tuple(e for e in EXPORTS if e in exports)


def flat_name(task: str, idx: int, image: str) -> str:
    """`<task>_<idx>_<original file name>`, the Vision-Flan release's flat image name."""
    if not _SAFE_NAME.match(task):
        raise ValueError(f"task name {task!r} cannot be part of an image file name (--flatten-images)")
    base = PurePosixPath(image.replace("\\", "/")).name
    return f"{task}_{idx}_{base}"


def visionflan_record(inst: Instance, image: str) -> dict[str, Any]:
    convs = instance_to_llava(inst)["conversations"]
    return {"task_name": inst.task, "id": inst.id, "image": image, "conversations": convs}


def llava_record(inst: Instance, image: str | None) -> dict[str, Any]:
    rec = instance_to_llava(inst, with_task=True)
    if image is not None:
        rec["image"] = image
    return rec


@dataclass
class Placed:
    """How the flat images of one task got there."""

    linked: int = 0
    copied: int = 0
    present: int = 0  # already the same file (a re-run linking the same source)

    def add(self, other: Placed) -> None:
        self.linked += other.linked
        self.copied += other.copied
        self.present += other.present


def place_image(src: Path, dst: Path, placed: Placed) -> None:
    """Hard-link `src` to `dst` (copy when linking fails), replacing `dst` in one rename."""
    if dst.exists() and os.path.samefile(src, dst):
        placed.present += 1
        return
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a killed run of this pid
    try:
        try:
            os.link(src, tmp)
            placed.linked += 1
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
            shutil.copyfile(src, tmp)
            placed.copied += 1
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def format_task(
    instances: list[Instance],
    exports: tuple[str, ...],
    *,
    flatten_to: Path | None = None,
    image_root: Path | None = None,
) -> tuple[dict[str, str], Placed]:
    """One task's export text per format (records joined by ",\\n"); places flat images if asked."""
    placed = Placed()
    images: list[str | None] = [i.image for i in instances]
    if flatten_to is not None:
        assert image_root is not None
        flatten_to.mkdir(parents=True, exist_ok=True)
        for idx, inst in enumerate(instances):
            if inst.image is None:
                continue
            name = flat_name(inst.task, idx, inst.image)
            place_image(resolve_image(image_root, inst.image), flatten_to / name, placed)
            images[idx] = name
    # The conversations are encoded once and shared by both formats; the records are spliced with
    # json.dumps' default separators, so each equals json.dumps(llava_record(...)) byte for byte.
    dumps, quote = json.dumps, encode_basestring  # quote(s) == json.dumps(s, ensure_ascii=False)
    llava: list[str] = []
    vf: list[str] = []
    for inst, im in zip(instances, images, strict=True):
        conv = dumps(instance_to_llava(inst)["conversations"], ensure_ascii=False)
        rid, task = quote(inst.id), quote(inst.task)
        image = "null" if im is None else quote(im)
        if im is None:
            llava.append(f'{{"id": {rid}, "task_name": {task}, "conversations": {conv}}}')
        else:
            llava.append(f'{{"id": {rid}, "image": {image}, "task_name": {task}, "conversations": {conv}}}')
        vf.append(f'{{"task_name": {task}, "id": {rid}, "image": {image}, "conversations": {conv}}}')
    out: dict[str, str] = {}
    if "llava" in exports:
        out["llava"] = ",\n".join(llava)
    if "visionflan" in exports:
        out["visionflan"] = ",\n".join(vf)
    return out, placed


@dataclass
class JsonListWriter:
    """Appends pre-formatted record chunks to a JSON list file (atomic), counting and hashing."""

    path: Path
    count: int = 0
    _fh: IO[bytes] | None = None
    _cm: Any = None
    _sha: Any = field(default_factory=hashlib.sha256)

    def __enter__(self) -> JsonListWriter:
        self._cm = atomic_open(self.path, "wb", encoding=None)
        self._fh = self._cm.__enter__()
        self._write("[")
        return self

    def _write(self, text: str) -> None:
        data = text.encode("utf-8")
        self._sha.update(data)
        assert self._fh is not None
        self._fh.write(data)

    def add(self, chunk: str, n: int) -> None:
        """`chunk`: `n` JSON records joined by ",\\n" (empty when `n` is 0)."""
        if n:
            self._write((",\n" if self.count else "\n") + chunk)
            self.count += n

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self._write("\n]\n" if self.count else "]\n")
        self._cm.__exit__(*exc)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()
