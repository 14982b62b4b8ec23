"""`vitune world`, `tasks list/show` and `build`: from annotation files to instance sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.table import Table

from vitune.cli.app import app, tasks_app
from vitune.cli.inputs import ImageRootOption, SourceOption, SourcesOption, SplitOption, WorldOption
from vitune.utils.progress import console, make_progress, print_rows, print_table


@app.command()
def world(
    out: Annotated[Path, typer.Option(help="Output folder.")],
    images: Annotated[int, typer.Option(min=1, help="Number of images.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same bytes.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes drawing images.")] = 2,
    benchmarks: Annotated[
        bool, typer.Option(help="Also write every benchmark drawable from the test split to OUT/benchmarks.")
    ] = False,
    bench_images: Annotated[
        int | None, typer.Option(min=1, help="Benchmarks on a seeded sample of N test images.")
    ] = None,
) -> None:
    """Generate the embedded miniature world (images + COCO / Visual Genome / VQAv2 files)."""
    from vitune.world.generate import generate_world

    with make_progress() as prog:
        bar = prog.add_task("world", total=images, info="")
        summary = generate_world(out, images, seed, workers=workers, progress=lambda k: prog.advance(bar, k))
    if benchmarks:
        from vitune.eval.world_bench import write_world_benchmarks

        paths = write_world_benchmarks(out, out / "benchmarks", "test", seed, max_images=bench_images)
        summary["benchmarks"] = {name: str(p) for name, p in paths.items()}
    console.print(f"[green]wrote {out}[/green]")
    console.print_json(data=summary)


@tasks_app.command("list")
def tasks_list(
    plugin: Annotated[list[str] | None, typer.Option(help="Python module registering tasks.")] = None,
) -> None:
    """List tasks: name, Vision-Flan category, source."""
    from vitune.tasks.plugins import PluginError, load_plugin
    from vitune.tasks.spec import registry

    try:
        for module in plugin or []:
            load_plugin(module)
    except PluginError as e:
        raise typer.BadParameter(str(e)) from None
    rows = [[name, task.spec.category, task.spec.source] for name, task in sorted(registry().items())]
    print_rows(["task", "category", "source"], rows)


@tasks_app.command("show")
def tasks_show(
    name: str,
    seed: Annotated[int, typer.Option(help="Seed for the sample world and the samples.")] = 0,
    samples: Annotated[int, typer.Option(min=1)] = 3,
    tasks_file: Annotated[
        Path | None, typer.Option(help="A tasks file whose definitions NAME may be one of.")
    ] = None,
    plugin: Annotated[list[str] | None, typer.Option(help="Python module registering tasks.")] = None,
) -> None:
    """Show a task's instruction and samples rendered from a small embedded world."""
    import tempfile

    from vitune.data.ledger import Ledger
    from vitune.sources.inputs import SourcesInput
    from vitune.tasks.build import build_instances
    from vitune.tasks.plugins import PluginError, load_plugin
    from vitune.tasks.select import SelectionError, select_tasks
    from vitune.tasks.spec import get_task
    from vitune.world.generate import generate_world

    try:
        for module in plugin or []:
            load_plugin(module)
        defined = select_tasks(tasks_file=tasks_file, cap=1).defined if tasks_file else {}
        task = defined[name] if name in defined else get_task(name)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0])) from None
    except (SelectionError, PluginError) as e:
        raise typer.BadParameter(str(e)) from None
    console.print(f"[bold]{task.name}[/bold]  ({task.spec.category}; source {task.spec.source})")
    console.print(f"[bold]instruction:[/bold] {task.spec.instruction}")
    console.print(f"[bold]output template:[/bold] {task.spec.output}")
    with tempfile.TemporaryDirectory() as tmp:
        generate_world(tmp, 40, seed, workers=1)
        records = SourcesInput(world=tmp, split="train").load(Ledger()).records
        got = build_instances(records, [task], cap=samples, seed=seed)
    for inst in got[:samples]:
        console.rule(f"{inst.id}  image={inst.image}")
        console.print(f"[cyan]USER:[/cyan] {inst.turns[0].text}")
        console.print(f"[magenta]ASSISTANT:[/magenta] {inst.turns[1].text}")


