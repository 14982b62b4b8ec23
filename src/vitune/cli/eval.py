"""`vitune eval`: run registered benchmarks on a saved model, compare two runs, list the benchmarks.

    vitune eval --model CKPT --bench pope=data/pope --bench mme=data/MME --out runs/ckpt
    vitune eval --api-url http://127.0.0.1:8000/v1 --api-model NAME --bench pope=data/pope --out runs/x
    accelerate launch --config_file configs/accelerate/cpu-2proc.yaml -m vitune.cli eval --model CKPT ...
    vitune eval --model CKPT --bench mm_vet=data/mm-vet --judge-base-url URL --judge-model M \
        --judge-runs 5 --out runs/ckpt
    vitune eval compare runs/base runs/tuned
    vitune eval list

Running is the group's own callback (no sub-command word), so `vitune eval --model ...` runs and
`vitune eval compare|list` do the rest. The work is `vitune.eval.runner.run_benchmarks`.
`--judge-runs N` becomes the `runs` option of the judged benchmarks that grade repeatedly (MM-Vet,
LLaVA-Bench); their mean ± std across runs is printed after the results table. `--protocol
paper|official` picks the scoring protocol (docs/EVALUATION.md); missing, empty or unreadable
benchmark files are an error with exit 2 (a traceback only with `-v`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vitune.cli.app import HelpGroup, app
from vitune.utils.progress import console, print_rows, print_table

eval_app = typer.Typer(
    cls=HelpGroup,
    rich_markup_mode=None,
    help="Benchmarks: `vitune eval --model CKPT --bench NAME=PATH --out DIR` runs them (or "
    "`--api-url URL --api-model NAME` instead of --model: a served model); "
    "`compare` and `list` below.",
)
app.add_typer(eval_app, name="eval")


@eval_app.callback(invoke_without_command=True)
def eval_run(
    ctx: typer.Context,
    model: Annotated[
        Path | None,
        typer.Option(
            help="Saved model folder: a vitune/LLaVA export or any registered Hugging Face VLM family "
            "(Qwen2-VL, Qwen2.5-VL, LLaVA-NeXT/OneVision, Idefics3, SmolVLM, Gemma 3), detected from its config."
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            help="Instead of --model: an OpenAI-compatible server (vLLM, SGLang, vitune serve), e.g. http://HOST:8000/v1."
        ),
    ] = None,
    api_model: Annotated[
        str | None, typer.Option(help="The served model's name (--api-url); it is in every cache key.")
    ] = None,
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the server's API key (none sent if unset).")
    ] = "OPENAI_API_KEY",
    api_concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once (--api-url).")] = 8,
    bench: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=PATH: a registered benchmark and the official files its loader reads. Repeatable."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder: results, predictions, response cache.")
    ] = None,
    images: Annotated[
        list[str] | None,
        typer.Option(help="NAME=DIR: image folder of a benchmark (default: its PATH, or PATH's folder)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Generation batch size (answers do not depend on it).")
    ] = 8,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most N items (whole groups, seeded sample) per benchmark.")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 32,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    dtype: Annotated[
        str, typer.Option(help="Weights' dtype for --model: float32 (default), bfloat16 or float16.")
    ] = "float32",
    cache: Annotated[
        Path | None,
        typer.Option(help="Response cache file to use (default OUT/responses.jsonl); may be shared."),
    ] = None,
    judge_base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint of the LLM judge (judged benchmarks).")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="Judge model name.")] = None,
    judge_api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the judge's API key.")
    ] = "OPENAI_API_KEY",
    judge_runs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Judge every item N times and report the mean ± std across runs "
            "(MM-Vet's official num_run, its paper used 5; LLaVA-Bench's published numbers are means of 3).",
        ),
    ] = 1,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="Scoring protocol: 'paper' (the pipeline behind published numbers, the default) or "
            "'official' (the raw official script), for the benchmarks where they differ (VQAv2).",
        ),
    ] = None,
) -> None:
    """Run benchmarks on a model (or use a sub-command)."""
    if ctx.invoked_subcommand is not None:
        if model is not None or api_url is not None or bench:
            raise typer.BadParameter(
                "run options go without a sub-command: vitune eval --model ... --bench ..."
            )
        return
    if model is None and api_url is None and not bench:
        console.print(ctx.get_help())
        raise typer.Exit()
    if (model is None) == (api_url is None) or not bench or out is None:
        raise typer.BadParameter(
            "one of --model and --api-url (with --api-model), plus --bench and --out, are needed to run benchmarks"
        )
    source = _model_source(model, api_url, api_model, api_key_env, api_concurrency, max_new_tokens, dtype)

    from vitune.data.images import ImageError
    from vitune.eval.benchmarks.base import PROTOCOLS, BenchmarkDataError
    from vitune.eval.health import answer_warnings
    from vitune.eval.runner import BenchSpec, parse_bench, results_table, run_benchmarks

    if protocol is not None and protocol not in PROTOCOLS:
        raise typer.BadParameter(f"--protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")

    try:
        specs = [parse_bench(b) for b in bench]
        roots = dict(_pair(i) for i in images or [])
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    unknown_roots = set(roots) - {s.name for s in specs}
    if unknown_roots:
        raise typer.BadParameter(f"--images for benchmarks not given with --bench: {sorted(unknown_roots)}")
    specs = [BenchSpec(s.name, s.path, Path(roots[s.name]) if s.name in roots else None) for s in specs]
    _check_names([s.name for s in specs])
    _check_inputs(model, specs)
    if judge_runs > 1:
        specs = _with_judge_runs(specs, judge_runs)

    def make_judge():
        # Imported here: the judge (and its HTTP client) is needed only by judged benchmarks.
        from vitune.eval.judge import make_judge as _make

        if not judge_base_url or not judge_model:
            raise typer.BadParameter(
                "this benchmark needs an LLM judge: give --judge-base-url and --judge-model"
            )
        return _make(judge_base_url, judge_model, judge_api_key_env)

    try:
        results = run_benchmarks(
            specs,
            out,
            model_dir=model,
            source=source,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            limit=limit,
            device=device,
            dtype=dtype,
            cache_path=cache,
            judge_factory=make_judge,
            protocol=protocol,
        )
    except (BenchmarkDataError, ImageError) as e:  # bad benchmark files, or an unusable image
        if logging.getLogger().isEnabledFor(logging.INFO):  # -v: the traceback too
            raise
        _error(str(e))
        raise typer.Exit(2) from None
    if not results["benchmarks"]:  # a data-parallel process other than 0: process 0 reports
        return
    name = model.name if model is not None else api_model
    print_table(results_table(results, title=f"{name}: benchmark results"))
    _print_judge_runs(results, out)
    _warn_missing(results)
    for line in answer_warnings(results):
        console.print(f"[yellow]warning: {line}", highlight=False)
    console.print(f"results: {out / 'results.json'}  {out / 'results.md'}")


def _error(message: str) -> None:
    """`error: message` on stderr, the message printed as is (it may hold brackets and paths)."""
    print(f"error: {message}", file=sys.stderr)


def _model_source(
    model: Path | None,
    api_url: str | None,
    api_model: str | None,
    key_env: str,
    concurrency: int,
    max_new: int,
    dtype: str,
):
    """The `vitune.models` source the options name; bad options are a usage error (exit 2)."""
    from vitune.models import api_source
    from vitune.models.sources import DTYPES

    if api_url is None:
        _check_model(model)
        if dtype not in DTYPES:
            raise typer.BadParameter(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        return None  # the runner builds the local source (its device depends on the process)
    if not api_model:
        raise typer.BadParameter("--api-url needs --api-model (the served model's name)")
    try:
        return api_source(
            api_url, api_model, api_key_env=key_env, concurrency=concurrency, max_new_tokens=max_new
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def _check_model(model: Path | None) -> None:
    """A folder whose config names a registered model family, or a usage error (exit 2)."""
    from vitune.models import detect_family

    try:
        detect_family(model)  # type: ignore[arg-type]
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise ValueError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _check_names(names: list[str]) -> None:
    from vitune.eval.benchmarks import benchmark_names

    known = set(benchmark_names())
    bad = [n for n in names if n not in known]
    if bad:
        raise typer.BadParameter(f"unknown benchmark(s) {bad}; known: {', '.join(sorted(known))}")


def _with_judge_runs(specs: list, runs: int) -> list:
    """`runs` as the constructor option of every benchmark that grades repeatedly; refused when
    none does, so that `--judge-runs` is never silently ignored."""
    from vitune.eval.benchmarks import get_benchmark

    out, once = [], []
    for s in specs:
        if getattr(get_benchmark(s.name), "supports_judge_runs", False):
            s = dataclasses.replace(s, options={**s.options, "runs": runs})
        elif get_benchmark(s.name).needs_judge:
            once.append(s.name)
        out.append(s)
    if not any("runs" in s.options for s in out):
        raise typer.BadParameter(
            "--judge-runs: none of the given benchmarks is judged repeatedly (mm_vet and llava_bench are)"
        )
    if once:
        console.print(f"[yellow]--judge-runs does not apply to {', '.join(once)}: judged once")
    return out


def judge_runs_rows(scores: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(category, "mean ± std", per-run scores) of a repeatedly judged score (its scores.json), the
    total first, then each capability; a run that scored nothing in a category shows "—"."""
    runs = scores.get("runs") or []

    def per_run(get: Any) -> str:
        return ", ".join("—" if (v := get(r)) is None else f"{v:.1f}" for r in runs)

    rows = [
        (
            "total",
            f"{scores['overall']:.1f} ± {scores['overall_std']:.1f}",
            per_run(lambda r: r.get("total", r.get("overall"))),
        )
    ]
    for cat, mean in scores.get("per_category", {}).items():
        std = scores.get("per_category_std", {}).get(cat, 0.0)
        rows.append(
            (
                cat,
                f"{mean:.1f} ± {std:.1f}",
                per_run(lambda r, c=cat: r.get("per_capability", r.get("per_category", {})).get(c)),
            )
        )
    failed = scores.get("n_judge_failed_per_run") or []
    rows.append(("judge failures", "", ", ".join(str(n) for n in failed)))
    return rows


