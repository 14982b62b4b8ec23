"""The report page: Markdown tables for training stages, evaluation results (one run, or several
side by side with deltas against the first) and curation steps, plus the loss-curve figure.

Every number comes from a file the run wrote (`collect.py` and `eval.runner.load_results`); the
page names those files, so a reader can check any figure at its source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vitune.eval.runner import COMPARE_COLUMNS, RESULT_COLUMNS, compare_rows, markdown_table, result_rows
from vitune.report.collect import TrainRun
from vitune.report.plots import loss_curves
from vitune.utils.atomic import write_text

STAGE_COLUMNS = (
    "stage",
    "status",
    "steps",
    "first loss",
    "last loss",
    "tokens/s",
    "padding",
    "seconds",
    "rejected",
)


def _num(v: Any, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def stage_rows(run: TrainRun) -> list[tuple[str, ...]]:
    rows = []
    for st in run.stages:
        s, m = st.summary, st.metrics
        pads = [x["pad_frac"] for x in m if "pad_frac" in x]
        status = "done" if st.finished else ("running / killed" if (s or m) else "not started")
        if s.get("stopped_by_time_budget"):
            status += " (time budget)"
        rows.append(
            (
                st.name,
                status,
                _num(st.steps, "d"),
                _num(s.get("first_loss", m[0]["loss"] if m else None), ".3f"),
                _num(s.get("last_loss", m[-1]["loss"] if m else None), ".3f"),
                _num(s.get("tokens_per_s"), ",.0f"),
                _num(sum(pads) / len(pads) if pads else None, ".1%"),
                _num(s.get("train_seconds"), ".0f"),
                str(st.rejected),
            )
        )
    return rows


def eval_section(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """One run's table, or every later run against the first (B - A, per benchmark direction)."""
    names = list(runs)
    if len(names) == 1:
        return markdown_table(RESULT_COLUMNS, result_rows(runs[names[0]]))
    parts = []
    for other in names[1:]:
        cols = (*COMPARE_COLUMNS[:3], names[0], other, COMPARE_COLUMNS[5])
        parts.append(
            f"**{other}** against **{names[0]}**\n\n"
            + markdown_table(cols, compare_rows(runs[names[0]], runs[other]))
        )
    return "\n\n".join(parts)


def curation_section(summary: Mapping[str, Any]) -> str:
    rows = [("load", str(summary["loaded"]["count"]), str(summary["loaded"]["count"]), "0", "")]
    for st in summary["steps"]:
        reasons = sorted(st["removed_by_reason"].items(), key=lambda kv: -kv[1])[:3]
        rows.append(
            (
                st["step"],
                str(st["in"]),
                str(st["kept"]),
                str(st["removed"]),
                "; ".join(f"{r}: {n}" for r, n in reasons),
            )
        )
    head = f"Recipe `{summary['recipe']}` (seed {summary['seed']}): {summary['final']['count']} kept of {summary['loaded']['count']}, {summary['removed_total']} in the ledger."
    return head + "\n\n" + markdown_table(("step", "in", "kept", "removed", "main reasons"), rows)


def write_report(
    out_dir: str | os.PathLike,
    *,
    train: TrainRun | None = None,
    evals: Mapping[str, Mapping[str, Any]] | None = None,
    curation: Mapping[str, Any] | None = None,
    sources: Sequence[str] = (),
    title: str = "vitune report",
) -> Path:
    """Write `report.md` (and `loss_curves.png` when a stage logged metrics) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"# {title}"]
    if sources:
        parts.append("Read from: " + ", ".join(f"`{s}`" for s in sources))
    if train is not None:
        parts.append(f"## Training: `{train.recipe}`\n\n" + markdown_table(STAGE_COLUMNS, stage_rows(train)))
        fig = loss_curves(train, out / "loss_curves.png")
        if fig is not None:
            parts.append(f"![training loss per stage]({fig.name})")
    if evals:
        parts.append("## Evaluation\n\n" + eval_section(evals))
    if curation is not None:
        parts.append("## Curation\n\n" + curation_section(curation))
    path = out / "report.md"
    write_text(path, "\n\n".join(parts) + "\n")
    return path
