"""`vitune train RECIPE`: run a training recipe's stages (resumable), with a progress bar per stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitune.cli.app import app
from vitune.cli.mix import _parse_vars
from vitune.utils.progress import console, is_main_process, make_progress, stage_bars


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
    num_workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="DataLoader workers per process for every stage (default: the stage's num_workers, "
            "else min(8, cores - 1)); batches and losses do not depend on it.",
        ),
    ] = None,
) -> None:
    """Train a LLaVA model stage by stage (align -> stage 1 -> stage 2 ...) from one recipe file."""
    from vitune.train.recipe import RecipeError, bundled_recipes, load_recipe
    from vitune.train.stages import run_recipe

    if list_recipes or recipe is None:
        table = Table("recipe", "stages", "path")
        for name, path in bundled_recipes().items():
            try:
                stages = ", ".join(s.name for s in load_recipe(path, _placeholder_vars(path)).stages)
            except RecipeError:
                stages = "?"
            table.add_row(name, stages, str(path))
        console.print(table)
        return
    if out is None:
        raise typer.BadParameter("--out is required")
    try:
        rec = load_recipe(recipe, _parse_vars(var))
    except RecipeError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    if num_workers is not None:
        for st in rec.stages:
            st.num_workers = num_workers
    main = is_main_process()
    with make_progress(disable=not main) as prog:
        try:
            result = run_recipe(rec, out, only_stage=stage, resume=resume, progress=stage_bars(prog))
        except RecipeError as e:
            console.print(f"[red]error:[/red] {e}")
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
    console.print(table)
    console.print(f"model: {out / 'model'}")


def _placeholder_vars(path: Path) -> dict[str, str]:
    """Dummy values for a bundled recipe's variables, only to list its stages."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {k: "." for k, v in (data.get("variables") or {}).items() if v is None}