def _print_judge_runs(results: dict, out: Path) -> None:
    """Mean ± std across judge runs of every benchmark judged more than once (from its scores.json,
    which holds the per-run scores that results.json leaves out)."""
    for name, b in results["benchmarks"].items():
        n_runs = b.get("extra", {}).get("judge_runs", 1)
        path = out / name / "scores.json"
        if n_runs <= 1 or not path.exists():
            continue
        scores = json.loads(path.read_text(encoding="utf-8"))
        table = Table("category", "mean ± std", "per run", title=f"{name}: {n_runs} judge runs")
        for row in judge_runs_rows(scores):
            table.add_row(*row, style="bold" if row[0] == "total" else None)
        print_table(table)


def _warn_missing(results: dict) -> None:
    for name, b in results["benchmarks"].items():
        if b.get("n_missing"):
            console.print(f"[yellow]{name}: {b['n_missing']} item(s) had no answer and were scored as wrong")
        if b.get("extra", {}).get("n_judge_failed"):
            n = b["extra"]["n_judge_failed"]
            runs = b["extra"].get("judge_runs", 1)
            where = "the scores" if runs <= 1 else f"the scores of the run(s) it failed in, of {runs}"
            console.print(
                f"[yellow]{name}: the judge failed on {n} item(s), left out of {where} ({name}/scores.json)"
            )


