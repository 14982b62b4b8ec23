"""Report figures: training curves, per-category evaluation bars, length histograms.

matplotlib with the Agg backend (no display needed); PNGs are written without the metadata that
names the matplotlib version and creation time (`assets.figure_png`), so the same inputs give the
same bytes. Every function returns PNG bytes (or None when there is nothing to draw); the
Markdown page saves them beside it and the HTML page inlines them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vitune.report.assets import figure_png
from vitune.report.collect import TrainRun

RUN_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(plt, fig) -> bytes:
    """The finished figure as reproducible PNG bytes; the figure is closed."""
    fig.tight_layout()
    data = figure_png(fig)
    plt.close(fig)
    return data


def _grouped_bars(ax, n_groups: int, series: Mapping[str, Sequence[float]]) -> None:
    """One bar per series in each of `n_groups` groups, side by side, one colour per series."""
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [k + (i - (len(series) - 1) / 2) * width for k in range(n_groups)]
        ax.bar(xs, values, width, label=name, color=RUN_COLORS[i % len(RUN_COLORS)])


def training_curves(runs: Mapping[str, TrainRun]) -> bytes | None:
    """Loss (top row) and learning rate (bottom row) per optimizer step, one column per stage name,
    every run in its own colour, so runs are compared stage by stage; None when no stage logged."""
    names: list[str] = []
    for run in runs.values():
        names += [s.name for s in run.stages if s.metrics and s.name not in names]
    if not names:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        2, len(names), figsize=(4.2 * len(names), 5.6), squeeze=False, sharex="col", height_ratios=(3, 2)
    )
    for col, name in enumerate(names):
        loss_ax, lr_ax = axes[0][col], axes[1][col]
        for i, (label, run) in enumerate(runs.items()):
            st = next((s for s in run.stages if s.name == name and s.metrics), None)
            if st is None:
                continue
            steps = [m["step"] for m in st.metrics]
            color = RUN_COLORS[i % len(RUN_COLORS)]
            tag = label + ("" if st.finished else " (unfinished)")
            loss_ax.plot(
                steps, [m.get("loss", float("nan")) for m in st.metrics], color=color, lw=1.2, label=tag
            )
            lr_ax.plot(steps, [m.get("lr", float("nan")) for m in st.metrics], color=color, lw=1.0)
        loss_ax.set_title(name, fontsize=10)
        loss_ax.set_ylabel("loss")
        loss_ax.grid(alpha=0.3)
        loss_ax.legend(fontsize=7)
        lr_ax.set_xlabel("optimizer step")
        lr_ax.set_ylabel("lr")
        lr_ax.grid(alpha=0.3)
        lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    return _png(plt, fig)


def category_bars(bench: str, runs: Mapping[str, Mapping[str, Any]]) -> bytes | None:
    """Grouped bars: one group per category of `bench` (overall first), one bar per run."""
    present = {n: r["benchmarks"][bench] for n, r in runs.items() if bench in r.get("benchmarks", {})}
    if not present:
        return None
    cats: list[str] = []
    for b in present.values():
        cats += [c for c in b.get("per_category", {}) if c not in cats]
    labels = ["overall", *cats]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(labels) * len(present) + 1.5), 3.0))
    series = {}
    for name, b in present.items():
        vals = [b.get("overall")] + [(b.get("per_category", {}).get(c) or {}).get("score") for c in cats]
        series[name] = [float("nan") if v is None else v for v in vals]
    _grouped_bars(ax, len(labels), series)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(next(iter(present.values())).get("metric", "score"))
    ax.set_title(bench, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _png(plt, fig)


def histogram(title: str, bins: Sequence[str], series: Mapping[str, Sequence[int]]) -> bytes:
    """Bars of counts per bin label, one colour per series (e.g. instruction and answer words)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 2.6))
    _grouped_bars(ax, len(bins), series)
    ax.set_xticks(range(len(bins)), bins, fontsize=8)
    ax.set_xlabel("words")
    ax.set_ylabel("instances")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _png(plt, fig)
