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

# Progress, logs and messages go to stderr; data and listings to stdout (`vitune tasks list | grep`).
console = Console(stderr=True)


def print_table(table: object) -> None:
    """A result table on stdout (it is the command's data) at its natural width: a narrow terminal
    (or COLUMNS=40) never cuts a cell with "…" or wraps a number over two lines."""
    from rich.measure import Measurement

    wide = Console(width=10_000)
    need = Measurement.get(wide, wide.options, table).maximum
    Console(width=max(Console().width, need)).print(table)


def print_rows(header: list[str], rows: list[list[str]]) -> None:
    """A listing on stdout as plain aligned columns: never wrapped or cut at the terminal width, so
    `vitune tasks list | grep color` finds whole rows whatever COLUMNS is."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


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
