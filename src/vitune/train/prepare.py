"""Prepare a stage's data once, on disk, for every stage, re-run and process that needs it.

Encoding (tokenization + exact labels, `labels.LabelEncoder`) and the image check run once per
(data file contents, data entry settings, tokenizer, template, max length, image tokens, image
processor, image limits) on a process pool, and the result is written to
`<run>/prepared/<key>/` as flat arrays that training memory-maps:

    ids.bin, labels.bin   int32, every sample's ids / labels one after the other, with the image
                          placeholder *not* expanded (one id per image; 576x less disk for LLaVA-1.5)
    offsets.npy           int64 (n + 1): sample i is ids[offsets[i]:offsets[i + 1]]
    lengths.npy           int32: expanded lengths (what the samplers and packing see)
    image.npy             int32: index into images.npy, -1 for a text-only sample
    images.npy            the distinct relative image paths (fixed-width bytes)
    rejected.jsonl        the entry's rejections (reader, encoder, image check), each with its reason
    stats.json            seen / kept / rejected / truncated / image / text_only

A folder appears only complete (written under a temporary name, then renamed), so a killed
preparation leaves nothing half-valid; a later stage with the same key, a re-run, and every process
of an `accelerate launch` (the main process prepares, the others wait and map the same files) reuse
it. Memory while training is the index (offsets, lengths, image numbers) plus the pages the OS maps
in, whatever the number of samples or images.

The image check is `ImageCache.check`: inside the image root (`resolve_image`: no absolute path, no
`..`, no symlink out), then `data.images.check_image` (header first, then a decode within the pixel
limit). A sample whose image fails is rejected into the stage ledger with the reason, so no bad
image can stop a run mid-way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitune.data.instance import Instance
from vitune.data.ledger import Ledger
from vitune.train.labels import Compact, ImageCache, LabelEncoder, Rejected, expand_image
from vitune.utils.atomic import write_json
from vitune.utils.hashing import sha256_file

log = logging.getLogger(__name__)

FORMAT = 1
CHUNK = 512  # samples per pool task: large enough to amortise the pickling, small for memory


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _data_hash(path: Path) -> str:
    """Content hash of a data file, or of every file of an instance set folder (names included)."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}\x1f{sha256_file(f)}\n".encode())
    return h.hexdigest()


def cache_key(
    data: dict[str, Any], seed: int, encoder: LabelEncoder, image_processor: Any, images: ImageCache | None
) -> str:
    """What the prepared arrays depend on, hashed: a change to any of it prepares again."""
    tok = encoder.tok
    parts = {
        "format": FORMAT,
        "data": data,
        "data_sha256": _data_hash(Path(data["path"])),
        "image_root": str(Path(data["image_root"]).resolve()) if data.get("image_root") else None,
        "seed": seed if data.get("limit") is not None else None,  # only the limit's sample uses it
        "tokenizer": hashlib.sha256(tok.backend_tokenizer.to_str().encode()).hexdigest(),
        "special": tok.special_tokens_map,
        "template": encoder.template,
        "max_length": encoder.max_length,
        "image_seq_length": encoder.image_seq_length,
        "image_processor": image_processor.to_json_string() if image_processor is not None else None,
        "limits": repr(images.limits) if images is not None else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


# Work shared with forked pool workers (inherited, never pickled): the instances and the encoder.
_WORK: dict[str, Any] = {}


def _check_images(rels: list[str]) -> list[tuple[str, str] | None]:
    images: ImageCache = _WORK["images"]
    return [images.check(r) for r in rels]


def _encode_chunk(span: tuple[int, int]) -> dict[str, Any]:
    """Encode instances [a, b): flat unexpanded ids/labels, per-sample lengths, images, rejections."""
    instances: Sequence[Instance] = _WORK["instances"]
    encoder: LabelEncoder = _WORK["encoder"]
    bad: dict[str, tuple[str, str]] = _WORK["bad_images"]
    has_root = _WORK["images"] is not None
    ids, labels, n_unexp, n_exp, imgs, rejected, truncated = [], [], [], [], [], [], 0
    for inst in instances[span[0] : span[1]]:
        r = encoder.encode_compact(inst)
        if isinstance(r, Compact) and r.image is not None:
            if not has_root:
                r = Rejected(inst.id, "image sample but no image root")
            elif r.image in bad:
                reason, why = bad[r.image]
                r = Rejected(inst.id, reason, {"image": r.image, "error": why})
        if isinstance(r, Rejected):
            rejected.append((r.id, r.reason, r.detail))
            continue
        # Each image placeholder is stored once; training expands it again (`expand_image`).
        ids.append(r.ids)
        labels.append(r.labels)
        n_unexp.append(len(r.ids))
        n_exp.append(r.length)
        imgs.append(r.image)
        truncated += r.pairs_kept < r.pairs_total
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int32)  # noqa: E731
    return {
        "ids": cat(ids),
        "labels": cat(labels),
        "n_unexp": n_unexp,
        "n_exp": n_exp,
        "images": imgs,
        "rejected": rejected,
        "truncated": truncated,
        "seen": span[1] - span[0],
    }


