"""`train_tiny`: instances -> tokenizer -> tiny LLaVA -> training -> export, in one call.

This is what the quickstart runs: everything is built from configs (no download), trained on the
CPU, and exported so that plain `transformers` reloads it. Rejected samples are returned with their
reasons (and written to `rejected.jsonl`) rather than dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from vitune.data.images import CLIP_MEAN, CLIP_STD, pixel_statistics
from vitune.data.instance import Instance
from vitune.data.ledger import Ledger
from vitune.train.export import save_pretrained
from vitune.train.labels import ImageCache, LabelEncoder, build_dataset, collate
from vitune.train.loop import ProgressFn, TrainConfig, seed_everything, train
from vitune.train.model import build_model, get_preset, processor_for, set_trainable
from vitune.train.tokenizer import corpus_texts, train_tokenizer
from vitune.utils.atomic import write_text

log = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dataset_pixel_stats(
    instances: Sequence[Instance], image_root: Path, seed: int, sample: int = 256
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Pixel mean/std over a seeded sample of the training images."""
    import random

    paths = sorted({i.image for i in instances if i.image is not None})
    if len(paths) > sample:
        paths = sorted(random.Random(seed).sample(paths, sample))
    return pixel_statistics([image_root / p for p in paths])


def train_tiny(
    instances: Sequence[Instance],
    image_root: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    cfg: TrainConfig | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Train a tiny LLaVA from scratch on `instances` and export it to `out_dir/model`.

    `out_dir` receives `metrics.jsonl`, `rejected.jsonl`, `summary.json` and the exported `model/`
    (loadable with `LlavaForConditionalGeneration.from_pretrained` / `AutoProcessor.from_pretrained`).
    """
    cfg = cfg or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seed_everything(cfg.seed)

    tokenizer = train_tokenizer(corpus_texts(instances, cfg.template), vocab_size=cfg.vocab_size)
    preset = get_preset(cfg.preset)
    if cfg.max_length > preset.max_positions:
        raise ValueError(
            f"max_length {cfg.max_length} exceeds preset {cfg.preset!r} positions {preset.max_positions}"
        )
    model = build_model(preset, tokenizer, seed=cfg.seed)
    mean, std = CLIP_MEAN, CLIP_STD
    if cfg.pixel_norm == "dataset" and image_root is not None:
        mean, std = dataset_pixel_stats(instances, Path(image_root), cfg.seed)
    processor = processor_for(model, tokenizer, mean, std)
    counts = set_trainable(model, cfg.train_projector, cfg.train_llm, cfg.train_vision)

    encoder = LabelEncoder(tokenizer, preset.image_seq_length, cfg.template, cfg.max_length)
    images = ImageCache(image_root, processor.image_processor) if image_root is not None else None
    dataset, rejected, data_stats = build_dataset(instances, encoder, images)
    ledger = Ledger()
    for r in rejected:
        ledger.reject("train.labels", "", f"id={r.id}", r.reason, **r.detail)
    ledger.write(out / "rejected.jsonl")
    log.info("data: %s", data_stats)
    t_prep = time.perf_counter() - t0

    collate_fn = partial(collate, pad_id=tokenizer.pad_token_id)
    warmup: dict[str, Any] | None = None
    main_cfg = cfg
    if cfg.warmup_tasks:
        warm_instances = [i for i in instances if i.task in set(cfg.warmup_tasks)]
        if not warm_instances:
            raise ValueError(f"warmup_tasks {cfg.warmup_tasks} match no instance")
        warm_ds, _, _ = build_dataset(warm_instances, encoder, images)
        f = cfg.warmup_fraction
        split = {
            "max_steps": max(1, int(cfg.max_steps * f)) if cfg.max_steps else None,
            "time_budget_s": cfg.time_budget_s * f if cfg.time_budget_s else None,
        }
        warm_cfg = cfg.model_copy(update={**split, "epochs": cfg.epochs * f})
        warmup = train(model, warm_ds, collate_fn, warm_cfg, out / "warmup", progress)
        rest = {
            "max_steps": max(1, cfg.max_steps - warmup["steps"]) if cfg.max_steps else None,
            "time_budget_s": cfg.time_budget_s - warmup["train_seconds"] if cfg.time_budget_s else None,
        }
        main_cfg = cfg.model_copy(update={**rest, "epochs": cfg.epochs * (1 - f)})
    result = train(model, dataset, collate_fn, main_cfg, out, progress)
    if warmup is not None:
        result["warmup"] = warmup
        result["first_loss"] = warmup["first_loss"]
        result["steps"] += warmup["steps"]
    summary: dict[str, Any] = {
        **result,
        "config": cfg.model_dump(),
        "data": data_stats,
        "rejected": [{"id": r.id, "reason": r.reason} for r in rejected],
        "params": counts,
        "vocab_size": len(tokenizer),
        "image_seq_length": preset.image_seq_length,
        "prep_seconds": t_prep,
    }
    model_dir = save_pretrained(model, processor, out / "model", extra={"train": summary})
    summary["model_dir"] = str(model_dir)
    summary["total_seconds"] = time.perf_counter() - t0
    summary["peak_rss_mb"] = peak_rss_mb()
    write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary
