"""Training figures: loss (and learning rate) per optimizer step, one panel per stage.

matplotlib with the Agg backend (no display needed); PNGs are written without the metadata that
names the matplotlib version and creation time, so the same run gives the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from vitune.report.collect import TrainRun
from vitune.utils.atomic import atomic_open


def loss_curves(run: TrainRun, path: str | os.PathLike) -> Path | None:
    """Loss and lr per step for every stage that logged metrics; None when none did."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in run.stages if s.metrics]
    if not stages:
        return None
    fig, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.2), squeeze=False)
    for ax, st in zip(axes[0], stages, strict=True):
        steps = [m["step"] for m in st.metrics]
        ax.plot(steps, [m["loss"] for m in st.metrics], color="tab:blue", linewidth=1.2)
        ax.set_title(st.name + ("" if st.finished else " (unfinished)"), fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss", color="tab:blue")
        ax.grid(alpha=0.3)
        if any("lr" in m for m in st.metrics):
            lr = ax.twinx()
            lr.plot(steps, [m.get("lr", float("nan")) for m in st.metrics], color="tab:orange", linewidth=0.8)
            lr.set_ylabel("lr", color="tab:orange")
            lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.suptitle(f"{run.recipe}: training loss", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path, "wb", encoding=None) as fh:
        fig.savefig(fh, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path