def _pool_map(fn, items: list, processes: int) -> Iterator:
    """`fn` over `items` in order, on `processes` forked workers (inline for one, or off Linux)."""
    if processes <= 1 or len(items) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(fn, items)
        return
    # The workers only tokenize and decode images; the Rust tokenizer's own thread pool would
    # compete with them for the same cores.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        yield from pool.imap(fn, items)


def _bad_images(instances: Sequence[Instance], processes: int) -> dict[str, tuple[str, str]]:
    """(reason, detail) of every distinct image of `instances` that fails the image check."""
    rels = sorted({i.image for i in instances if i.image is not None})
    chunks = [rels[k : k + CHUNK] for k in range(0, len(rels), CHUNK)]
    bad: dict[str, tuple[str, str]] = {}
    for chunk, reasons in zip(chunks, _pool_map(_check_images, chunks, processes), strict=True):
        bad.update((r, why) for r, why in zip(chunk, reasons, strict=True) if why is not None)
    return bad


def _write(tmp: Path, instances: Sequence[Instance], processes: int) -> dict[str, int]:
    """Encode `instances` into the arrays of `tmp` (streamed: one chunk in memory at a time)."""
    spans = [(a, min(a + CHUNK, len(instances))) for a in range(0, len(instances), CHUNK)]
    offsets, lengths, image = [0], [], []
    image_index: dict[str, int] = {}
    stats = {"seen": 0, "kept": 0, "rejected": 0, "truncated": 0, "image": 0, "text_only": 0}
    ledger = Ledger()
    with open(tmp / "ids.bin", "wb") as f_ids, open(tmp / "labels.bin", "wb") as f_lab:
        for part in _pool_map(_encode_chunk, spans, processes):
            f_ids.write(part["ids"].tobytes())
            f_lab.write(part["labels"].tobytes())
            for n in part["n_unexp"]:
                offsets.append(offsets[-1] + n)
            lengths += part["n_exp"]
            for rel in part["images"]:
                image.append(-1 if rel is None else image_index.setdefault(rel, len(image_index)))
            for rid, reason, detail in part["rejected"]:
                ledger.reject("", "", f"id={rid}", reason, **detail)
            stats["seen"] += part["seen"]
            stats["truncated"] += part["truncated"]
    stats["kept"], stats["rejected"] = len(lengths), len(ledger)
    stats["image"] = sum(1 for i in image if i >= 0)
    stats["text_only"] = stats["kept"] - stats["image"]
    np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    np.save(tmp / "lengths.npy", np.asarray(lengths, dtype=np.int32))
    np.save(tmp / "image.npy", np.asarray(image, dtype=np.int32))
    names = sorted(image_index, key=image_index.__getitem__)
    np.save(tmp / "images.npy", np.asarray([n.encode() for n in names], dtype=bytes))
    ledger.write(tmp / "rejected.jsonl")
    return stats


