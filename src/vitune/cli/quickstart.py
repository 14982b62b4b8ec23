"""`vitune quickstart`: the whole pipeline on the embedded world, ending in a results table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitune.cli.app import app
from vitune.utils.progress import console, print_table


@app.command()
def quickstart(
    work: Annotated[Path, typer.Option(help="Work folder (re-running resumes).")] = Path("quickstart-run"),
    images: Annotated[int, typer.Option(min=20, help="Images in the embedded world.")] = 3000,
    seed: Annotated[int, typer.Option()] = 0,
    recipe: Annotated[
        str, typer.Option(help="Training recipe (bundled name or YAML path).")
    ] = "tiny-two-stage",
    time_scale: Annotated[
        float | None,
        typer.Option(
            min=0.01, help="Multiply every stage's step count (the recipe's take ~7 minutes on 2 cores)."
        ),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Cap every stage at N steps (default: the recipe's).")
    ] = None,
    eval_questions: Annotated[
        int | None, typer.Option(min=1, help="Evaluate on at most N val questions.")
    ] = None,
) -> None:
    """World -> build -> train -> eval on the embedded world, then print the results table."""
    from vitune.pipeline.quickstart import QuickstartConfig, run_quickstart

    cfg = QuickstartConfig(work=work, images=images, seed=seed, eval_questions=eval_questions, recipe=recipe)
    if max_steps is not None:
        cfg.stage_overrides["max_steps"] = max_steps
    if time_scale is not None:
        cfg.time_scale = time_scale
    results = run_quickstart(cfg)
    print_table(results_table(results["eval"]))
    if "bench" in results:
        from vitune.eval.world_bench import world_results_table

        print_table(world_results_table(results["bench"]))
    if "multiround" in results:
        from vitune.cli.eval import multiround_table

        title = "Held-out VQAv2 questions: one at a time vs one dialog per image (COCO-IFT)"
        print_table(multiround_table(results["multiround"], title))
    console.print(f"results: {work / 'eval'}")
    console.print(f"report: {results['report']}")
    console.print(results["verdict"]["text"], soft_wrap=True)
    if not results["verdict"]["ok"]:
        raise typer.Exit(1)


def results_table(results: dict) -> Table:
    from vitune.eval.vqa_eval import TABLE_COLUMNS, vqa_table_rows

    table = Table(
        *TABLE_COLUMNS,
        title="VQAv2 accuracy (official rule) on held-out images: model vs majority-answer baseline",
    )
    for row in vqa_table_rows(results):
        table.add_row(*row)
    return table
