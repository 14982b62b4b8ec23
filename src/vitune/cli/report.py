"""`vitune report` (report.md + report.html from runs' outputs) and `vitune data card` (a dataset card
and sample gallery for a build / synth / curate output folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitune.cli.app import app
from vitune.utils.progress import console

data_app = typer.Typer(help="Dataset cards of build, synth and curate outputs.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def named_folders(option: str, specs: list[str] | None, *, name_required: bool = True) -> dict[str, Path]:
    """`NAME=FOLDER` values of a repeatable option (or bare `FOLDER`, named by its folder name, when
    `name_required` is false); every folder must exist and every name be unique."""
    out: dict[str, Path] = {}
    for spec in specs or []:
        name, sep, folder = spec.partition("=")
        if not sep:
            if name_required:
                raise ValueError(f"{option} {spec!r}: expected NAME=FOLDER")
            name, folder = Path(spec).name or spec, spec
        if not name or not folder:
            raise ValueError(f"{option} {spec!r}: expected NAME=FOLDER")
        if name in out:
            raise ValueError(f"{option} {name!r} is given twice")
        if not Path(folder).exists():
            raise FileNotFoundError(f"{option} {name}: {folder} does not exist")
        out[name] = Path(folder)
    return out


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="Folder for report.md (+ figures) and report.html.")],
    train: Annotated[
        list[str] | None,
        typer.Option(help="A `vitune train` output folder, or NAME=FOLDER (repeatable: runs side by side)."),
    ] = None,
    eval_run: Annotated[
        list[str] | None,
        typer.Option(
            "--eval",
            help="NAME=FOLDER of a `vitune eval` run (repeatable; later runs are compared with the first).",
        ),
    ] = None,
    multiround: Annotated[
        list[str] | None, typer.Option(help="NAME=FOLDER of a `vitune eval multiround` output (repeatable).")
    ] = None,
    curation: Annotated[Path | None, typer.Option(help="A `vitune curate` output folder.")] = None,
    lab: Annotated[
        list[str] | None,
        typer.Option(help="NAME=FOLDER holding results.json and/or results.md (repeatable)."),
    ] = None,
    examples: Annotated[
        int, typer.Option(min=0, help="Right and wrong example answers per benchmark and eval run.")
    ] = 2,
    title: Annotated[str, typer.Option(help="The page's title.")] = "vitune report",
) -> None:
    """Training stages with loss/lr curves, eval tables with deltas, bars and example predictions,
    multi-round comparisons, curation funnels, lab results: report.md and a self-contained report.html."""
    from vitune.eval.runner import load_results
    from vitune.report.collect import read_curation, read_lab, read_multiround, read_train_run
    from vitune.report.render import HTML_FILE, write_report

    if not (train or eval_run or multiround or curation or lab):
        raise typer.BadParameter("give at least one of --train, --eval, --multiround, --curation, --lab")
    try:
        train_dirs = named_folders("--train", train, name_required=False)
        eval_dirs = named_folders("--eval", eval_run)
        runs = {name: read_train_run(d) for name, d in train_dirs.items()}
        evals = {name: load_results(d) for name, d in eval_dirs.items()}
        rounds = {name: read_multiround(d) for name, d in named_folders("--multiround", multiround).items()}
        labs = {name: read_lab(d) for name, d in named_folders("--lab", lab).items()}
        cur = read_curation(curation) if curation is not None else None
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    sources = [str(d) for d in (*train_dirs.values(), *eval_dirs.values())]
    sources += [s for s in (multiround or []) + (lab or [])] + ([str(curation)] if curation else [])
    path = write_report(
        out,
        train=runs,
        evals=evals,
        eval_dirs=eval_dirs,
        multiround=rounds,
        curation=cur,
        labs=labs,
        sources=sources,
        title=title,
        examples=examples,
    )
    console.print(f"report: {path} and {path.parent / HTML_FILE}")


@data_app.command("card")
def data_card(
    folder: Annotated[Path, typer.Argument(help="A `vitune build`, `synth` or `curate` output folder.")],
    image_root: Annotated[
        Path | None,
        typer.Option(help="Folder the image paths are relative to (default: from the folder's files)."),
    ] = None,
    samples: Annotated[int, typer.Option(min=0, help="Sample cards per task in the gallery.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the sample choice.")] = 0,
) -> None:
    """Write FOLDER/README.md (a Hugging Face dataset card) and FOLDER/gallery.html (samples per task)."""
    from vitune.report.card import write_dataset_card

    try:
        card, gallery = write_dataset_card(folder, image_root=image_root, samples=samples, seed=seed)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    console.print(f"dataset card: {card} and {gallery}")
