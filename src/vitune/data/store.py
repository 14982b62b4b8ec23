"""Instance sets on disk: Parquet shards plus a manifest, readable by Hugging Face `datasets`.

Layout of an instance set directory::

    manifest.json            counts, shards, seed, vitune version, inputs (with checksums)
    data/shard-00000.parquet columns: id, image, task, turns (list<struct<role, text>>), meta (JSON text)

`datasets.load_dataset("parquet", data_files="DIR/data/*.parquet")` reads the same files.
Shards are written atomically, so a killed writer never leaves a truncated shard behind.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vitune import __version__
from vitune.data.instance import Instance, Turn
from vitune.utils.atomic import atomic_open, write_json

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image", pa.string()),
        ("task", pa.string()),
        ("turns", pa.list_(pa.struct([("role", pa.string()), ("text", pa.string())]))),
        ("meta", pa.string()),
    ]
)
MANIFEST = "manifest.json"


def instances_table(instances: list[Instance]) -> pa.Table:
    """Instances as an Arrow table of `SCHEMA` (the shard layout)."""
    return pa.table(
        {
            "id": [i.id for i in instances],
            "image": [i.image for i in instances],
            "task": [i.task for i in instances],
            "turns": [[{"role": t.role, "text": t.text} for t in i.turns] for i in instances],
            "meta": [json.dumps(i.meta, ensure_ascii=False, sort_keys=True) for i in instances],
        },
        schema=SCHEMA,
    )


def write_shard(instances: list[Instance], path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_open(path, "wb", encoding=None) as fh:
        # Fixed writer options so the same instances give the same bytes.
        pq.write_table(
            instances_table(instances), fh, compression="zstd", write_statistics=False, store_schema=True
        )
    return path


def write_instance_set(
    instances: Iterable[Instance],
    out_dir: str | os.PathLike,
    *,
    shard_size: int = 50_000,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write instances as shards plus `manifest.json`; returns the manifest."""
    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for old in (out / "data").glob("shard-*.parquet"):
        old.unlink()
    shards: list[str] = []
    per_task: Counter[str] = Counter()
    n = 0
    buf: list[Instance] = []

    def flush() -> None:
        if buf:
            name = f"data/shard-{len(shards):05d}.parquet"
            write_shard(buf, out / name)
            shards.append(name)
            buf.clear()

    for inst in instances:
        buf.append(inst)
        per_task[inst.task] += 1
        n += 1
        if len(buf) >= shard_size:
            flush()
    flush()
    manifest: dict[str, Any] = {
        "format": "vitune.instances/1",
        "vitune_version": __version__,
        "count": n,
        "shards": shards,
        "per_task": dict(sorted(per_task.items())),
    }
    if extra:
        manifest.update(extra)
    write_json(out / MANIFEST, manifest, indent=2)
    return manifest


def read_manifest(set_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(set_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: not an instance set (no {MANIFEST})")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def iter_instances(set_dir: str | os.PathLike) -> Iterator[Instance]:
    set_dir = Path(set_dir)
    for shard in read_manifest(set_dir)["shards"]:
        table = pq.read_table(set_dir / shard)
        for row in table.to_pylist():
            yield Instance(
                id=row["id"],
                image=row["image"],
                task=row["task"],
                turns=[Turn(t["role"], t["text"]) for t in row["turns"]],
                meta=json.loads(row["meta"]) if row["meta"] else {},
            )


def read_instances(set_dir: str | os.PathLike) -> list[Instance]:
    return list(iter_instances(set_dir))
