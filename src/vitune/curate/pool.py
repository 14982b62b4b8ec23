"""The curation pool: every loaded record, referred to by its index, without holding the records.

A recipe can load millions of records (SVIT alone is 4.2M); as Python `Instance` objects they cost
about 2 KB each, and even as one Arrow table the texts alone are gigabytes. So the pool keeps, per
record, only what steps index all the time: the id and image path (Arrow arrays) and integer codes
for source, task and category (numpy). Conversations are read back from where they live when a
step needs them, a batch at a time: instance-set inputs from their Parquet shards (the last shards
read are cached, so a pass in index order reads each shard once), LLaVA JSON inputs from an
in-memory Arrow table (their JSON has to be parsed whole anyway). `ItemView` and `TextView` present
a step's records as plain sequences of Instances or texts.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vitune.curate.images import ImageHashes
from vitune.curate.recipe import Recipe
from vitune.data.instance import Instance, Turn
from vitune.data.ledger import Ledger
from vitune.data.llava import read_llava_json
from vitune.data.paths import UnsafePathError, check_rel_path, resolve_image
from vitune.data.store import SCHEMA, instances_table, read_manifest

BATCH = 8192  # records decoded at a time: small enough to stay flat, large enough to amortize `take`
ALL = tuple(SCHEMA.names)


def _codes(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    vocab: dict[str, int] = {}
    codes = np.fromiter((vocab.setdefault(v, len(vocab)) for v in values), np.int32, len(values))
    return codes, list(vocab)


@dataclass
class Segment:
    """A run of pool records stored together: one Parquet shard, or one in-memory table."""

    start: int  # pool index of its first record
    rows: int
    path: Path | None = None
    table: pa.Table | None = None


class _ShardCache:
    """The last few shards read (per column set): passes in index order read each shard once."""

    def __init__(self, size: int = 2) -> None:
        self.size, self.tables = size, OrderedDict()

    def get(self, seg: Segment, columns: tuple[str, ...]) -> pa.Table:
        if seg.table is not None:
            return seg.table.select(list(columns))
        key = (seg.path, columns)
        t = self.tables.get(key)
        if t is None:
            t = self.tables[key] = pq.read_table(seg.path, columns=list(columns), schema=SCHEMA)
            while len(self.tables) > self.size:
                self.tables.popitem(last=False)
        else:
            self.tables.move_to_end(key)
        return t


def decode_table(t: pa.Table) -> list[Instance]:
    """Instances from a table with the instance-set schema."""
    return [
        Instance(i, img, task, [Turn(x["role"], x["text"]) for x in turns], json.loads(m) if m else {})
        for i, img, task, turns, m in zip(
            t.column("id").to_pylist(),
            t.column("image").to_pylist(),
            t.column("task").to_pylist(),
            t.column("turns").to_pylist(),
            t.column("meta").to_pylist(),
            strict=True,
        )
    ]


@dataclass
class Pool:
    """Everything loaded, in input order; steps refer to items by their index here."""

    segments: list[Segment]
    ids: pa.ChunkedArray
    image_col: pa.ChunkedArray
    source: np.ndarray  # int32 codes into `sources` (the recipe's input names)
    sources: list[str]
    task: np.ndarray  # int32 codes into `tasks`
    tasks: list[str]
    category: np.ndarray  # int32 codes into `categories`
    categories: list[str]
    position: np.ndarray  # int64: the record's index in its input file (for the ledger's locator)
    roots: list[str | None]  # image root per source code
    allow_absolute: list[bool] = field(default_factory=list)  # per source code: absolute paths allowed
    files: dict[str, str] = field(default_factory=dict)  # source name -> input path (for the ledger)
    hashes: ImageHashes | None = None
    cache: _ShardCache = field(default_factory=_ShardCache)

    def __len__(self) -> int:
        return len(self.source)

    # --- per-record attributes ----------------------------------------------------------------

    def source_name(self, i: int) -> str:
        return self.sources[self.source[i]]

    def images(self, idx: np.ndarray) -> list[str | None]:
        return self.image_col.take(pa.array(idx, pa.int64())).to_pylist()

    def image_paths(self, idx: np.ndarray, images: list[str | None] | None = None) -> list[str | None]:
        """The resolved file of each record's image, or None (no image, or its input has no image_root).

        `images`: `self.images(idx)` when the caller already has it (one column read, not two).
        A path that leaves its root through a symlink comes back as an `EscapedPath` (never opened).
        """
        out: list[str | None] = []
        for i, img in zip(idx.tolist(), self.images(idx) if images is None else images, strict=True):
            root = self.roots[self.source[i]]
            if root is None or img is None:
                out.append(None)
                continue
            try:
                out.append(str(resolve_image(root, img, allow_absolute=self.allow_absolute[self.source[i]])))
            except UnsafePathError as e:
                out.append(EscapedPath(str(e)))
        return out

    def unsafe_paths(self) -> list[tuple[int, str]]:
        """(row, reason) for every image path the one path rule refuses (absolute unless the input
        opts in, `..`, NUL, empty); found with vectorized string tests, reasons only for the hits."""
        col = self.image_col
        hits = pc.or_(
            pc.match_substring_regex(col, r"(^|[/\\])\.\.([/\\]|$)"),
            pc.or_(
                pc.match_substring_regex(col, r"^\s*$|\x00"),
                pc.match_substring_regex(col, r"^([/\\]|[A-Za-z]:)"),
            ),
        )
        rows = np.flatnonzero(pc.fill_null(hits, False).to_numpy(zero_copy_only=False))
        out = []
        for i in rows.tolist():
            img = col[i].as_py()
            if (
                self.allow_absolute[self.source[i]]
                and Path(img).is_absolute()
                and ".." not in Path(img).parts
            ):
                continue
            out.append((i, check_rel_path(img) or f"image path {img!r} refused"))
        return out

    def locator(self, i: int) -> str:
        i = int(i)
        return f"{self.source_name(i)}[{self.position[i]}] id={self.ids[i].as_py()}"

    def file(self, i: int) -> str:
        return self.files[self.source_name(i)]

    def counts(self, idx: np.ndarray) -> dict[str, dict[str, int]]:
        def count(codes: np.ndarray, vocab: list[str]) -> dict[str, int]:
            n = np.bincount(codes[idx], minlength=len(vocab))
            return {vocab[k]: int(n[k]) for k in sorted(range(len(vocab)), key=vocab.__getitem__) if n[k]}

        return {
            "source": count(self.source, self.sources),
            "task": count(self.task, self.tasks),
            "category": count(self.category, self.categories),
        }

    # --- reading records back -----------------------------------------------------------------

    def take(self, idx: np.ndarray, columns: tuple[str, ...] = ALL) -> pa.Table:
        """The rows at `idx` (any order), read segment by segment in index order."""
        idx = np.asarray(idx, np.int64)
        order = None
        if len(idx) > 1 and (np.diff(idx) < 0).any():
            order = np.argsort(idx, kind="stable")
            idx = idx[order]
        starts = np.fromiter((s.start for s in self.segments), np.int64, len(self.segments))
        seg_of = np.searchsorted(starts, idx, side="right") - 1
        parts = []
        for k in np.unique(seg_of).tolist():
            seg = self.segments[k]
            local = idx[seg_of == k] - seg.start
            parts.append(self.cache.get(seg, columns).take(pa.array(local, pa.int64())))
        schema = pa.schema([SCHEMA.field(c) for c in columns])
        t = pa.concat_tables(parts) if parts else schema.empty_table()
        if order is not None:
            t = t.take(pa.array(np.argsort(order, kind="stable"), pa.int64()))
        return t

    def decode(self, idx: np.ndarray) -> list[Instance]:
        """Instances for `idx` (any order); meant for batches, not for the whole pool at once."""
        return decode_table(self.take(idx))

    def iter_instances(self, idx: np.ndarray) -> Iterator[Instance]:
        for s in range(0, len(idx), BATCH):
            yield from self.decode(idx[s : s + BATCH])

    def texts(self, idx: np.ndarray, fields: str = "all") -> list[str]:
        """The text of each record's turns (`all`, `user` or `assistant`), one turn per line."""
        turns = self.take(idx, ("turns",)).column("turns").to_pylist()
        if fields == "all":
            return ["\n".join(x["text"] for x in t) for t in turns]
        return ["\n".join(x["text"] for x in t if x["role"] == fields) for t in turns]


