"""`vitune report`: one Markdown page from a run's training, evaluation and curation outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitune.cli.app import app
from vitune.utils.progress import console


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="Folder for report.md and loss_curves.png.")],
    train: Annotated[Path | None, typer.Option(help="A `vitune train` output folder.")] = None,
    eval_run: Annotated[
        list[str] | None,
        typer.Option(
            "--eval",
            help="NAME=FOLDER of a `vitune eval` run (repeatable; later runs are compared with the first).",
        ),
    ] = None,
    curation: Annotated[Path | None, typer.Option(help="A `vitune curate` output folder.")] = None,
    title: Annotated[str, typer.Option(help="The page's title.")] = "vitune report",
) -> None:
    """Training stages with loss curves, evaluation tables (with deltas) and curation counts."""
    from vitune.eval.runner import load_results
    from vitune.report.collect import read_curation, read_train_run
    from vitune.report.render import write_report

    if train is None and not eval_run and curation is None:
        raise typer.BadParameter("give at least one of --train, --eval, --curation")
    sources: list[str] = []
    evals = {}
    try:
        run = read_train_run(train) if train is not None else None
        if train is not None:
            sources.append(str(train))
        for spec in eval_run or []:
            name, sep, folder = spec.partition("=")
            if not sep or not name or not folder:
                raise ValueError(f"--eval {spec!r}: expected NAME=FOLDER")
            if name in evals:
                raise ValueError(f"--eval {name!r} is given twice")
            if not Path(folder).exists():
                raise FileNotFoundError(f"--eval {name}: {folder} does not exist")
            evals[name] = load_results(folder)
            sources.append(folder)
        cur = read_curation(curation) if curation is not None else None
        if curation is not None:
            sources.append(str(curation))
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    path = write_report(out, train=run, evals=evals or None, curation=cur, sources=sources, title=title)
    console.print(f"report: {path}")
