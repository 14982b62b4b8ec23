"""`vitune world`, `tasks list/show` and `build`: from annotation files to instance sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitune.cli.app import app, tasks_app
from vitune.utils.progress import console, make_progress


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
    world_dir: Annotated[
        Path, typer.Option("--world", help="An embedded world folder (from `vitune world`).")
    ],
    out: Annotated[Path, typer.Option(help="Output folder for the instance set.")],
    split: Annotated[str, typer.Option(help="Which split to build from.")] = "train",
    task: Annotated[list[str] | None, typer.Option(help="Task name (repeatable); default: all.")] = None,
    cap: Annotated[
        int, typer.Option(min=1, help="Per-task cap (Vision-Flan: 10,000; public release: 1,000).")
    ] = 10_000,
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
        records,
        names,
        out,
        cap=cap,
        seed=seed,
        ledger=ledger,
        inputs=WorldLayout(world_dir).annotation_files(split),
    )
    report = manifest["build"]
    table = Table("task", "candidates", "kept")
    for name in names:
        table.add_row(name, str(report["candidates"][name]), str(report["kept"][name]))
    console.print(table)
    console.print(
        f"{len(records)} images -> {manifest['count']} instances; {len(ledger)} rejected (see {out / 'rejected.jsonl'})"
    )
