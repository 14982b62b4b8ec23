"""`vitune curate` and `vitune synth`: mixtures from instance sets, instructions from annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vitune.cli.app import app
from vitune.cli.inputs import ImageRootOption, SourceOption, SourcesOption, SplitOption, WorldOption
from vitune.utils.progress import console, make_progress, print_rows, print_table


def _parse_vars(items: list[str] | None, recipe_file: Path | None = None) -> dict[str, str]:
    """`--var NAME=VALUE` pairs; with `recipe_file`, names it neither declares nor uses are an error."""
    from vitune.utils.config import check_known_variables

    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--var")
        out[name] = value
    if recipe_file is not None and recipe_file.is_file():
        check_known_variables(recipe_file, out)
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
        print_rows(["recipe", "path"], [[name, str(path)] for name, path in bundled_recipes().items()])
        return
    if out is None:
        raise typer.BadParameter("OUT is required")
    recipe_file = bundled_recipes().get(recipe, Path(recipe))
    if not recipe_file.is_file():
        raise typer.BadParameter(
            f"{recipe}: no such recipe file or bundled recipe ({', '.join(bundled_recipes())})"
        )
    variables = _parse_vars(var, recipe_file)
    with make_progress() as prog:
        bars: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = prog.add_task(stage, total=total, info="")
            prog.update(bars[stage], completed=done, total=total)

        try:
            summary = run_curate(recipe_file, out, progress, variables=variables)
        except RecipeError as e:
            console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
            raise typer.Exit(2) from None
    table = Table("step", "in", "kept", "removed", "by reason")
    for st in summary["steps"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in st["removed_by_reason"].items())
        table.add_row(str(st["step"]), str(st["in"]), str(st["kept"]), str(st["removed"]), reasons)
    print_table(table)
    console.print(f"{summary['final']['count']} instances -> {out}")
    from vitune.report.card import write_dataset_card

    console.print("dataset card: {} and {}".format(*write_dataset_card(out)))


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Output folder.")],
    world_dir: WorldOption = None,
    sources: SourcesOption = None,
    source: SourceOption = None,
    image_root: ImageRootOption = None,
    split: SplitOption = None,
    generators: Annotated[
        str,
        typer.Option(
            help="Comma-separated generator names (default: conversation, complex_reasoning, "
            "referring_qa, detail_description, dialog).",
            show_default=False,
        ),
    ] = "conversation,complex_reasoning,referring_qa,detail_description,dialog",
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
    backoff: Annotated[float, typer.Option(min=0.0, help="Base of the exponential backoff (s).")] = 0.5,
    reasks: Annotated[int, typer.Option(min=0, help="Re-asks of an unparsable reply.")] = 2,
    price: Annotated[
        str | None, typer.Option(help="USD per 1M tokens as PROMPT,COMPLETION, for cost accounting.")
    ] = None,
    durable_cache: Annotated[
        bool, typer.Option(help="fsync every cached reply (power-loss safe; kill -9 safe without).")
    ] = False,
    hallucination: Annotated[
        str, typer.Option(help="Answers naming objects not annotated: drop, flag or off.")
    ] = "drop",
    color_hallucination: Annotated[
        str, typer.Option(help="Answers giving an object a colour the annotations contradict: drop/flag/off.")
    ] = "drop",
    limit: Annotated[int | None, typer.Option(min=1, help="At most N images.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    prompts: Annotated[
        Path | None, typer.Option(help="YAML: generator name -> prompt keys to override (or a new one).")
    ] = None,
    show_prompt: Annotated[
        str | None, typer.Option(help="Print the messages GENERATOR sends for --image, then exit.")
    ] = None,
    image: Annotated[str | None, typer.Option(help="Image id for --show-prompt.")] = None,
) -> None:
    """Generate SVIT-style instructions (and COCO-style dialogs) from each image's annotations."""
    from vitune.data.ledger import Ledger
    from vitune.sources.inputs import sources_input
    from vitune.synth import FilterConfig, OpenAIBackend, TemplateBackend
    from vitune.synth import synth as run_synth
    from vitune.synth.prompts import load_prompts_file

    try:
        inp = sources_input(
            world=world_dir, sources=sources, source=source, image_root=image_root, split=split
        )
    except ValueError as e:  # SpecError
        raise typer.BadParameter(str(e)) from None
    if (show_prompt is None) != (image is None):
        raise typer.BadParameter("--show-prompt GENERATOR and --image ID go together")
    overrides = {}
    if prompts is not None:
        try:
            overrides = load_prompts_file(prompts)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--prompts") from None
    # Specs, not names, go to synth(): an override applies to this run, not to the process's registry.
    chosen = [overrides.get(g, g) for g in (g.strip() for g in generators.split(",")) if g]
    for name, policy in (("--hallucination", hallucination), ("--color-hallucination", color_hallucination)):
        if policy not in ("drop", "flag", "off"):
            raise typer.BadParameter(f"{name} must be drop, flag or off, not {policy!r}")
    prices = None
    if price is not None:
        try:
            p_in, p_out = (float(v) for v in price.split(","))
        except ValueError:
            raise typer.BadParameter(f"--price expects PROMPT,COMPLETION, got {price!r}") from None
        prices = {"*": (p_in, p_out)}
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
            backoff_base=backoff,
            jitter_seed=seed,
        )
    elif backend == "template":
        be = TemplateBackend()
    else:
        raise typer.BadParameter(f"unknown backend {backend!r} (template, openai)")
    ledger = Ledger()
    try:  # the one entry point `vitune build` uses: every format a world or a spec holds
        loaded = inp.load(ledger)
        records = loaded.records
    except (OSError, ValueError) as e:  # SpecError is a ValueError
        console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if show_prompt is not None:
        _show_prompt(records, overrides.get(show_prompt, show_prompt), str(image))
        return
    with make_progress() as prog:
        bar = prog.add_task("synth", total=None, info="")

        def progress(p) -> None:
            info = f"{p.rate:.1f} req/s  cached {p.cached}  failed {p.failed}"
            prog.update(bar, completed=p.done, total=p.total, info=info)

        summary = run_synth(
            records,
            chosen,
            be,
            out,
            seed=seed,
            limit=limit,
            max_reasks=reasks,
            prices=prices,
            durable_cache=durable_cache,
            filters=FilterConfig(hallucination=hallucination, color_hallucination=color_hallucination),
            progress=progress,
            ledger=ledger,
        )
    summary.pop("items", None)
    console.print_json(data=summary)
    from vitune.report.card import write_dataset_card

    console.print("dataset card: {} and {}".format(*write_dataset_card(out, image_root=loaded.image_root)))


def _show_prompt(records, generator, image_id: str) -> None:
    """The exact chat messages (and sampling) one generator sends for one image, as JSON on stdout."""
    import json

    from vitune.synth.prompts import build_messages, get_generator

    try:
        spec = get_generator(generator)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0]), param_hint="--show-prompt") from None
    rec = next((r for r in records if r.image_id == image_id), None)
    if rec is None:
        raise typer.BadParameter(
            f"no image {image_id!r} in the input ({len(records)} images)", param_hint="--image"
        )
    body = {
        "generator": spec.name,
        "image": rec.image_id,
        **spec.sampling(),
        "messages": build_messages(spec, rec),
    }
    print(json.dumps(body, indent=2, ensure_ascii=False))