def prepare(
    instances: Sequence[Instance],
    encoder: LabelEncoder,
    images: ImageCache | None,
    folder: str | os.PathLike,
    *,
    processes: int | None = None,
    reader_ledger: Ledger | None = None,
) -> Path:
    """Encode and check `instances` into `folder` (if not already there); returns `folder`.

    `reader_ledger` holds what reading the data file rejected: it is kept with the arrays so a
    stage that reuses them still reports those rejections.
    """
    folder = Path(folder)
    if (folder / "stats.json").exists():
        return folder
    processes = processes or min(8, available_cores())
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _WORK.update(instances=instances, encoder=encoder, images=images, bad_images={})
    try:
        if images is not None:
            _WORK["bad_images"] = _bad_images(instances, processes)
        stats = _write(tmp, instances, processes)
    finally:
        _WORK.clear()
    if reader_ledger is not None and len(reader_ledger):
        reader_ledger.write(tmp / "read_rejected.jsonl")
    write_json(tmp / "stats.json", stats)  # last: its presence marks a complete folder
    try:
        tmp.rename(folder)
    except OSError:  # another preparation of the same key finished first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


@dataclass
class PreparedPart:
    """One prepared data entry, memory-mapped."""

    folder: Path
    ids: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    image: np.ndarray
    images: np.ndarray
    stats: dict[str, int]

    @classmethod
    def open(cls, folder: str | os.PathLike) -> PreparedPart:
        folder = Path(folder)
        stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))

        def flat(name: str) -> np.ndarray:
            path = folder / name
            # np.memmap refuses an empty file; an entry whose samples were all rejected has one.
            return np.memmap(path, dtype=np.int32, mode="r") if path.stat().st_size else np.zeros(0, np.int32)

        def load(name: str) -> np.ndarray:
            return np.load(folder / name, mmap_mode="r")

        return cls(
            folder,
            flat("ids.bin"),
            flat("labels.bin"),
            load("offsets.npy"),
            load("lengths.npy"),
            load("image.npy"),
            np.load(folder / "images.npy"),
            stats,
        )

    def __len__(self) -> int:
        return len(self.lengths)

    def rejections(self) -> list[dict[str, Any]]:
        """The reader's rejections (as recorded) and the encoder's / image check's (stage unset)."""
        out = []
        for name in ("read_rejected.jsonl", "rejected.jsonl"):
            if (self.folder / name).exists():
                out += Ledger.read(self.folder / name)
        return out

    def image_of(self, i: int) -> str | None:
        k = int(self.image[i])
        return None if k < 0 else self.images[k].decode()


class PreparedDataset(torch.utils.data.Dataset):
    """Prepared data entries (each with its image root) as one dataset of training items: ids and
    labels from the memory-mapped arrays, pixel values decoded on demand (in DataLoader workers)."""

    def __init__(
        self, parts: Sequence[PreparedPart], images: Sequence[ImageCache | None], image_id: int, n_img: int
    ) -> None:
        self.parts = list(parts)
        self.images = list(images)
        self.image_id, self.n_img = image_id, n_img
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, j: int) -> dict[str, Any]:
        k = int(np.searchsorted(self.starts, j, side="right")) - 1
        part, i = self.parts[k], j - int(self.starts[k])
        a, b = int(part.offsets[i]), int(part.offsets[i + 1])
        ids, labels = expand_image(part.ids[a:b], part.labels[a:b], self.image_id, self.n_img)
        ids, labels = ids.astype(np.int64), labels.astype(np.int64)
        rel = part.image_of(i)
        pv = None
        if rel is not None:
            cache = self.images[k]
            assert cache is not None, "prepared image sample without an image root"
            pv = cache(rel)
        return {"input_ids": ids, "labels": labels, "pixel_values": pv}

    def lengths(self) -> list[int]:
        return [int(n) for p in self.parts for n in p.lengths]

    def has_image(self) -> list[bool]:
        return [bool(i >= 0) for p in self.parts for i in p.image]
