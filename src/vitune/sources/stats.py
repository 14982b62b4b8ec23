"""Per-file read counts and the result type every reader returns.

Counts reconcile by construction of the call sites, not by arithmetic: `kept` is bumped only where
a record is actually stored and `rejected` only through `Tally.reject`, which also writes the
ledger. So `seen == kept + rejected` is a real check (tests assert it) and the ledger holds exactly
`rejected` entries per tally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vitune.data.ledger import Ledger
from vitune.data.records import ImageRecord


@dataclass(slots=True)
class ReadStats:
    """Counts for one section of one file, e.g. the `annotations` list of `instances_train.json`."""

    stage: str  # ledger stage, e.g. "sources.coco"
    file: str
    section: str  # "images", "annotations", "objects", "questions", ...
    seen: int = 0
    kept: int = 0
    rejected: int = 0
    # Records outside the requested image set (`image_ids=`); not part of `seen`, never an error.
    filtered: int = 0

    @property
    def reconciles(self) -> bool:
        return self.seen == self.kept + self.rejected

    def as_dict(self) -> dict[str, int]:
        return {"seen": self.seen, "kept": self.kept, "rejected": self.rejected}


class Tally:
    """A `ReadStats` bound to the ledger, so a rejection is always counted and logged together."""

    __slots__ = ("file", "ledger", "stage", "stats")

    def __init__(self, ledger: Ledger, stage: str, file: str, section: str) -> None:
        self.ledger = ledger
        self.stage = stage
        self.file = file
        self.stats = ReadStats(stage, file, section)

    def reject(self, locator: str, reason: str, **detail: Any) -> None:
        self.stats.rejected += 1
        self.ledger.reject(self.stage, self.file, locator, reason, **detail)


@dataclass(slots=True)
class SourceResult:
    """What a reader returns: records keyed by image id plus the counts of every file it read."""

    source: str  # "coco", "visual_genome", "vqav2"
    records: dict[str, ImageRecord] = field(default_factory=dict)
    stats: list[ReadStats] = field(default_factory=list)
    # Ids a reader deliberately left out, by why, where it lists them (e.g. ScienceQA's text-only
    # problems under "text_only"); their count is in the matching `ReadStats.filtered`.
    filtered_ids: dict[str, list[str]] = field(default_factory=dict)

    def record(self, key: str, file_name: str, split: str) -> ImageRecord:
        """The record `key`, first made (size unknown, from this source) when it is not there yet."""
        rec = self.records.get(key)
        if rec is None:
            rec = self.records[key] = ImageRecord(key, file_name, 0, 0, split=split, sources=[self.source])
        return rec

    def stat(self, file_suffix: str, section: str) -> ReadStats:
        """The stats of `section` in the file whose path ends with `file_suffix` (for tests, reports)."""
        for s in self.stats:
            if s.section == section and s.file.endswith(file_suffix):
                return s
        raise KeyError(f"no stats for {file_suffix!r} section {section!r}")

    @property
    def reconciles(self) -> bool:
        return all(s.reconciles for s in self.stats)
