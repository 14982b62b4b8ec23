"""`vitune train RECIPE`: run a training recipe's stages (resumable), with a progress bar per stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
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
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a field: stages.NAME.FIELD=VALUE or model.FIELD=VALUE (repeatable)."
        ),
    ] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Cap every stage at N steps.")] = None,
    time_scale: Annotated[
        float | None, typer.Option(min=0.01, help="Multiply every stage's step count (and any time budget).")
    ] = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="Print samples, steps, FLOPs and memory per GPU; train nothing.")
    ] = False,
    config_file: Annotated[
        Path | None, typer.Option(help="--plan: the accelerate config of the launch (configs/accelerate/).")
    ] = None,
    processes: Annotated[
        int, typer.Option(min=1, help="--plan: processes (GPUs) without a config file.")
    ] = 1,
    strategy: Annotated[
        str | None, typer.Option(help="--plan: single, ddp, fsdp, zero2 or zero3 without a config file.")
    ] = None,
    gpu_mem: Annotated[str | None, typer.Option(help="--plan: memory of one GPU, e.g. 80GB.")] = None,
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
    from vitune.errors import InputError
    from vitune.train.recipe import RecipeError, adjust_stages, bundled_recipes, load_recipe, missing_inputs

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
    if out is None and not plan:
        raise typer.BadParameter("--out is required")
    try:
        file = bundled_recipes().get(recipe, Path(recipe))
        rec = load_recipe(recipe, _parse_vars(var, file), set_ or ())
        if max_steps is not None or time_scale is not None:
            update = {} if max_steps is None else {"max_steps": max_steps}
            rec = adjust_stages(rec, update, 1.0 if time_scale is None else time_scale)
        if stage is not None:
            rec.stage(stage)  # an unknown stage name is a RecipeError (exit 2) before any work
        if plan:
            _print_plan(rec, out, stage, config_file, processes, strategy, gpu_mem)
            return
    except RecipeError as e:
        _error(e)
        raise typer.Exit(2) from None
    if num_workers is not None:
        for st in rec.stages:
            st.num_workers = num_workers
    assert out is not None
    missing = missing_inputs(rec, stage)
    if missing:
        raise InputError(None, "; ".join(missing))
    from vitune.train.stages import run_recipe  # the training stack: imported once inputs are checked

    main = is_main_process()
    with make_progress(disable=not main) as prog:
        try:
            result = run_recipe(rec, out, only_stage=stage, resume=resume, progress=stage_bars(prog))
        except RecipeError as e:
            _error(e)
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


def _error(e: Exception) -> None:
    # The message may hold paths or values with square brackets; rich must not read them as markup.
    # soft_wrap: no line breaks inserted at the terminal's width (paths stay whole).
    console.print("[red]error:[/red] ", end="")
    console.print(str(e), markup=False, highlight=False, soft_wrap=True)


def _print_plan(
    rec: Any,
    out: Path | None,
    stage: str | None,
    config_file: Path | None,
    processes: int,
    strategy: str | None,
    gpu_mem: str | None,
) -> None:
    """`--plan`: the plan to stdout (data, not a log)."""
    from vitune.train.plan import (
        format_plan,
        launch_from_config,
        launch_from_options,
        parse_gpu_mem,
        plan_recipe,
    )

    launch = launch_from_config(config_file) if config_file else launch_from_options(processes, strategy)
    mem = parse_gpu_mem(gpu_mem) if gpu_mem else None
    result = plan_recipe(rec, launch, gpu_mem=mem, run_dir=out, only_stage=stage)
    typer.echo(format_plan(result))
