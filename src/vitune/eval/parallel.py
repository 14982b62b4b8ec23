"""Data-parallel evaluation: `accelerate launch -m vitune.cli eval ...` on N processes gives the same
files as one process.

Every process computes the same list of uncached items (same benchmark files, same cache) and
answers the deterministic shard `todo[rank::N]`; greedy answers do not depend on batch-mates, so
the union is what one process would answer. The response cache stays one append-only file with one
writer: process 0 appends to `responses.jsonl`, process r > 0 to `responses.jsonl.rank<r>`. After
a benchmark's generation all processes meet at a barrier and process 0 merges the rank files into
the cache (then deletes them) and alone scores and writes results. A run killed mid-way leaves rank
files behind; the next run (with any N) merges them first, so it resumes item by item.

Without a launcher (no WORLD_SIZE > 1 in the environment) this is one process and no barrier;
`torch.distributed` is started through accelerate's `PartialState` only under a launcher.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    barrier: Callable[[], None] = lambda: None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's share: every `world`-th item from `rank` (the same split on every run)."""
        return list(items[self.rank :: self.world])

    def device(self, device: str) -> str:
        """A plain `cuda` becomes this process's own GPU."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.world > 1 else device


def current_ranks() -> Ranks:
    """The launch this process is part of (one process when not launched by accelerate/torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Ranks()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return Ranks(state.process_index, state.num_processes, state.local_process_index, state.wait_for_everyone)


def rank_file(cache_path: Path, rank: int) -> Path:
    return cache_path.with_name(f"{cache_path.name}.rank{rank}")


def leftover_rank_files(cache_path: Path) -> list[Path]:
    return sorted(cache_path.parent.glob(f"{cache_path.name}.rank*"))


def read_rows(path: Path) -> list[tuple[str, str, str, str]]:
    """Complete rows of a rank file (a kill can leave a partial last row: it is dropped)."""
    rows = []
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:  # the text after the last \n is partial
        if line.strip():
            r: dict[str, Any] = json.loads(line)
            rows.append((r["key"], r["bench"], r["item_id"], str(r["response"])))
    return rows


def merge_rank_files(cache: Any) -> int:
    """Move every rank file's rows into `cache` (a `ResponseCache`), then delete the files."""
    n = 0
    for path in leftover_rank_files(Path(cache.path)):
        rows = [r for r in read_rows(path) if r[0] not in cache]
        cache.append(rows)
        n += len(rows)
        path.unlink()
    if n:
        log.info("%s: merged %d answers of other processes", cache.path, n)
    return n
