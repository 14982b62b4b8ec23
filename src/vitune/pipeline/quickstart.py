"""`vitune quickstart`: world -> sources -> tasks / synth -> train -> eval in one work folder.

Layout of the work folder::

    world/       the embedded miniature world (COCO / VG / VQAv2 files + images)
    data/        instance set (Parquet + manifest), LLaVA JSON export, rejected ledger
    synth/       ~1K template-synthesized conversations (stage 2 of the two-stage recipe)
    train/       the `tiny-two-stage` recipe run: base/, stages/<name>/, model -> last stage
    eval/        VQAv2 predictions (resumable) and results

Each step is skipped when its `done.json` matches its parameters, so a killed quickstart resumes.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vitune import __version__
from vitune.data.ledger import Ledger
from vitune.data.records import ImageRecord
from vitune.sources.inputs import SourcesInput
from vitune.tasks.build import build_to_dir
from vitune.utils.atomic import write_json
from vitune.utils.steps import read_result, run_step
from vitune.world.layout import WorldLayout

DEFAULT_TASKS = [
    "vqa_short_answer",
    "object_color",
    "object_shape",
    "object_counting",
    "object_existence",
    "coco_caption_coarse",
    # Permutation-free perception targets: the densest image-dependent signal per sample.
    "color_inventory",
    "object_inventory",
    # COCO-IFT: every question of an image merged into one multi-turn conversation. Without it the
    # tiny model scored 48.5 asked one question at a time but 21.4 in a dialog; with it 53.8 / 52.2.
    "vqa_dialog",
]

Say = Callable[[str], None]


@dataclass
class QuickstartConfig:
    work: Path
    images: int = 3000
    seed: int = 0
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    cap: int = 10_000
    eval_split: str = "val"
    eval_questions: int | None = None  # limit for faster runs (first N questions, image order)
    workers: int = 2
    recipe: str = "tiny-two-stage"  # a bundled training recipe name or a YAML path
    # Applied to every stage of the recipe (e.g. {"max_steps": 20, "time_budget_s": None} in tests).
    stage_overrides: dict[str, Any] = field(default_factory=dict)
    time_scale: float = 1.0  # multiplies every stage's step count (and time budget, if a recipe has one)
    synth_images: int = 400  # images whose annotations seed the stage-2 conversations
    bench_images: int = 60  # held-out test images the official-format world benchmarks are written from
    multiround_images: int = 40  # of those, images whose VQAv2 questions are also asked as one dialog
    synth_generators: list[str] = field(
        default_factory=lambda: ["conversation", "complex_reasoning", "detail_description"]
    )


def _world_records(world: Path, split: str, ledger: Ledger) -> list:
    """The world's COCO + Visual Genome + VQAv2 records: the formats the quickstart's published
    numbers were measured on (read through the one sources entry point)."""
    return SourcesInput(world=world, split=split, world_formats="core").load(ledger).records


def step_world(
    cfg: QuickstartConfig, say: Say, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    from vitune.world.generate import generate_world

    d = cfg.work / "world"
    params = {"images": cfg.images, "seed": cfg.seed, "version": __version__}

    def compute() -> dict[str, Any]:
        t0 = time.perf_counter()
        summary = generate_world(d, cfg.images, cfg.seed, workers=cfg.workers, progress=progress)
        result = {"seconds": round(time.perf_counter() - t0, 2), "splits": summary.get("splits", summary)}
        say(f"world: {cfg.images} images in {result['seconds']} s")
        return result

    return run_step(d, params, compute, say, "world")


def step_build(cfg: QuickstartConfig, say: Say) -> dict[str, Any]:
    world = cfg.work / "world"
    d = cfg.work / "data"
    params = {
        "tasks": cfg.tasks,
        "cap": cfg.cap,
        "seed": cfg.seed,
        "world": read_result(world),
        "version": __version__,
    }

    def compute() -> dict[str, Any]:
        ledger = Ledger()
        records = _world_records(world, "train", ledger)
        layout = WorldLayout(world)
        manifest = build_to_dir(
            records,
            cfg.tasks,
            d,
            cap=cfg.cap,
            seed=cfg.seed,
            ledger=ledger,
            inputs=layout.annotation_files("train"),
        )
        result = {
            "records": len(records),
            "instances": manifest["count"],
            "per_task": manifest["per_task"],
            "rejected": len(ledger),
        }
        say(f"build: {len(records)} images -> {manifest['count']} instances ({len(ledger)} rejected)")
        return result

    return run_step(d, params, compute, say, "build")


def step_synth(cfg: QuickstartConfig, say: Say) -> dict[str, Any]:
    """Template-synthesized conversations (no LLM needed) for the style-alignment stage."""
    from vitune.synth import TemplateBackend
    from vitune.synth import synth as run_synth

    world = cfg.work / "world"
    d = cfg.work / "synth"
    params = {
        "images": cfg.synth_images,
        "generators": cfg.synth_generators,
        "seed": cfg.seed,
        "world": read_result(world),
        "version": __version__,
    }

    def compute() -> dict[str, Any]:
        ledger = Ledger()
        records = _world_records(world, "train", ledger)
        summary = run_synth(
            records,
            cfg.synth_generators,
            TemplateBackend(),
            d,
            seed=cfg.seed,
            limit=cfg.synth_images,
            ledger=ledger,
        )
        result = {
            "llava_json": str(d / "synth_llava.json"),
            "instances": summary["export"]["total_instances"],
        }
        say(f"synth: {cfg.synth_images} images -> {result['instances']} conversations")
        return result

    return run_step(d, params, compute, say, "synth")


def quickstart_recipe(cfg: QuickstartConfig):
    """The training recipe with the work folder's paths filled in and the overrides applied."""
    from vitune.train.recipe import adjust_stages, load_recipe

    world = cfg.work / "world"
    variables = {
        "world": str(world),
        "tasks": str(cfg.work / "data" / "instances"),
        "chat": str(cfg.work / "synth" / "synth_llava.json"),
        "images": str(WorldLayout(world).image_root),
        "seed": str(cfg.seed),
    }
    return adjust_stages(load_recipe(cfg.recipe, variables), cfg.stage_overrides, cfg.time_scale)


