"""`vitune lab NAME`: one of Vision-Flan's analyses as resumable runs under one folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vitune.cli.app import app
from vitune.cli.mix import _parse_vars
from vitune.utils.progress import console

_HELP = (
    "Reproduce one of Vision-Flan's analyses: tasks (a fixed budget over 2, 4, ... all tasks), "
    "schedule (two-stage vs mixed), stage2 (how much synthesized chat), projector (swap the "
    "pre-instruction projector back; Pearson correlation; per-part weight change), parts "
    "(projector / LLM / both).\n\n"
    "Without --base: the lab's own tiny recipe on an embedded world it generates, with the world's "
    "benchmarks. Re-running reuses finished variants and resumes killed ones."
)


@app.command(help=_HELP)
def lab(
    name: Annotated[str, typer.Argument(help="tasks | schedule | stage2 | projector | parts")],
    work: Annotated[Path, typer.Option(help="The lab's folder (shared data, variants, results).")],
    base: Annotated[
        str | None, typer.Option(help="Training recipe whose stages stage1/stage2 are varied.")
    ] = None,
    bench: Annotated[list[str] | None, typer.Option(help="NAME=PATH benchmark (repeatable).")] = None,
    scale: Annotated[str, typer.Option(help="micro (~3 min), small (~15 min) or full (GPU).")] = "micro",
    var: Annotated[list[str] | None, typer.Option(help="NAME=VALUE for a --base recipe.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    plan: Annotated[bool, typer.Option(help="Print the variants and their budgets; run nothing.")] = False,
) -> None:
    from vitune.lab import ANALYSES, SCALES, LabConfig, plan_lab, run_lab

    if name not in ANALYSES:
        raise typer.BadParameter(
            f"unknown analysis {name!r}; known: {', '.join(ANALYSES)}", param_hint="NAME"
        )
    if scale not in (*SCALES, "full"):
        raise typer.BadParameter(f"--scale must be micro, small or full, not {scale!r}")
    if scale == "full" and base is None:
        raise typer.BadParameter("--scale full takes the --base recipe as it is: give --base")
    cfg = LabConfig(
        work=work, scale=scale, base=base, benches=list(bench or []), variables=_parse_vars(var), seed=seed
    )
    # A RecipeError (a ValueError) or a missing file reaches the root group: one line, exit 2.
    if plan:
        print(json.dumps(plan_lab(name, cfg), indent=2, default=str))
        return
    result = run_lab(name, cfg, say=lambda m: console.print(m))
    print((work / name / "results.md").read_text(encoding="utf-8"))
    assert result
