"""Honest results: benchmark files checked before generating, empty and unparsable answers counted,
runs scored under different protocols never compared silently (docs/EVALUATION.md).

The runner (`eval/runner.py`) calls these; each is a plain function of items, predictions or
results dicts, so reports and other front ends can reuse them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vitune.data.paths import UnsafePathError, resolve_image
from vitune.eval.benchmarks import BenchItem, Benchmark
from vitune.eval.benchmarks.base import BenchmarkDataError, is_empty

# Empty + unparsable answers above this share (percent) of a benchmark's items get a warning.
ANSWER_WARN_SHARE = 5.0


def missing_files(image_root: Path, items: Iterable[BenchItem]) -> list[str]:
    """`item id: reason` for every item whose image file is missing: a wrong folder or an incomplete
    copy, one error before anything runs. A path that breaks the path rule is a bad record instead:
    `image_problems` ledgers it and the item is not asked (one bad record never stops a run)."""
    out = []
    for it in items:
        if isinstance(it.image, bytes) and not it.image:
            out.append(f"{it.item_id}: empty embedded image")
        if not isinstance(it.image, str):
            continue  # no image, or embedded bytes (decoded through the one image check when asked)
        try:
            path = resolve_image(image_root, it.image)
        except UnsafePathError:
            continue  # ledgered by image_problems, not fatal
        if not path.is_file():
            out.append(f"{it.item_id}: {path} is missing")
    return out


def check_files(name: str, image_root: Path, items: Iterable[BenchItem], show: int = 10) -> None:
    """One `BenchmarkDataError` listing the items of benchmark `name` whose image is missing (the
    first `show` of them)."""
    bad = missing_files(image_root, items)
    if bad:
        listed = "\n  ".join(bad[:show]) + (f"\n  ... and {len(bad) - show} more" if len(bad) > show else "")
        raise BenchmarkDataError(
            f"{name}: {len(bad)} item(s) have no usable image under {image_root}:\n  {listed}"
        )


def answer_health(bench: Benchmark, preds: Mapping[str, str], items: Sequence[BenchItem]) -> dict[str, Any]:
    """Empty and unparsable answers of one benchmark, with their shares (percent) of its items."""
    by_id = {it.item_id: it for it in items}
    n_empty = sum(is_empty(p) for p in preds.values())
    n_unparsable = sum(
        not is_empty(p) and bench.unparsable(p, by_id[i]) for i, p in preds.items() if i in by_id
    )
    n = len(items)
    return {
        "n_empty": n_empty,
        "n_unparsable": n_unparsable,
        "empty_share": round(100 * n_empty / n, 2) if n else 0.0,
        "unparsable_share": round(100 * n_unparsable / n, 2) if n else 0.0,
    }


def answer_warnings(results: Mapping[str, Any]) -> list[str]:
    """One line per benchmark whose empty + unparsable answers exceed `ANSWER_WARN_SHARE` percent."""
    out = []
    for name, b in results.get("benchmarks", {}).items():
        share = (b.get("empty_share") or 0.0) + (b.get("unparsable_share") or 0.0)
        if share > ANSWER_WARN_SHARE:
            out.append(
                f"{name}: {share:.1f}% of the answers are empty ({b.get('n_empty', 0)}) or unparsable "
                f"({b.get('n_unparsable', 0)}); the score mostly measures the fallback rule"
            )
    return out


def protocol_label(b: Mapping[str, Any]) -> str:
    """`paper v2`: a benchmark entry's scoring protocol and scorer version ("—" when unrecorded)."""
    if not b.get("protocol"):
        return "—"
    return f"{b['protocol']} v{b['scorer_version']}" if b.get("scorer_version") else str(b["protocol"])


def protocol_mismatches(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """One line per benchmark of both runs scored under a different protocol or scorer version."""
    out = []
    for name, ra in a["benchmarks"].items():
        rb = b["benchmarks"].get(name)
        if rb is not None and protocol_label(ra) != protocol_label(rb):
            out.append(
                f"{name}: A is scored {protocol_label(ra)}, B {protocol_label(rb)}; the delta mixes protocols"
            )
    return out
