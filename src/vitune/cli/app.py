"""The root typer app and its sub-apps; command modules register on these."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from vitune import __version__
from vitune.utils.progress import console

app = typer.Typer(
    help="vitune: visual instruction tuning, from annotations to a trained LLaVA.", no_args_is_help=True
)
tasks_app = typer.Typer(help="The instruction task catalog.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")


def _version(value: bool) -> None:
    if value:
        console.print(f"vitune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        # transformers' own tqdm bars (weight loading/saving) would interleave with ours.
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
