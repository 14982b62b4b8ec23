"""`vitune curate` and `vitune synth`: mixtures from instance sets, instructions from annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitune.cli.app import app
from vitune.utils.progress import console, make_progress


def _parse_vars(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}")
        out[name] = value
    return out


@app.command()
def curate(
    recipe: Annotated[str | None, typer.Argument(help="A recipe YAML path or a bundled recipe name.")] = None,
    out: Annotated[Path | None, typer.Argument(help="Output folder.")] = None,
    var: Annotated[
        list[str] | None, typer.Option(help="Fill a ${NAME} variable: NAME=VALUE (repeatable).")
    ] = None,
    list_recipes: Annotated[bool, typer.Option("--list", help="List the bundled recipes.")] = False,
) -> None:
    """Run a curation recipe: load, filter, dedup, balance, select, mix -> instance set + ledger."""
    from vitune.curate.recipe import RecipeError, bundled_recipes
    from vitune.curate.run import curate as run_curate

    if list_recipes or recipe is None:
        table = Table("recipe", "path")
        for name, path in bundled_recipes().items():
            table.add_row(name, str(path))
        console.print(table)
        return
    if out is None:
        raise typer.BadParameter("OUT is required")
    with make_progress() as prog:
        bars: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = prog.add_task(stage, total=total, info="")
            prog.update(bars[stage], completed=done, total=total)

        try:
            summary = run_curate(
                bundled_recipes().get(recipe, recipe), out, progress, variables=_parse_vars(var)
            )
        except RecipeError as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
    table = Table("step", "in", "kept", "removed", "by reason")
    for st in summary["steps"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in st["removed_by_reason"].items())
        table.add_row(str(st["step"]), str(st["in"]), str(st["kept"]), str(st["removed"]), reasons)
    console.print(table)
    console.print(f"{summary['final']['count']} instances -> {out}")


@app.command()
def synth(
    world_dir: Annotated[
        Path, typer.Option("--world", help="An embedded world folder to read records from.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    split: Annotated[str, typer.Option()] = "train",
    generators: Annotated[
        str, typer.Option(help="Comma-separated generator names.")
    ] = "conversation,complex_reasoning,referring_qa,detail_description",
    backend: Annotated[
        str, typer.Option(help="template (offline) or openai (any OpenAI-compatible server).")
    ] = "template",
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name for the openai backend.")] = None,
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the API key.")
    ] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option(min=1)] = 16,
    timeout: Annotated[float, typer.Option(help="Request timeout in seconds.")] = 120.0,
    max_retries: Annotated[int, typer.Option(min=0)] = 6,
    limit: Annotated[int | None, typer.Option(min=1, help="At most N images.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Generate SVIT-style instructions (and COCO-style dialogs) from each image's annotations."""
    from vitune.data.ledger import Ledger
    from vitune.sources.merge import load_world
    from vitune.synth import OpenAIBackend, TemplateBackend
    from vitune.synth import synth as run_synth

    if backend == "openai":
        if not base_url or not model:
            raise typer.BadParameter("--backend openai needs --base-url and --model")
        be = OpenAIBackend(
            base_url,
            model,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
        )
    elif backend == "template":
        be = TemplateBackend()
    else:
        raise typer.BadParameter(f"unknown backend {backend!r} (template, openai)")
    ledger = Ledger()
    records = load_world(world_dir, split, ledger)
    with make_progress() as prog:
        bar = prog.add_task("synth", total=None, info="")

        def progress(p) -> None:
            prog.update(bar, completed=p.done, total=p.total, info=f"cached {p.cached}  failed {p.failed}")

        summary = run_synth(
            records,
            [g.strip() for g in generators.split(",") if g.strip()],
            be,
            out,
            seed=seed,
            limit=limit,
            progress=progress,
            ledger=ledger,
        )
    summary.pop("items", None)
    console.print_json(data=summary)
