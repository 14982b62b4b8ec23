"""The rejected-records ledger: every record a step refuses is written here with its reason.

Counts reconcile: a step reports `seen = kept + rejected`, and `Ledger.summary()` groups rejections
by reason so a user sees at a glance what was lost and why.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Rejection:
    stage: str  # e.g. "sources.coco", "tasks.build"
    file: str  # the input file the record came from ("" when not file-based)
    locator: str  # where in the file: "annotations[17]", "image_id=42", "line 9"
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "stage": self.stage,
                "file": self.file,
                "locator": self.locator,
                "reason": self.reason,
                "detail": self.detail,
            },
            ensure_ascii=False,
            sort_keys=True,
        )


class Ledger:
    """In-memory list of rejections with an optional JSONL sink."""

    def __init__(self) -> None:
        self.items: list[Rejection] = []

    def reject(self, stage: str, file: str | os.PathLike, locator: str, reason: str, **detail: Any) -> None:
        self.items.append(Rejection(stage, str(file), locator, reason, detail))

    def extend(self, other: Ledger) -> None:
        self.items.extend(other.items)

    def __len__(self) -> int:
        return len(self.items)

    def count(self, stage: str | None = None) -> int:
        return sum(1 for r in self.items if stage is None or r.stage == stage)

    def summary(self) -> dict[str, int]:
        """Rejections per `stage: reason`, sorted for stable output."""
        c = Counter(f"{r.stage}: {r.reason}" for r in self.items)
        return dict(sorted(c.items()))

    def write(self, path: str | os.PathLike) -> Path:
        from vitune.utils.atomic import atomic_open

        path = Path(path)
        with atomic_open(path, "w") as fh:
            for r in self.items:
                fh.write(r.to_json() + "\n")
        return path

    @staticmethod
    def read(path: str | os.PathLike) -> list[dict[str, Any]]:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