def _fail(e: Exception) -> NoReturn:
    """Print an input error (file, record, reason) unwrapped, and exit 2."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def build(
    out: Annotated[Path, typer.Option(help="Output folder for the instance set and exports.")],
    world_dir: WorldOption = None,
    sources: SourcesOption = None,
    source: SourceOption = None,
    image_root: ImageRootOption = None,
    split: SplitOption = None,
    task: Annotated[list[str] | None, typer.Option(help="Task name (repeatable).")] = None,
    category: Annotated[list[str] | None, typer.Option(help="Vision-Flan category (repeatable).")] = None,
    tasks_file: Annotated[
        Path | None,
        typer.Option(help="YAML list of task names / categories (optional caps) and task definitions."),
    ] = None,
    plugin: Annotated[list[str] | None, typer.Option(help="Python module registering tasks.")] = None,
    cap: Annotated[
        int, typer.Option(min=1, help="Per-task cap (Vision-Flan: 10,000; public release: 1,000).")
    ] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed: same inputs and seed, same bytes.")] = 0,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes building tasks (output does not depend on it).")
    ] = 2,
    export: Annotated[
        list[str] | None, typer.Option(help="Export format (repeatable): llava, visionflan. Default: both.")
    ] = None,
    paraphrase: Annotated[
        bool, typer.Option(help="Draw each instruction from the catalog's paraphrases (seeded).")
    ] = False,
    flatten_images: Annotated[
        bool,
        typer.Option(help="Hard-link (or copy) images to OUT/images/<task>_<idx>_<file> for the exports."),
    ] = False,
    check_images: Annotated[
        bool,
        typer.Option(help="Decode every image first; missing, corrupt or oversized ones are ledgered."),
    ] = True,
) -> None:
    """Build instances (Parquet + manifest), LLaVA / Vision-Flan JSON exports and the rejected ledger.

    Tasks: --task / --category / --tasks-file (default: every task). Sources: --world, --sources or
    --source (one of them).
    """
    from vitune.data.ledger import Ledger
    from vitune.sources.inputs import sources_input
    from vitune.sources.spec import SpecError
    from vitune.tasks.build import build_to_dir
    from vitune.tasks.export import EXPORTS
    from vitune.tasks.select import SelectionError, select_tasks

    bad = [e for e in export or [] if e not in EXPORTS]
    if bad:
        raise typer.BadParameter(
            f"unknown export {bad[0]!r}; known: {', '.join(EXPORTS)}", param_hint="--export"
        )
    from vitune.tasks.plugins import PluginError, load_plugin

    try:
        inp = sources_input(
            world=world_dir, sources=sources, source=source, image_root=image_root, split=split
        )
        for module in plugin or []:
            load_plugin(module)
        sel = select_tasks(task or [], category or [], tasks_file, cap=cap)
    except (SelectionError, SpecError, PluginError) as e:
        raise typer.BadParameter(str(e)) from None
    ledger = Ledger()
    try:
        with console.status("reading sources"):
            loaded = inp.load(ledger)
    except (FileNotFoundError, ValueError) as e:
        _fail(e)
    described = {
        "kind": inp.kind,
        "path": str(world_dir or sources or ""),
        "spec": loaded.described,
        "reconcile": loaded.reconcile(),
    }
    with make_progress() as prog:
        bar = prog.add_task("build", total=len(sel.tasks), info="")
        done = [0]

        def advance(name: str, kept: int) -> None:
            done[0] += kept
            prog.update(bar, advance=1, info=f"{done[0]:,} instances ({name})")

        try:
            manifest = build_to_dir(
                loaded.records,
                sel.resolved(),
                out,
                cap=cap,
                caps=sel.caps,
                seed=seed,
                ledger=ledger,
                inputs=loaded.inputs,
                workers=workers,
                exports=export or EXPORTS,
                flatten_images=flatten_images,
                check_images=check_images,
                paraphrase=paraphrase,
                image_root=loaded.image_root,
                sources=described,
                selection=sel.asked,
                progress=advance,
            )
        except (FileNotFoundError, ValueError) as e:
            _fail(e)
    report = manifest["build"]
    table = Table("task", "category", "candidates", "kept")
    for name in sel.tasks:
        table.add_row(
            name,
            manifest["task_categories"][name],
            str(report["candidates"][name]),
            str(report["kept"][name]),
        )
    print_table(table)
    console.print(
        f"{manifest['records']} images -> {manifest['count']} instances in {len(sel.tasks)} tasks; "
        f"{len(ledger)} rejected (see {out / 'rejected.jsonl'})"
    )
    from vitune.report.card import write_dataset_card

    console.print("dataset card: {} and {}".format(*write_dataset_card(out)))