@eval_app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="Run folder (or its results.json): the reference, A.")],
    run_b: Annotated[Path, typer.Argument(help="Run folder (or its results.json) compared with it, B.")],
    markdown: Annotated[
        Path | None, typer.Option(help="Also write the comparison as a Markdown table here.")
    ] = None,
) -> None:
    """Side by side per benchmark and category, with the delta B - A."""
    from vitune.eval.health import protocol_mismatches
    from vitune.eval.runner import COMPARE_COLUMNS, compare_rows, load_results, markdown_table
    from vitune.utils.atomic import write_text

    try:
        a, b = load_results(run_a), load_results(run_b)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    rows = compare_rows(a, b)
    table = Table(*COMPARE_COLUMNS, title=f"A = {run_a}   B = {run_b}")
    for row in rows:
        style = "bold" if row[1] == "overall" else None
        delta = row[-1]
        colour = "green" if delta.endswith("(better)") else "red" if delta.endswith("(worse)") else None
        table.add_row(*row[:-1], f"[{colour}]{delta}[/{colour}]" if colour else delta, style=style)
    print_table(table)
    if a.get("model_fingerprint") == b.get("model_fingerprint"):
        console.print("[yellow]both runs are of the same model (same fingerprint)")
    for line in protocol_mismatches(a, b):
        console.print(f"[yellow]warning: {line}", highlight=False)
    if markdown is not None:
        write_text(markdown, markdown_table(COMPARE_COLUMNS, rows))


