"""`vitune quickstart`: world -> sources -> tasks -> train -> eval in one work folder.

Layout of the work folder::

    world/       the embedded miniature world (COCO / VG / VQAv2 files + images)
    data/        instance set (Parquet + manifest), LLaVA JSON export, rejected ledger
    train/       metrics.jsonl, summary.json, model/ (plain transformers checkpoint)
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
from vitune.data.store import read_instances
from vitune.pipeline.steps import is_done, mark_done, read_result
from vitune.sources.merge import load_world
from vitune.tasks.build import build_to_dir
from vitune.train.loop import TrainConfig
from vitune.utils.atomic import write_json
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
]

Say = Callable[[str], None]


def quickstart_train_config() -> TrainConfig:
    """The tiny CPU recipe: 128 px images in 64 tokens, a 7-minute training budget on 2 cores."""
    return TrainConfig(
        preset="tiny128",
        lr=1e-3,
        batch_size=16,
        max_steps=5000,
        time_budget_s=420,
        pixel_norm="dataset",
        # Perception first: the image pathway learns before text priors dominate the gradient.
        warmup_tasks=["color_inventory", "object_inventory", "object_color", "object_shape"],
        warmup_fraction=0.3,
    )


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
    train: TrainConfig = field(default_factory=lambda: quickstart_train_config())


def step_world(cfg: QuickstartConfig, say: Say, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    from vitune.world.generate import generate_world

    d = cfg.work / "world"
    params = {"images": cfg.images, "seed": cfg.seed, "version": __version__}
    if is_done(d, params):
        say(f"world: reusing {d}")
        return read_result(d)
    t0 = time.perf_counter()
    summary = generate_world(d, cfg.images, cfg.seed, workers=cfg.workers, progress=progress)
    result = {"seconds": round(time.perf_counter() - t0, 2), "splits": summary.get("splits", summary)}
    mark_done(d, params, result)
    say(f"world: {cfg.images} images in {result['seconds']} s")
    return result


def step_build(cfg: QuickstartConfig, say: Say) -> dict[str, Any]:
    world = cfg.work / "world"
    d = cfg.work / "data"
    params = {"tasks": cfg.tasks, "cap": cfg.cap, "seed": cfg.seed, "world": read_result(world), "version": __version__}
    if is_done(d, params):
        say(f"build: reusing {d}")
        return read_result(d)
    ledger = Ledger()
    records = load_world(world, "train", ledger)
    layout = WorldLayout(world)
    manifest = build_to_dir(
        records, cfg.tasks, d, cap=cfg.cap, seed=cfg.seed, ledger=ledger, inputs=layout.annotation_files("train")
    )
    result = {"records": len(records), "instances": manifest["count"], "per_task": manifest["per_task"], "rejected": len(ledger)}
    mark_done(d, params, result)
    say(f"build: {len(records)} images -> {manifest['count']} instances ({len(ledger)} rejected)")
    return result


def step_train(cfg: QuickstartConfig, say: Say, progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    from vitune.train.pipeline import train_tiny

    d = cfg.work / "train"
    params = {"train": cfg.train.model_dump(), "data": read_result(cfg.work / "data"), "version": __version__}
    if is_done(d, params):
        say(f"train: reusing {d / 'model'}")
        return read_result(d)
    instances = read_instances(cfg.work / "data" / "instances")
    summary = train_tiny(instances, WorldLayout(cfg.work / "world").image_root, d, cfg.train, progress)
    keep = ("model_dir", "steps", "first_loss", "last_loss", "tokens_per_s", "train_seconds", "peak_rss_mb", "total_seconds")
    result = {k: summary[k] for k in keep if k in summary}
    result["rejected"] = len(summary.get("rejected", []))
    mark_done(d, params, result)
    return result


def step_eval(cfg: QuickstartConfig, say: Say) -> dict[str, Any]:
    from vitune.eval.vqa_eval import run_vqa_eval

    world = cfg.work / "world"
    d = cfg.work / "eval"
    train = read_result(cfg.work / "train")
    params = {"train": train, "split": cfg.eval_split, "questions": cfg.eval_questions, "version": __version__}
    if is_done(d, params):
        say(f"eval: reusing {d}")
        return read_result(d)
    # Predictions of another model (a retrained one) must not be resumed; those of this one may be.
    started = d / "params.json"
    if started.exists() and json.loads(started.read_text(encoding="utf-8")) != json.loads(json.dumps(params)):
        shutil.rmtree(d)
    write_json(started, params, indent=2)
    ledger = Ledger()
    train_qas = [qa for r in load_world(world, "train", ledger) for qa in r.qas]
    records = load_world(world, cfg.eval_split, ledger)
    if cfg.eval_questions is not None:
        records = _limit_questions(records, cfg.eval_questions)
    result = run_vqa_eval(records, WorldLayout(world).image_root, train_qas, d, model_dir=Path(train["model_dir"]))
    mark_done(d, params, result)
    return result


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
    d["train"] = cfg.train.model_dump()
    return d


def run_quickstart(cfg: QuickstartConfig) -> dict[str, Any]:
    """Run (or resume) every step; returns each step's result."""
    from vitune.utils.progress import console, make_progress

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
    with make_progress() as prog:
        bar = prog.add_task("train", total=None, info="")

        def on_step(m: dict[str, Any]) -> None:
            total = m.get("total_steps")
            info = f"loss {m.get('loss', float('nan')):.3f}  {m.get('tokens_per_s', 0):,.0f} tok/s"
            prog.update(bar, completed=m.get("step", 0), total=total, info=info)

        out["train"] = step_train(cfg, say, on_step)
    t = out["train"]
    say(f"train: loss {t.get('first_loss', float('nan')):.3f} -> {t.get('last_loss', float('nan')):.3f} in {t.get('steps')} steps")
    with console.status("eval: answering held-out VQAv2 questions"):
        out["eval"] = step_eval(cfg, say)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(cfg.work / "results.json", out, indent=2)
    say(f"quickstart finished in {out['seconds']} s")
    return out
