"""Resumable steps: a step's outputs are trusted only when its `done.json` marker matches its params.

A step writes its outputs first and the marker last (atomically), so a kill at any point leaves
either a complete step or one that is redone on the next run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vitune.utils.atomic import write_json

MARKER = "done.json"


def is_done(step_dir: Path, params: dict[str, Any]) -> bool:
    marker = step_dir / MARKER
    if not marker.exists():
        return False
    try:
        saved = json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return saved.get("params") == json.loads(json.dumps(params, default=str))


def mark_done(step_dir: Path, params: dict[str, Any], result: dict[str, Any] | None = None) -> None:
    write_json(
        step_dir / MARKER,
        {"params": json.loads(json.dumps(params, default=str)), "result": result or {}},
        indent=2,
    )


def read_result(step_dir: Path) -> dict[str, Any]:
    return json.loads((step_dir / MARKER).read_text(encoding="utf-8")).get("result", {})


def run_step(
    step_dir: Path,
    params: dict[str, Any],
    compute: Callable[[], dict[str, Any]],
    say: Callable[[str], Any],
    name: str,
) -> dict[str, Any]:
    """`compute()`'s result, or the saved one when `step_dir` is done with these `params`.

    The marker is written only after `compute` returns, so a step killed midway is redone.
    """
    if is_done(step_dir, params):
        say(f"{name}: reusing {step_dir}")
        return read_result(step_dir)
    result = compute()
    mark_done(step_dir, params, result)
    return result