def _check_inputs(model: Path | None, specs: list) -> None:
    """Every named file and folder exists, before the model is loaded or any benchmark runs
    (`model` is None for a served model, `--api-url`)."""
    from vitune.errors import InputError

    if model is not None and not (model / "config.json").is_file():
        raise InputError(model, "not a saved model folder (no config.json)")
    for s in specs:
        if not s.path.exists():
            raise InputError(s.path, f"--bench {s.name}: no such file or folder")
        if s.image_root is not None and not Path(s.image_root).is_dir():
            raise InputError(s.image_root, f"--images {s.name}: no such folder")


@eval_app.command("list")
def list_benchmarks() -> None:
    """The registered benchmarks, their metric, scoring protocols (default first, scorer version)
    and whether they need an LLM judge."""

    from vitune.eval.benchmarks import benchmark_names, get_benchmark

    rows = []
    for name in benchmark_names():
        b = get_benchmark(name)
        doc = (sys.modules[type(b).__module__].__doc__ or "").strip().splitlines()
        protocols = ", ".join(b.protocols) + f" (v{b.scorer_version})"
        rows.append([name, b.metric, protocols, "yes" if b.needs_judge else "", doc[0] if doc else ""])
    print_rows(["name", "metric", "protocols", "judge", "official files"], rows)


@eval_app.command()
def multiround(
    model: Annotated[Path, typer.Option(help="Saved model folder (plain transformers Llava).")],
    bench: Annotated[
        list[str], typer.Option(help="NAME=PATH of a benchmark whose questions are chained per image.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for multiround_results.json.")],
    max_images: Annotated[int | None, typer.Option(min=1, help="Dialogs of at most N images.")] = None,
    max_turns: Annotated[int | None, typer.Option(min=1, help="At most N turns per dialog.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 32,
    device: Annotated[str, typer.Option()] = "cpu",
) -> None:
    """COCO-IFT multi-round evaluation: every image's questions asked as one dialog, side by side with
    the same questions asked one at a time (official scores, answer length and terseness per turn)."""
    from vitune.eval.multiround import run_multiround_benchmarks
    from vitune.eval.runner import parse_bench
    from vitune.models import detect_family

    _check_model(model)
    if detect_family(model).kind != "llava":
        raise typer.BadParameter(
            f"{model}: multi-round evaluation renders dialogs with vitune's templates, so it takes "
            f"vitune/LLaVA checkpoints only (this is a {detect_family(model).name} model)"
        )

    try:
        specs = [parse_bench(b) for b in bench]
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    _check_names([s.name for s in specs])
    result = run_multiround_benchmarks(
        model,
        specs,
        out,
        max_images=max_images,
        max_turns=max_turns,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        device=device,
    )
    print_table(multiround_table(result, f"{model.name}: single-round vs multi-round"))
    console.print(f"results: {out / 'multiround_results.json'}")


def multiround_table(result: dict, title: str) -> Table:
    from vitune.eval.multiround import multiround_table_rows

    table = Table("row", "n", "single", "multi", "delta", title=title)
    for row in multiround_table_rows(result):
        table.add_row(*row)
    return table
