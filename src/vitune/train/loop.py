"""A plain PyTorch training loop for (tiny) LLaVA models on the CPU.

AdamW, linear warmup then cosine decay, gradient clipping and accumulation, everything seeded
(torch, random, numpy, the DataLoader's shuffling generator). The loss is the token-level mean over
the whole accumulation window (summed cross-entropy / supervised tokens), so accumulating k
micro-batches gives the same gradient as one k-times-larger batch, whatever the padding.

Every `log_every` optimizer steps a line goes to `metrics.jsonl` (loss, lr, tokens/s, padding
fraction) and to the optional progress callback.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch.utils.data import DataLoader

from vitune.train.labels import IGNORE_INDEX, TrainDataset

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]


class TrainConfig(BaseModel):
    """Hyper-parameters of one training stage. Defaults are the tiny-from-scratch CPU recipe."""

    preset: str = "tiny"
    template: str = "vicuna_v1"
    vocab_size: int = 2000
    lr: float = 2e-3
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    # Wall-clock cap; the lr schedule follows it (which makes the run time-dependent).
    time_budget_s: float | None = None
    batch_size: int = 16
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 256
    seed: int = 0
    train_projector: bool = True
    train_llm: bool = True
    # LLaVA freezes its pretrained CLIP tower; a from-scratch tower is random and must train.
    train_vision: bool = True
    # "dataset": normalize pixels with the training images' own mean/std (for a tower trained from
    # scratch); "clip": CLIP's constants (for a pretrained CLIP tower).
    pixel_norm: Literal["clip", "dataset"] = "clip"
    # Curriculum: train first on these tasks only (perception with a dense image signal) for this
    # fraction of the steps/time budget, then on everything. Empty: one pass over everything.
    warmup_tasks: list[str] = Field(default_factory=list)
    warmup_fraction: float = Field(default=0.3, ge=0.0, lt=1.0)
    num_threads: int | None = None  # None: one per available core, at most 4
    log_every: int = Field(default=10, ge=1)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def default_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    # Small matmuls stop scaling early; more threads than cores only adds contention.
    return max(1, min(4, n))


def lr_factor(progress: float, warmup_ratio: float, min_ratio: float) -> float:
    """Linear warmup then cosine decay to `min_ratio`, as a function of training progress in [0, 1]."""
    if warmup_ratio > 0 and progress < warmup_ratio:
        return max(progress / warmup_ratio, 1e-3)
    rest = (progress - warmup_ratio) / max(1e-9, 1 - warmup_ratio)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, rest)))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # No decay on biases and norm weights (1-D tensors), as usual for transformers.
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def batch_loss_sum(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over supervised positions, and how many there were."""
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        pixel_values=batch["pixel_values"],
    )
    logits = out.logits[:, :-1].float()
    target = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return loss, int((target != IGNORE_INDEX).sum())


def train(
    model: torch.nn.Module,
    dataset: TrainDataset,
    collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]],
    cfg: TrainConfig,
    out_dir: str | os.PathLike | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Train in place; returns a summary (steps, first/last loss, throughput, timings)."""
    if len(dataset) == 0:
        raise ValueError("nothing to train on: the dataset is empty")
    torch.set_num_threads(cfg.num_threads or default_threads())
    gen = seed_everything(cfg.seed)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, shuffle=True, generator=gen, collate_fn=collate_fn, num_workers=0
    )
    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    total = cfg.max_steps if cfg.max_steps is not None else max(1, math.ceil(steps_per_epoch * cfg.epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: enable at least one of projector / llm / vision")
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))

    metrics_fh = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        metrics_fh = open(Path(out_dir) / "metrics.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    def batches():
        epoch = 0
        while True:
            for b in loader:
                yield epoch, b
            epoch += 1

    model.train()
    it = batches()
    t0 = time.perf_counter()
    t_log, tok_log, pad_log, slot_log, loss_log, n_log = t0, 0, 0, 0, 0.0, 0
    first_loss = last_loss = None
    tokens_total = 0
    step = 0
    stopped_by_time = False
    try:
        while step < total:
            # Progress is steps done, or wall time used when a time budget is set (whichever is
            # further), so a time-capped run still warms up and decays instead of stopping at peak lr.
            frac = step / total
            if cfg.time_budget_s:
                frac = max(frac, (time.perf_counter() - t0) / cfg.time_budget_s)
            if frac >= 1.0:
                stopped_by_time = True
                break
            lr = cfg.lr * lr_factor(frac, cfg.warmup_ratio, cfg.min_lr_ratio)
            for g in opt.param_groups:
                g["lr"] = lr
            micro = [next(it) for _ in range(cfg.grad_accum)]
            n_sup = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for _, b in micro)
            step_loss = 0.0
            for _, b in micro:
                loss_sum, _ = batch_loss_sum(model, b)
                (loss_sum / max(1, n_sup)).backward()
                step_loss += float(loss_sum.detach()) / max(1, n_sup)
                real = int(b["attention_mask"].sum())
                tok_log += real
                slot_log += b["attention_mask"].numel()
                pad_log += b["attention_mask"].numel() - real
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if first_loss is None:
                first_loss = step_loss
            loss_log += step_loss
            n_log += 1
            if step % cfg.log_every == 0 or step == total or step == 1:
                now = time.perf_counter()
                rec = {
                    "step": step,
                    "total_steps": total,
                    "epoch": micro[-1][0],
                    "loss": loss_log / n_log,
                    "lr": lr,
                    "grad_norm": float(grad_norm),
                    "tokens_per_s": tok_log / max(1e-9, now - t_log),
                    "pad_frac": pad_log / max(1, slot_log),
                    "elapsed_s": now - t0,
                }
                last_loss = rec["loss"]
                tokens_total += tok_log
                if metrics_fh is not None:
                    metrics_fh.write(json.dumps(rec) + "\n")
                    metrics_fh.flush()
                if progress is not None:
                    progress(rec)
                log.info(
                    "step %d/%d loss %.4f lr %.2e %.0f tok/s",
                    step,
                    total,
                    rec["loss"],
                    lr,
                    rec["tokens_per_s"],
                )
                t_log, tok_log, pad_log, slot_log, loss_log, n_log = now, 0, 0, 0, 0.0, 0
    finally:
        if metrics_fh is not None:
            metrics_fh.close()
    if n_log:  # steps after the last log line
        last_loss = loss_log / n_log
    elapsed = time.perf_counter() - t0
    tokens_total += tok_log
    model.eval()
    return {
        "steps": step,
        "planned_steps": total,
        "stopped_by_time_budget": stopped_by_time,
        "first_loss": first_loss,
        "last_loss": last_loss,
        "train_seconds": elapsed,
        "tokens_per_s": tokens_total / max(1e-9, elapsed),
        "samples": len(dataset),
    }