class ItemView(Sequence[Instance]):
    """The pool's records at `idx` as a read-only sequence of Instances, decoded batch by batch."""

    def __init__(self, pool: Pool, idx: np.ndarray) -> None:
        self.pool, self.idx = pool, idx

    def __len__(self) -> int:
        return len(self.idx)

    @overload
    def __getitem__(self, k: int) -> Instance: ...
    @overload
    def __getitem__(self, k: slice) -> list[Instance]: ...
    def __getitem__(self, k):
        if isinstance(k, slice):
            return self.pool.decode(self.idx[k])
        return self.pool.decode(self.idx[[k]])[0]

    def __iter__(self) -> Iterator[Instance]:
        return self.pool.iter_instances(self.idx)

    def ids(self) -> IdView:
        return IdView(self.pool.ids, self.idx)

    def reply_lengths(self) -> np.ndarray:
        """Characters in each record's assistant turns, computed on the Arrow columns."""
        out = np.zeros(len(self.idx), dtype=np.int64)
        for s in range(0, len(self.idx), BATCH * 16):
            turns = self.pool.take(self.idx[s : s + BATCH * 16], ("turns",)).column("turns").combine_chunks()
            flat = turns.flatten()
            chars = pc.utf8_length(flat.field("text")).to_numpy(zero_copy_only=False)
            mine = pc.equal(flat.field("role"), "assistant").to_numpy(zero_copy_only=False)
            parent = pc.list_parent_indices(turns).to_numpy(zero_copy_only=False)
            out[s : s + len(turns)] = np.bincount(parent, weights=chars * mine, minlength=len(turns))
        return out


