"""Rich progress bars shared by long-running commands (rate and ETA included)."""

from __future__ import annotations

import os
import sys

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


def _duration(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def log_line(stage: str, m: dict) -> str:
    """One plain progress line of a training metrics record (step/total, loss, lr, tokens/s, ETA)."""
    step, total = m.get("step", 0), m.get("total_steps") or 0
    line = f"train {stage}: step {step}/{total}  loss {m.get('loss', float('nan')):.4f}"
    if "lr" in m:
        line += f"  lr {m['lr']:.3g}"
    if "tokens_per_s" in m:
        line += f"  {m['tokens_per_s']:,.0f} tok/s"
    if step and total and "elapsed_s" in m:
        line += f"  eta {_duration(m['elapsed_s'] / step * (total - step))}"
    return line


def stage_bars(prog: Progress):
    """A `(stage_name, metrics_record) -> None` callback drawing one bar per training stage.

    When stderr is not a terminal (a log file, a batch job), a bar shows nothing until the end, so
    each record (every `log_every` steps) is also written to stderr as one plain line.
    """
    bars: dict[str, object] = {}
    plain = not console.is_terminal and not prog.disable

    def on_step(stage: str, m: dict) -> None:
        if plain:
            print(log_line(stage, m), file=sys.stderr, flush=True)
        if stage not in bars:
            bars[stage] = prog.add_task(stage, total=m.get("total_steps"), info="")
        info = f"loss {m.get('loss', float('nan')):.3f}"
        if "tokens_per_s" in m:
            info += f"  {m['tokens_per_s']:,.0f} tok/s"
        prog.update(bars[stage], completed=m.get("step", 0), total=m.get("total_steps"), info=info)

    return on_step