def step_train(
    cfg: QuickstartConfig, say: Say, progress: Callable[[str, dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    from vitune.train.stages import run_recipe

    d = cfg.work / "train"
    recipe = quickstart_recipe(cfg)
    params = {
        "recipe": recipe.model_dump(),
        "data": read_result(cfg.work / "data"),
        "synth": read_result(cfg.work / "synth"),
        "version": __version__,
    }

    def compute() -> dict[str, Any]:
        t0 = time.perf_counter()
        out = run_recipe(recipe, d, progress=progress)
        result = {
            "model_dir": str((d / "model").resolve()),
            "stages": out["stages"],
            "train_seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        return result

    return run_step(d, params, compute, say, "train")


def peak_rss_mb() -> float:
    import resource

    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_eval(cfg: QuickstartConfig, say: Say) -> dict[str, Any]:
    from vitune.eval.vqa_eval import run_vqa_eval

    world = cfg.work / "world"
    d = cfg.work / "eval"
    train = read_result(cfg.work / "train")
    params = {
        "train": train,
        "split": cfg.eval_split,
        "questions": cfg.eval_questions,
        "version": __version__,
    }

    def compute() -> dict[str, Any]:
        # Predictions of another model (a retrained one) must not be resumed; those of this one may be.
        started = d / "params.json"
        if started.exists() and json.loads(started.read_text(encoding="utf-8")) != json.loads(
            json.dumps(params)
        ):
            shutil.rmtree(d)
        write_json(started, params, indent=2)
        ledger = Ledger()
        train_qas = [qa for r in _world_records(world, "train", ledger) for qa in r.qas]
        records = _world_records(world, cfg.eval_split, ledger)
        if cfg.eval_questions is not None:
            records = _limit_questions(records, cfg.eval_questions)
        result = run_vqa_eval(
            records, WorldLayout(world).image_root, train_qas, d, model_dir=Path(train["model_dir"])
        )
        return result

    return run_step(d, params, compute, say, "eval")


def step_bench(cfg: QuickstartConfig, say: Say) -> dict[str, Any]:
    """POPE / MME / MMBench / SEED / VQAv2 / classification written in their official formats from
    held-out test images, run through the generic benchmark runner (resumable, cached)."""
    from vitune.eval.world_bench import run_world_benchmarks

    d = cfg.work / "bench"
    train = read_result(cfg.work / "train")
    params = {"train": train, "images": cfg.bench_images, "seed": cfg.seed, "version": __version__}

    def compute() -> dict[str, Any]:
        result = run_world_benchmarks(
            train["model_dir"],
            cfg.work / "world",
            d,
            split="test",
            seed=cfg.seed,
            max_images=cfg.bench_images,
            pope_pairs=1,
            batch_size=16,
            max_new_tokens=16,
        )
        return result

    return run_step(d, params, compute, say, "bench")


def step_multiround(cfg: QuickstartConfig, say: Say) -> dict[str, Any]:
    """COCO-IFT's point: the world benchmark's VQAv2 questions about one image asked as one dialog,
    against the same questions asked one at a time."""
    from vitune.eval.multiround import run_multiround_benchmarks
    from vitune.eval.runner import BenchSpec

    d = cfg.work / "multiround"
    params = {
        "bench": read_result(cfg.work / "bench").get("model_fingerprint"),
        "images": cfg.multiround_images,
    }

    def compute() -> dict[str, Any]:
        spec = BenchSpec("vqav2", cfg.work / "bench" / "data" / "vqav2")
        train = read_result(cfg.work / "train")
        result = run_multiround_benchmarks(
            train["model_dir"], [spec], d, max_images=cfg.multiround_images, batch_size=16, max_new_tokens=16
        )
        result.pop("dialogs", None)  # in multiround_results.json; the marker keeps the summary
        return result

    return run_step(d, params, compute, say, "multiround")


def _limit_questions(records: list[ImageRecord], n: int) -> list[ImageRecord]:
    out, left = [], n
    for r in records:
        if left <= 0:
            break
        qas = [qa for qa in r.qas if qa.answers][:left]
        if qas:
            out.append(replace(r, qas=qas))
            left -= len(qas)
    return out


def config_dict(cfg: QuickstartConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["work"] = str(cfg.work)
    return d


def write_quickstart_report(cfg: QuickstartConfig) -> Path:
    """report/report.md and report/report.html: the training stages with loss and lr curves, the
    world benchmark table with example predictions, the multi-round comparison; and the dataset
    card of the build (data/README.md, data/gallery.html).

    Rewritten on every run (it only reads what the steps wrote, in seconds)."""
    from vitune.eval.runner import load_results
    from vitune.report import read_train_run, write_report
    from vitune.report.card import write_dataset_card
    from vitune.report.collect import read_multiround

    write_dataset_card(
        cfg.work / "data", image_root=WorldLayout(cfg.work / "world").image_root, seed=cfg.seed
    )
    bench = cfg.work / "bench" / "results"
    evals = {"world benchmarks": load_results(bench)} if (bench / "results.json").exists() else None
    mr = cfg.work / "multiround" / "multiround_results.json"
    rounds = {"world vqav2": read_multiround(mr)} if mr.exists() else None
    sources = [str(cfg.work / "train"), *([str(bench)] if evals else []), *([str(mr)] if rounds else [])]
    return write_report(
        cfg.work / "report",
        train={"quickstart": read_train_run(cfg.work / "train")},
        evals=evals,
        eval_dirs={"world benchmarks": bench} if evals else None,
        multiround=rounds,
        sources=sources,
        title="vitune quickstart",
        seed=cfg.seed,
    )


# "Clearly above the majority baseline": overall VQAv2 accuracy at least this many points higher.
# The calibrated run is +11; a model that learned nothing from the images scores about +0.
VERDICT_MARGIN = 3.0


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    """Whether the trained model is clearly above the majority baseline, and a sentence saying so
    that names every stage's step count (too few steps is the usual reason it is not)."""
    model = float(results["eval"]["model"]["overall"])
    base = float(results["eval"]["baseline"]["overall"])
    steps = {name: st.get("steps") for name, st in results["train"]["stages"].items()}
    ran = ", ".join(f"{name} {n}" for name, n in steps.items())
    ok = model - base >= VERDICT_MARGIN
    if ok:
        text = f"verdict: the model ({model:.2f}) is clearly above the majority baseline ({base:.2f}); steps: {ran}"
    else:
        text = (
            f"verdict: the model ({model:.2f}) is NOT clearly above the majority baseline ({base:.2f}, "
            f"needs +{VERDICT_MARGIN:g}); the stages ran {ran} steps: too few to learn from the images?"
        )
    return {
        "ok": ok,
        "model": model,
        "baseline": base,
        "margin": VERDICT_MARGIN,
        "steps": steps,
        "text": text,
    }


def run_quickstart(cfg: QuickstartConfig) -> dict[str, Any]:
    """Run (or resume) every step; returns each step's result."""
    from vitune.utils.progress import console, make_progress, stage_bars

    cfg.work.mkdir(parents=True, exist_ok=True)
    write_json(cfg.work / "quickstart.json", config_dict(cfg), indent=2)
    t0 = time.perf_counter()
    say = console.print
    out: dict[str, Any] = {}
    with make_progress() as prog:
        bar = prog.add_task("world", total=cfg.images, info="")
        out["world"] = step_world(cfg, say, lambda k: prog.advance(bar, k))
        prog.update(bar, completed=cfg.images)
    out["build"] = step_build(cfg, say)
    out["synth"] = step_synth(cfg, say)
    with make_progress() as prog:
        out["train"] = step_train(cfg, say, stage_bars(prog))
    for name, st in out["train"]["stages"].items():
        first, last = st.get("first_loss"), st.get("last_loss")
        if first is not None and last is not None:
            say(f"train/{name}: loss {first:.3f} -> {last:.3f} in {st.get('steps')} steps")
    with console.status("eval: answering held-out VQAv2 questions"):
        out["eval"] = step_eval(cfg, say)
    if cfg.bench_images:
        with console.status("bench: official-format benchmarks written from held-out images"):
            out["bench"] = step_bench(cfg, say)
        if cfg.multiround_images:
            with console.status("multiround: each image's questions as one dialog"):
                out["multiround"] = step_multiround(cfg, say)
    out["report"] = str(write_quickstart_report(cfg))
    out["verdict"] = verdict(out)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(cfg.work / "results.json", out, indent=2)
    say(f"quickstart finished in {out['seconds']} s")
    return out
