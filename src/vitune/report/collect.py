"""Read what a run left on disk into typed records: training stages (summary + metrics lines),
evaluation results, a curation summary. Nothing here computes a score; it only reads.

A training run folder is what `vitune train` writes: `recipe.json`, `stages/<name>/summary.json`
and `metrics.jsonl` (instruction stages; dense vision stages log no metrics lines) and
`rejected.jsonl`. A stage that has not finished (no `done.json`) is reported as unfinished with
what its metrics say so far, which is how a report of a killed run is still useful.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Stage:
    name: str
    finished: bool
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # one per logged optimizer step
    rejected: int = 0

    @property
    def steps(self) -> int | None:
        if "steps" in self.summary:
            return int(self.summary["steps"])
        return int(self.metrics[-1]["step"]) if self.metrics else None


@dataclass
class TrainRun:
    path: Path
    recipe: str
    stages: list[Stage]


def read_json(path: Path) -> Any:
    """A JSON file; a ValueError naming the file when it is not valid JSON."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                # A killed writer can leave a torn last line; anything else is a broken file.
                if fh.readline():
                    raise ValueError(f"{path}: line {n} is not valid JSON") from None
    return out


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def read_train_run(run_dir: str | os.PathLike) -> TrainRun:
    """The stages of a `vitune train` output folder, in recipe order."""
    run = Path(run_dir)
    if not (run / "stages").is_dir():
        raise FileNotFoundError(f"{run}: not a training run (no stages/ folder)")
    recipe = read_json(run / "recipe.json") if (run / "recipe.json").exists() else {}
    names = [s["name"] for s in recipe.get("stages", []) if isinstance(s, dict) and "name" in s]
    names += sorted(p.name for p in (run / "stages").iterdir() if p.is_dir() and p.name not in names)
    stages = []
    for name in names:
        d = run / "stages" / name
        if not d.is_dir():
            stages.append(Stage(name, finished=False))  # in the recipe, not started yet
            continue
        summary = read_json(d / "summary.json") if (d / "summary.json").exists() else {}
        stages.append(
            Stage(
                name,
                finished=(d / "done.json").exists(),
                summary=summary,
                metrics=_jsonl(d / "metrics.jsonl"),
                rejected=_count_lines(d / "rejected.jsonl"),
            )
        )
    return TrainRun(run, str(recipe.get("name", run.name)), stages)


def read_curation(out_dir: str | os.PathLike) -> dict[str, Any]:
    """`curation.json` of a `vitune curate` output folder (or the file itself)."""
    p = Path(out_dir)
    p = p / "curation.json" if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"{p}: no curation summary (curation.json)")
    return read_json(p)


def read_multiround(path: str | os.PathLike) -> dict[str, Any]:
    """`multiround_results.json` of a `vitune eval multiround` folder (or the file itself)."""
    p = Path(path)
    p = p / "multiround_results.json" if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"{p}: no multi-round results (multiround_results.json)")
    data = read_json(p)
    if not isinstance(data, dict) or not isinstance(data.get("scores"), dict):
        raise ValueError(f"{p}: not multi-round results (no 'scores' object)")
    return data


@dataclass
class LabResult:
    """A `vitune lab` output folder, read generically: its results.json and/or results.md."""

    path: Path
    results: Any = None
    markdown: str = ""


def read_lab(path: str | os.PathLike) -> LabResult:
    """The results of a lab folder (`results.json`, `results.md`: at least one of them)."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: not a folder (a lab result folder holds results.json / results.md)")
    js, md = p / "results.json", p / "results.md"
    if not js.exists() and not md.exists():
        raise FileNotFoundError(f"{p}: no results.json or results.md")
    return LabResult(
        p,
        results=read_json(js) if js.exists() else None,
        markdown=md.read_text(encoding="utf-8") if md.exists() else "",
    )
