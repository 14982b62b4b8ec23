"""The root typer app and its sub-apps; command modules register on these.

User-input errors (`vitune.errors.InputError`, a missing file, bad JSON/YAML/UTF-8, disk full) from any
command become one line on stderr naming the file, record and reason, and exit 2; `-v` re-raises
them with the traceback. Help and usage errors are plain click text (`rich_markup_mode=None`): click
wraps help to the terminal without cutting words off with "…", and never wraps an error message.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from vitune import __version__
from vitune.errors import USER_ERRORS, describe_error
from vitune.utils.progress import console

# Exit status of a user-input error (click's own usage errors use 2 as well).
INPUT_ERROR_EXIT = 2


def _verbose(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("verbose"))


class HelpGroup(TyperGroup):
    """A command group whose listing shows each command's whole first sentence, wrapped (click's
    default cuts it at ~45 characters with "...")."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            text = cmd.short_help or (cmd.help or "").strip().split("\n\n")[0]
            rows.append((name, " ".join(text.split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class VituneGroup(HelpGroup):
    """The root group: turns a user-input error raised by any command into one message and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            if _verbose(ctx) or isinstance(e, BrokenPipeError):  # `vitune ... | head`: typer's to handle
                raise
            print(f"error: {describe_error(e)}", file=sys.stderr)
            raise typer.Exit(INPUT_ERROR_EXIT) from None


app = typer.Typer(
    cls=VituneGroup,
    help="vitune: visual instruction tuning, from annotations to a trained LLaVA.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
tasks_app = typer.Typer(
    cls=HelpGroup, help="The instruction task catalog.", no_args_is_help=True, rich_markup_mode=None
)
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