class IdView(Sequence[str]):
    """Record ids at `idx`, read one at a time (only removed records' representatives need them)."""

    def __init__(self, column: pa.ChunkedArray, idx: np.ndarray) -> None:
        self.column, self.idx = column, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return self.column.take(pa.array(self.idx[k], pa.int64())).to_pylist()
        return self.column[int(self.idx[k])].as_py()


class TextView(Sequence[str]):
    """The texts of the pool's records at `idx`; slices decode only what they cover, so forked
    MinHash workers each read their own chunk from the shared Arrow buffers."""

    def __init__(self, pool: Pool, idx: np.ndarray, fields: str = "all") -> None:
        self.pool, self.idx, self.fields = pool, idx, fields

    def __len__(self) -> int:
        return len(self.idx)

    @overload
    def __getitem__(self, k: int) -> str: ...
    @overload
    def __getitem__(self, k: slice) -> list[str]: ...
    def __getitem__(self, k):
        if isinstance(k, slice):
            return self.pool.texts(self.idx[k], self.fields)
        return self.pool.texts(self.idx[[k]], self.fields)[0]

    def __iter__(self) -> Iterator[str]:
        for s in range(0, len(self.idx), BATCH):
            yield from self.pool.texts(self.idx[s : s + BATCH], self.fields)


# ----------------------------------------------------------------------------------------------
# loading


def _input_files(kind: str, path: Path) -> list[Path]:
    if kind == "instances":
        return [path / "manifest.json", *(path / s for s in read_manifest(path)["shards"])]
    return [path]


