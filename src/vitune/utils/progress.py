"""Rich progress bars shared by long-running commands (rate and ETA included)."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def make_progress(*, disable: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=disable,
    )


def is_main_process() -> bool:
    """False in every process but the first of an `accelerate launch` / torchrun job (RANK is set by
    the launcher before anything else runs): only the first prints bars and summaries."""
    return int(os.environ.get("RANK", "0")) == 0


def stage_bars(prog: Progress):
    """A `(stage_name, metrics_record) -> None` callback drawing one bar per training stage."""
    bars: dict[str, object] = {}

    def on_step(stage: str, m: dict) -> None:
        if stage not in bars:
            bars[stage] = prog.add_task(stage, total=m.get("total_steps"), info="")
        info = f"loss {m.get('loss', float('nan')):.3f}"
        if "tokens_per_s" in m:
            info += f"  {m['tokens_per_s']:,.0f} tok/s"
        prog.update(bars[stage], completed=m.get("step", 0), total=m.get("total_steps"), info=info)

    return on_step
