"""Helpers shared by the source-reader tests: write an official-format file, read a ledger's
reasons, and check that a reader's counts reconcile with its ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vitune.data.ledger import Ledger
from vitune.sources.stats import SourceResult


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def reasons(ledger: Ledger) -> list[tuple[str, str]]:
    return [(r.locator, r.reason) for r in ledger.items]


def assert_reconciles(res: SourceResult, ledger: Ledger, *, complete: bool = False) -> None:
    """seen = kept + rejected per section, each (file, stage)'s rejections are its ledger lines, and
    with `complete` the ledger holds nothing else."""
    per: dict[tuple[str, str], int] = {}
    for s in res.stats:
        assert s.seen == s.kept + s.rejected, s
        per[(s.file, s.stage)] = per.get((s.file, s.stage), 0) + s.rejected
    for (f, stage), n in per.items():
        assert n == sum(1 for r in ledger.items if r.file == f and r.stage == stage), (f, stage)
    if complete:
        assert sum(per.values()) == len(ledger)