def _meta_fields(
    meta: pa.ChunkedArray, local: np.ndarray, default_category: str
) -> tuple[np.ndarray, list[str]]:
    """(position in the input file, category) per record, from `source_index` / `category` in meta.

    Only metas that mention a key are parsed: most instance sets carry neither.
    """
    position = local.copy()
    category = [default_category] * len(local)
    for n, m in enumerate(meta.to_pylist()):
        if m and ('"source_index"' in m or '"category"' in m):
            d = json.loads(m)
            if isinstance(d.get("source_index"), int):
                position[n] = d["source_index"]
            if d.get("category"):
                category[n] = str(d["category"])
    return position, category


class EscapedPath(str):
    """An image path that resolves outside its root (a symlink); the string is the reason."""


def load_pool(recipe: Recipe, ledger: Ledger, cache_dir: Path) -> tuple[Pool, list[Any]]:
    """Read every input's index columns; returns the pool and the fingerprints (checksums, options)."""
    from vitune.utils.hashing import sha256_file

    segments: list[Segment] = []
    ids: list[pa.Array] = []
    images: list[pa.Array] = []
    tasks: list[pa.Array] = []
    source: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    categories: list[str] = []
    files: dict[str, str] = {}
    fingerprints = []
    n = 0
    for code, inp in enumerate(recipe.inputs):
        path = Path(inp.path)
        if not path.exists():
            raise FileNotFoundError(f"input {inp.name!r}: {path} does not exist")
        fingerprints.append([inp.model_dump(), [sha256_file(f) for f in _input_files(inp.kind, path)]])
        if inp.kind == "instances":
            parts = [(path / s, None) for s in read_manifest(path)["shards"]]
        else:
            sub = Ledger()
            # Vision-Flan rows must carry task_name: an empty default marks the ones that do not
            default = "" if inp.kind == "vision_flan" else (inp.task or inp.name)
            items = read_llava_json(path, sub, default_task=default, allow_absolute=inp.allow_absolute_images)
            for r in sub.items:
                ledger.reject("curate.load", r.file, r.locator, r.reason, source=inp.name)
            for x in items:
                if not x.task:
                    ledger.reject(
                        "curate.load",
                        str(path),
                        f"[{x.meta.get('source_index')}]",
                        "vision_flan row without task_name",
                        source=inp.name,
                    )
            parts = [(None, instances_table([x for x in items if x.task]))]
        files[inp.name] = str(path)
        local = 0
        for shard, table in parts:
            head = (
                table
                if table is not None
                else pq.read_table(shard, columns=["id", "image", "task", "meta"], schema=SCHEMA)
            )
            rows = head.num_rows
            segments.append(Segment(n, rows, shard, table))
            ids.append(head.column("id").combine_chunks())
            images.append(head.column("image").combine_chunks())
            tasks.append(head.column("task").combine_chunks())
            pos, cat = _meta_fields(
                head.column("meta"),
                np.arange(local, local + rows, dtype=np.int64),
                inp.category or "uncategorized",
            )
            source.append(np.full(rows, code, dtype=np.int32))
            positions.append(pos)
            categories += cat
            n += rows
            local += rows
    task_codes, task_vocab = _task_codes(pa.chunked_array(tasks, pa.string()))
    cat_codes, cat_vocab = _codes(categories)
    pool = Pool(
        segments=segments,
        ids=pa.chunked_array(ids, pa.string()),
        image_col=pa.chunked_array(images, pa.string()),
        source=np.concatenate(source) if source else np.zeros(0, np.int32),
        sources=[i.name for i in recipe.inputs],
        task=task_codes,
        tasks=task_vocab,
        category=cat_codes,
        categories=cat_vocab,
        position=np.concatenate(positions) if positions else np.zeros(0, np.int64),
        roots=[i.image_root for i in recipe.inputs],
        allow_absolute=[i.allow_absolute_images for i in recipe.inputs],
        files=files,
        hashes=ImageHashes(cache_dir / "image-hashes.tsv"),
    )
    return pool, fingerprints


def _task_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    if len(column) == 0:
        return np.zeros(0, np.int32), []
    enc = pc.dictionary_encode(column.combine_chunks())
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int32), enc.dictionary.to_pylist()
