"""`vitune train RECIPE`: run a training recipe's stages (resumable), with a progress bar per stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vitune.cli.app import app
from vitune.cli.mix import _parse_vars
from vitune.utils.progress import console, is_main_process, make_progress, print_rows, print_table, stage_bars


@app.command()
def train(
    recipe: Annotated[str | None, typer.Argument(help="A recipe YAML path or a bundled recipe name.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (re-running resumes).")] = None,
    stage: Annotated[
        str | None, typer.Option(help="Run only this stage (the ones before must be done).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted stage from its checkpoint.")] = True,
    var: Annotated[
        list[str] | None, typer.Option(help="Fill a ${NAME} variable: NAME=VALUE (repeatable).")
    ] = None,
    list_recipes: Annotated[bool, typer.Option("--list", help="List the bundled recipes.")] = False,
) -> None:
    """Train a LLaVA model stage by stage (align -> stage 1 -> stage 2 ...) from one recipe file."""
    from vitune.errors import InputError
    from vitune.train.recipe import RecipeError, bundled_recipes, load_recipe, missing_inputs

    if list_recipes or recipe is None:
        rows = []
        for name, path in bundled_recipes().items():
            try:
                stages = ", ".join(s.name for s in load_recipe(path, _placeholder_vars(path)).stages)
            except RecipeError:
                stages = "?"
            rows.append([name, stages, str(path)])
        print_rows(["recipe", "stages", "path"], rows)
        return
    if out is None:
        raise typer.BadParameter("--out is required")
    try:
        file = bundled_recipes().get(recipe, Path(recipe))
        rec = load_recipe(recipe, _parse_vars(var, file))
    except RecipeError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if stage is not None:
        rec.stage(stage)  # an unknown stage name is a RecipeError (exit 2) before any work
    missing = missing_inputs(rec, stage)
    if missing:
        raise InputError(None, "; ".join(missing))
    from vitune.train.stages import run_recipe  # the training stack: imported once inputs are checked

    main = is_main_process()
    with make_progress(disable=not main) as prog:
        try:
            result = run_recipe(rec, out, only_stage=stage, resume=resume, progress=stage_bars(prog))
        except RecipeError as e:
            console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
            raise typer.Exit(2) from None
    if not main:
        return  # under `accelerate launch` the first process reports for all
    table = Table("stage", "steps", "first loss", "last loss", "model")
    for name, r in result["stages"].items():
        fl, ll = r.get("first_loss"), r.get("last_loss")
        table.add_row(
            name,
            str(r.get("steps")),
            "-" if fl is None else f"{fl:.3f}",
            "-" if ll is None else f"{ll:.3f}",
            str(r.get("model_dir")),
        )
    print_table(table)
    console.print(f"model: {out / 'model'}")


def _placeholder_vars(path: Path) -> dict[str, str]:
    """Dummy values for a bundled recipe's variables, only to list its stages."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {k: "." for k, v in (data.get("variables") or {}).items() if v is None}
