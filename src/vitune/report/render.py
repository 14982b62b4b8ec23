"""The report: `report.md` (tables, figures saved beside it) and `report.html` (one self-contained
page, figures and thumbnails inlined) from what runs wrote: the training stages of one or more
runs with loss and lr curves, evaluation tables with deltas against the first run, per-category
bars and example predictions, multi-round comparisons, curation funnels and lab results.

Every number comes from a file a run wrote (`collect.py`, `eval.runner.load_results`); the page
names those files, so a reader can check any figure at its source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vitune.eval.runner import COMPARE_COLUMNS, RESULT_COLUMNS, compare_rows, markdown_table, result_rows
from vitune.report.collect import LabResult, TrainRun
from vitune.report.examples import BenchExamples, eval_examples
from vitune.report.plots import category_bars, training_curves
from vitune.utils.atomic import write_bytes, write_text

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
CURVES_FILE = "training_curves.png"
HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"


def _num(v: Any, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def stage_rows(run: TrainRun) -> list[tuple[str, ...]]:
    rows = []
    for st in run.stages:
        s, m = st.summary, st.metrics
        pads = [x["pad_frac"] for x in m if "pad_frac" in x]
        status = "done" if st.finished else ("running / killed" if (s or m) else "not started")
        if s.get("over_time_budget"):
            status += " (past its time budget)"
        rows.append(
            (
                st.name,
                status,
                _num(st.steps, "d"),
                _num(s.get("first_loss", m[0].get("loss") if m else None), ".3f"),
                _num(s.get("last_loss", m[-1].get("loss") if m else None), ".3f"),
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


def curation_rows(summary: Mapping[str, Any]) -> list[tuple[str, ...]]:
    rows = [("load", str(summary["loaded"]["count"]), str(summary["loaded"]["count"]), "0", "")]
    for st in summary["steps"]:
        reasons = sorted(st["removed_by_reason"].items(), key=lambda kv: -kv[1])[:3]
        reasons_text = "; ".join(f"{r}: {n}" for r, n in reasons)
        rows.append((st["step"], str(st["in"]), str(st["kept"]), str(st["removed"]), reasons_text))
    return rows


CURATION_COLUMNS = ("step", "in", "kept", "removed", "main reasons")


def curation_head(summary: Mapping[str, Any]) -> str:
    return (
        f"Recipe `{summary['recipe']}` (seed {summary['seed']}): {summary['final']['count']} kept of "
        f"{summary['loaded']['count']}, {summary['removed_total']} in the ledger."
    )


def curation_section(summary: Mapping[str, Any]) -> str:
    return curation_head(summary) + "\n\n" + markdown_table(CURATION_COLUMNS, curation_rows(summary))


def examples_markdown(exs: Sequence[BenchExamples]) -> str:
    """Per benchmark: the empty share, scorer counts, and the example answers (text only)."""
    lines = []
    for b in exs:
        counts = "".join(f", {k} {v}" for k, v in b.scorer_counts.items())
        lines.append(f"- **{b.bench}**: {b.n} answers, {b.n_empty} empty ({b.empty_share:.1f}%){counts}")
        for tag, group in (("right", b.right), ("wrong", b.wrong)):
            for e in group:
                q = " ".join(e.question.split())[:120]
                ref = ", ".join(e.answers[:3])
                lines.append(
                    f"  - {tag}: `{e.item_id}` {q} → **{e.prediction.strip()[:80]}** (reference: {ref})"
                )
        if b.note:
            lines.append(f"  - {b.note}")
    return "\n".join(lines)


def multiround_markdown(result: Mapping[str, Any]) -> str:
    from vitune.eval.multiround import multiround_table_rows

    return markdown_table(("row", "n", "single", "multi", "delta"), multiround_table_rows(result))


def lab_markdown(lab: LabResult) -> str:
    from vitune.report.page import lab_tables

    if lab.markdown:
        return lab.markdown.strip()
    return "\n\n".join(
        f"**{t}**\n\n" + markdown_table(cols, rows) for t, cols, rows in lab_tables(lab.results)
    )


def _markdown(out: Path, ctx: Mapping[str, Any], title: str, sources: Sequence[str]) -> str:
    parts = [f"# {title}"]
    if sources:
        parts.append("Read from: " + ", ".join(f"`{s}`" for s in sources))
    for name, run in ctx["trains"].items():
        parts.append(
            f"## Training: {name} (`{run.recipe}`)\n\n" + markdown_table(STAGE_COLUMNS, stage_rows(run))
        )
    if ctx["curves"] is not None:
        write_bytes(out / CURVES_FILE, ctx["curves"], fsync=False)
        parts.append(f"![training loss and lr per stage]({CURVES_FILE})")
    if ctx["evals"]:
        parts.append("## Evaluation\n\n" + eval_section(ctx["evals"]))
        for bench, png in ctx["bars"].items():
            write_bytes(out / f"eval_{bench}.png", png, fsync=False)
            parts.append(f"![{bench} per category](eval_{bench}.png)")
        for name, exs in ctx["examples"].items():
            parts.append(f"### Example predictions: {name}\n\n" + examples_markdown(exs))
    for name, mr in ctx["multiround"].items():
        parts.append(f"## Multi-round: {name}\n\n" + multiround_markdown(mr))
    if ctx["curation"] is not None:
        parts.append("## Curation\n\n" + curation_section(ctx["curation"]))
    for name, lab in ctx["labs"].items():
        parts.append(f"## Lab: {name}\n\n" + lab_markdown(lab))
    return "\n\n".join(parts) + "\n"


def write_report(
    out_dir: str | os.PathLike,
    *,
    train: TrainRun | Mapping[str, TrainRun] | None = None,
    evals: Mapping[str, Mapping[str, Any]] | None = None,
    eval_dirs: Mapping[str, str | os.PathLike] | None = None,
    multiround: Mapping[str, Mapping[str, Any]] | None = None,
    curation: Mapping[str, Any] | None = None,
    labs: Mapping[str, LabResult] | None = None,
    sources: Sequence[str] = (),
    title: str = "vitune report",
    examples: int = 2,
    seed: int = 0,
) -> Path:
    """Write `report.md` (+ its PNGs) and `report.html` into `out_dir`; returns the Markdown path.

    `train`: one run, or several by name (compared stage by stage). `evals`: results.json of each
    eval run by name (later runs get deltas against the first); `eval_dirs`: their folders, for
    example predictions (`examples` right and wrong answers per benchmark).
    """
    from vitune.report.page import write_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trains = {train.recipe: train} if isinstance(train, TrainRun) else dict(train or {})
    evals = dict(evals or {})
    ctx: dict[str, Any] = {
        "trains": trains,
        "curves": training_curves(trains) if trains else None,
        "evals": evals,
        "bars": {},
        "examples": {
            name: eval_examples(d, evals[name], k=examples, seed=seed)
            for name, d in (eval_dirs or {}).items()
            if name in evals and examples > 0
        },
        "multiround": dict(multiround or {}),
        "curation": curation,
        "labs": dict(labs or {}),
    }
    if evals:
        benches: list[str] = []
        for r in evals.values():
            benches += [b for b in r.get("benchmarks", {}) if b not in benches]
        ctx["bars"] = {b: png for b in benches if (png := category_bars(b, evals)) is not None}
    path = out / MARKDOWN_FILE
    write_text(path, _markdown(out, ctx, title, sources))
    write_html(out / HTML_FILE, ctx, title, sources)
    return path
