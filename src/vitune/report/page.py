"""`report.html`: the report's sections as template data for `templates/report.html.j2`.

`render.write_report` gathers what runs wrote (one context for both pages); this module turns it
into rows for the HTML tables (scores of every eval run side by side, deltas against the first),
inlines the figures as data URIs and renders the page. Lab results are read generically
(`lab_tables`): any JSON becomes key/value and list-of-records tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vitune.report.assets import data_uri
from vitune.utils.atomic import write_text

MAX_LAB_ROWS = 500


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}"


def eval_tables(evals: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per benchmark (union over runs, first-seen order): rows of category, n, and per run its
    score and its delta against the first run (`better` / `worse` by the benchmark's direction)."""
    names = list(evals)
    benches: list[str] = []
    for r in evals.values():
        benches += [b for b in r.get("benchmarks", {}) if b not in benches]
    out = []
    for bench in benches:
        per = {n: evals[n].get("benchmarks", {}).get(bench) for n in names}
        ref = next(b for b in per.values() if b)
        up = ref.get("higher_is_better", True)
        cats: list[str] = []
        for b in per.values():
            cats += [c for c in (b or {}).get("per_category", {}) if c not in cats]
        rows = []
        for cat in ["overall", *cats]:
            scores = []
            for n in names:
                b = per[n] or {}
                if cat == "overall":
                    v, cnt = b.get("overall"), b.get("n")
                else:
                    c = b.get("per_category", {}).get(cat) or {}
                    v, cnt = c.get("score"), c.get("n")
                scores.append((n, v, cnt))
            first = scores[0][1]
            cells = []
            for i, (n, v, _) in enumerate(scores):
                delta, cls = "", ""
                if i and v is not None and first is not None:
                    d = v - first
                    delta = f"{d:+.2f}"
                    cls = "" if abs(d) < 1e-9 else ("better" if (d > 0) == up else "worse")
                cells.append({"run": n, "score": _fmt(v), "delta": delta, "cls": cls})
            n_items = next((c for _, _, c in scores if c is not None), None)
            rows.append({"category": cat, "n": "" if n_items is None else n_items, "cells": cells})
        out.append({"bench": bench, "metric": ref.get("metric", ""), "rows": rows, "details": details(per)})
    return out


# results.json fields of a benchmark that the score table already shows (or that are paths).
SHOWN = {"name", "path", "image_root", "metric", "higher_is_better", "overall", "n", "per_category", "extra"}


def details(per: Mapping[str, Mapping[str, Any] | None]) -> list[tuple[str, list[str]]]:
    """Every other scalar a run's results.json has for the benchmark (the scorer's extras, a
    protocol, answer counts...), one row per field with each run's value, whatever the scorer adds."""
    keys: list[str] = []
    vals: dict[str, dict[str, Any]] = {}
    for run, b in per.items():
        flat = {k: v for k, v in (b or {}).items() if k not in SHOWN}
        flat.update((b or {}).get("extra") or {})
        vals[run] = {k: v for k, v in flat.items() if _scalar(v)}
        keys += [k for k in vals[run] if k not in keys]
    return [(k, [_cell(vals[run].get(k)) for run in per]) for k in keys]


def _scalar(v: Any) -> bool:
    return isinstance(v, str | int | float | bool) or v is None


def lab_tables(
    obj: Any, title: str = "results", depth: int = 0
) -> list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]]:
    """Any JSON as tables: a list of records becomes one table (union of keys as columns), a
    mapping's scalars a key/value table, nested values tables of their own (titled by path)."""
    tables: list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]] = []
    if isinstance(obj, list) and obj and all(isinstance(x, Mapping) for x in obj):
        cols: list[str] = []
        for rec in obj:
            cols += [k for k in rec if k not in cols and _scalar(rec[k])]
        rows = [tuple(_cell(rec.get(c)) for c in cols) for rec in obj[:MAX_LAB_ROWS]]
        return [(title, tuple(cols), rows)] if cols else []
    if isinstance(obj, list):
        return [(title, ("value",), [(_cell(x),) for x in obj[:MAX_LAB_ROWS]])]
    if not isinstance(obj, Mapping):
        return [(title, ("value",), [(_cell(obj),)])]
    flat = [(str(k), _cell(v)) for k, v in obj.items() if _scalar(v)]
    if flat:
        tables.append((title, ("key", "value"), flat[:MAX_LAB_ROWS]))
    if depth < 3:
        for k, v in obj.items():
            if not _scalar(v):
                tables += lab_tables(v, f"{title}.{k}", depth + 1)
    return tables


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def write_html(path: Path, ctx: Mapping[str, Any], title: str, sources: Sequence[str]) -> Path:
    from vitune.eval.multiround import multiround_table_rows
    from vitune.report.html import render_page
    from vitune.report.render import CURATION_COLUMNS, STAGE_COLUMNS, curation_head, curation_rows, stage_rows

    cur = ctx["curation"]
    funnel = []
    if cur is not None:
        total = max(1, int(cur["loaded"]["count"]))
        funnel = [(*r, 100.0 * int(r[2]) / total) for r in curation_rows(cur)]
    html = render_page(
        "report.html.j2",
        title=title,
        sources=list(sources),
        trains=[
            {"name": n, "recipe": r.recipe, "path": str(r.path), "rows": stage_rows(r)}
            for n, r in ctx["trains"].items()
        ],
        stage_columns=STAGE_COLUMNS,
        curves=data_uri(ctx["curves"], "image/png") if ctx["curves"] else None,
        eval_names=list(ctx["evals"]),
        eval_tables=eval_tables(ctx["evals"]) if ctx["evals"] else [],
        bars={b: data_uri(png, "image/png") for b, png in ctx["bars"].items()},
        examples=ctx["examples"],
        multiround={n: multiround_table_rows(r) for n, r in ctx["multiround"].items()},
        curation=cur,
        curation_head=curation_head(cur) if cur is not None else "",
        curation_columns=CURATION_COLUMNS,
        funnel=funnel,
        labs={
            n: {
                "path": str(lab.path),
                "markdown": lab.markdown,
                "tables": lab_tables(lab.results) if lab.results is not None else [],
            }
            for n, lab in ctx["labs"].items()
        },
    )
    write_text(path, html)
    return path
