"""`vitune export`: rewrite a model folder in the llava-hf layout, and check it across transformers versions.

vitune export run/stage1 --out run/stage1-hf           # a stage, model folder or LoRA adapter
vitune export run/stage1/model --out run/stage1/model  # in place (older exports)
vitune export --check run/stage1-hf --python .venv-tf4/bin/python
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitune.cli.app import app
from vitune.utils.progress import console


@app.command("export")
def export_cmd(
    src: Annotated[
        Path,
        typer.Argument(
            help="A model folder, a training stage folder or a peft LoRA adapter folder (merged)."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the export (an existing export there is replaced).")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Load the export (OUT, else SRC) under another Python and compare (see --python)."
        ),
    ] = False,
    python: Annotated[
        str | None,
        typer.Option(
            help="The other environment's Python (default: $VITUNE_CHECK_PYTHON, else .venv-tf4/bin/python)."
        ),
    ] = None,
    tolerance: Annotated[float, typer.Option(min=0, help="Largest logit difference accepted.")] = 1e-5,
) -> None:
    """Write SRC in the llava-hf layout (transformers 4.49+ and 5.x load it alike); --check verifies one."""
    from vitune.train.export import export_model
    from vitune.train.export_check import check_export, default_python

    if out is None and not check:
        raise typer.BadParameter("give --out DIR (to export) and/or --check")
    other = python or default_python()
    if check and other is None:
        raise typer.BadParameter(
            "--check needs --python (or $VITUNE_CHECK_PYTHON, or .venv-tf4/): none found"
        )
    target = src
    try:
        if out is not None:
            target = export_model(src, out)
            console.print(f"export: {target}")
        if check:
            assert other is not None
            result = check_export(target, other, tolerance=tolerance)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    if check:
        typer.echo(result.summary())
        if not result.ok:
            raise typer.Exit(1)
