"""The `vitune` command line: a thin typer layer over the library (no logic lives here)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitune import __version__
from vitune.utils.progress import console, make_progress

app = typer.Typer(help="vitune: visual instruction tuning, from annotations to a trained LLaVA.", no_args_is_help=True)
tasks_app = typer.Typer(help="The instruction task catalog.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")


def _version(value: bool) -> None:
    if value:
        console.print(f"vitune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        # transformers' own tqdm bars (weight loading/saving) would interleave with ours.
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


@app.command()
def world(
    out: Annotated[Path, typer.Option(help="Output folder.")],
    images: Annotated[int, typer.Option(min=1, help="Number of images.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same bytes.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes drawing images.")] = 2,
) -> None:
    """Generate the embedded miniature world (images + COCO / Visual Genome / VQAv2 files)."""
    from vitune.world.generate import generate_world

    with make_progress() as prog:
        bar = prog.add_task("world", total=images, info="")
        summary = generate_world(out, images, seed, workers=workers, progress=lambda k: prog.advance(bar, k))
    console.print(f"[green]wrote {out}[/green]")
    console.print_json(data=summary)


@tasks_app.command("list")
def tasks_list() -> None:
    """List tasks: name, Vision-Flan category, source."""
    from vitune.tasks.spec import registry

    table = Table("task", "category", "source")
    for name, task in sorted(registry().items()):
        table.add_row(name, task.spec.category, task.spec.source)
    console.print(table)


@tasks_app.command("show")
def tasks_show(
    name: str,
    seed: Annotated[int, typer.Option(help="Seed for the sample world and the samples.")] = 0,
    samples: Annotated[int, typer.Option(min=1)] = 3,
) -> None:
    """Show a task's instruction and samples rendered from a small embedded world."""
    import tempfile

    from vitune.data.ledger import Ledger
    from vitune.sources.merge import load_world
    from vitune.tasks.build import build_instances
    from vitune.tasks.spec import get_task
    from vitune.world.generate import generate_world

    try:
        task = get_task(name)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0])) from None
    console.print(f"[bold]{task.name}[/bold]  ({task.spec.category}; source {task.spec.source})")
    console.print(f"[bold]instruction:[/bold] {task.spec.instruction}")
    console.print(f"[bold]output template:[/bold] {task.spec.output}")
    with tempfile.TemporaryDirectory() as tmp:
        generate_world(tmp, 40, seed, workers=1)
        records = load_world(tmp, "train", Ledger())
        got = build_instances(records, [name], cap=samples, seed=seed)
    for inst in got[:samples]:
        console.rule(f"{inst.id}  image={inst.image}")
        console.print(f"[cyan]USER:[/cyan] {inst.turns[0].text}")
        console.print(f"[magenta]ASSISTANT:[/magenta] {inst.turns[1].text}")


@app.command()
def build(
    world_dir: Annotated[Path, typer.Option("--world", help="An embedded world folder (from `vitune world`).")],
    out: Annotated[Path, typer.Option(help="Output folder for the instance set.")],
    split: Annotated[str, typer.Option(help="Which split to build from.")] = "train",
    task: Annotated[list[str] | None, typer.Option(help="Task name (repeatable); default: all.")] = None,
    cap: Annotated[int, typer.Option(min=1, help="Per-task cap (Vision-Flan: 10,000; public release: 1,000).")] = 10_000,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Build instances (Parquet + manifest), a LLaVA JSON export and the rejected ledger."""
    from vitune.data.ledger import Ledger
    from vitune.sources.merge import load_world
    from vitune.tasks.build import build_to_dir
    from vitune.tasks.spec import registry
    from vitune.world.layout import WorldLayout

    names = task or sorted(registry())
    ledger = Ledger()
    records = load_world(world_dir, split, ledger)
    manifest = build_to_dir(
        records, names, out, cap=cap, seed=seed, ledger=ledger, inputs=WorldLayout(world_dir).annotation_files(split)
    )
    report = manifest["build"]
    table = Table("task", "candidates", "kept")
    for name in names:
        table.add_row(name, str(report["candidates"][name]), str(report["kept"][name]))
    console.print(table)
    console.print(f"{len(records)} images -> {manifest['count']} instances; {len(ledger)} rejected (see {out / 'rejected.jsonl'})")


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
    var: Annotated[list[str] | None, typer.Option(help="Fill a ${NAME} variable: NAME=VALUE (repeatable).")] = None,
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
            summary = run_curate(bundled_recipes().get(recipe, recipe), out, progress, variables=_parse_vars(var))
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
    world_dir: Annotated[Path, typer.Option("--world", help="An embedded world folder to read records from.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    split: Annotated[str, typer.Option()] = "train",
    generators: Annotated[str, typer.Option(help="Comma-separated generator names.")] = "conversation,complex_reasoning,referring_qa,detail_description",
    backend: Annotated[str, typer.Option(help="template (offline) or openai (any OpenAI-compatible server).")] = "template",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")] = None,
    model: Annotated[str | None, typer.Option(help="Model name for the openai backend.")] = None,
    api_key_env: Annotated[str, typer.Option(help="Environment variable holding the API key.")] = "OPENAI_API_KEY",
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
        be = OpenAIBackend(base_url, model, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout, max_retries=max_retries)
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
            records, [g.strip() for g in generators.split(",") if g.strip()], be, out, seed=seed, limit=limit, progress=progress, ledger=ledger
        )
    summary.pop("items", None)
    console.print_json(data=summary)


@app.command()
def quickstart(
    work: Annotated[Path, typer.Option(help="Work folder (re-running resumes).")] = Path("quickstart-run"),
    images: Annotated[int, typer.Option(min=20, help="Images in the embedded world.")] = 3000,
    seed: Annotated[int, typer.Option()] = 0,
    train_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget for training (default: the tiny recipe's 7 minutes).")] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default: the tiny recipe's).")] = None,
    eval_questions: Annotated[int | None, typer.Option(min=1, help="Evaluate on at most N val questions.")] = None,
) -> None:
    """World -> build -> train -> eval on the embedded world, then print the results table."""
    from vitune.pipeline.quickstart import QuickstartConfig, run_quickstart

    cfg = QuickstartConfig(work=work, images=images, seed=seed, eval_questions=eval_questions)
    cfg.train.seed = seed
    if max_steps is not None:
        cfg.train.max_steps = max_steps
    if train_minutes is not None:
        cfg.train.time_budget_s = train_minutes * 60
    results = run_quickstart(cfg)
    console.print(results_table(results["eval"]))
    console.print(f"results: {work / 'eval'}")


def results_table(results: dict) -> Table:
    from vitune.eval.vqa_eval import TABLE_COLUMNS, vqa_table_rows

    table = Table(*TABLE_COLUMNS, title="VQAv2 accuracy (official rule) on held-out images: model vs majority-answer baseline")
    for row in vqa_table_rows(results):
        table.add_row(*row)
    return table


def main() -> None:
    app()


if __name__ == "__main__":
    main()
