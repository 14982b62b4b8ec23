"""The training loop of one stage: accelerate-driven, exactly resumable, the same on 1 or N processes.

AdamW, linear warmup then cosine decay, gradient clipping and accumulation, everything seeded. The
loss is the token-level mean over the whole *global* batch (summed cross-entropy / supervised tokens
of all micro-batches on all processes), so k accumulation steps, or k processes under DDP, give the
same gradient as one k-times-larger batch, whatever the padding.

Data order is a pure function of (seed, epoch): a `Plan` turns an epoch into micro-batches of dataset
indices, optimizer step s consumes micro-batches [s*W*A, (s+1)*W*A) of the endless stream of epochs
(W processes, A accumulation steps) and process r takes every W-th of them. A checkpoint therefore only
needs the step count to continue on exactly the same batches; with the RNG and optimizer states it
gives the same loss curve as an uninterrupted run.

Scale-out is accelerate's job (`accelerate launch` with DDP / FSDP / DeepSpeed configs); the loop
only asks accelerate to prepare the model and optimizer and never shards data itself beyond the
rank-strided stream above. Under FSDP (also on CPU processes, see `train/distributed.py`) the
parameters become shards, so checkpoints gather full tensors first and are loaded after `prepare`,
and every process must run the same modules in each micro-step: with text-only samples the plan
must give the W micro-batches of a micro-step one modality (the aligned plans of `sampler.py`,
which stages use under FSDP); `_check_same_modules` refuses a step that does not.

Batches come from a torch `DataLoader` whose batch sampler (`StepBatches`) yields this process's
micro-batches from the first step to run on: with `num_workers` > 0, worker processes load items
(memory-mapped ids, image decode -> pad-to-square -> image processor) and collate ahead of the step,
pinned on CUDA. The batches and their order are the same with any number of workers, and the loader
draws nothing from the global RNG, so the loss curve does not depend on it.

Every `log_every` optimizer steps a line goes to `metrics.jsonl` (loss, lr, tokens/s, padding
fraction) and to the optional progress callback. The window a line averages over is saved in the
checkpoint, so after a kill and resume every line equals the uninterrupted run's (the wall-clock
fields aside).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from vitune.train.checkpoint import load_checkpoint, save_checkpoint
from vitune.train.distributed import (
    enable_fsdp_on_cpu,
    fsdp_on_cpu_requested,
    full_trainable_state,
    is_sharded,
)
from vitune.train.labels import IGNORE_INDEX
from vitune.utils.hashing import derive_seed

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]
Plan = Callable[[int], list[list[int]]]  # epoch -> micro-batches of dataset indices


class TrainConfig(BaseModel):
    """Optimizer, schedule and batching of one stage (built from a recipe's `StageSpec`)."""

    lr: float = 2e-3
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    # Wall-clock budget: exceeding it only warns. Steps end a stage and drive the lr schedule, so a
    # seeded run computes the same on a busy machine as on a quiet one.
    time_budget_s: float | None = None
    batch_size: int = 16  # per process
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    num_threads: int | None = None  # None: one per available core, at most 4
    log_every: int = Field(default=10, ge=1)
    save_every: int | None = Field(default=None, ge=1)  # steps between resumable checkpoints
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    tensorboard: bool = False  # also log the metrics lines as TensorBoard scalars (out_dir/tensorboard)
    # DataLoader worker processes that load, decode and collate batches ahead of the step (0: on the
    # training thread). The batches and their order do not depend on it.
    num_workers: int = Field(default=0, ge=0)


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


def warn_time_budget(t0: float, budget_s: float | None, step: int, warned: bool) -> bool:
    """Whether the stage has run past its time budget, warning the first time. A budget never ends a
    stage or shapes its schedule: wall-clock time must not decide what a run computes."""
    if warned or not budget_s or time.perf_counter() - t0 <= budget_s:
        return warned
    log.warning("stage past its time budget of %.0f s at step %d; it runs to its step count", budget_s, step)
    return True


def lr_factor(progress: float, warmup_ratio: float, min_ratio: float) -> float:
    """Linear warmup then cosine decay to `min_ratio`, as a function of training progress in [0, 1]."""
    if warmup_ratio > 0 and progress < warmup_ratio:
        return max(progress / warmup_ratio, 1e-3)
    rest = (progress - warmup_ratio) / max(1e-9, 1 - warmup_ratio)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, rest)))


def random_plan(n: int, batch_size: int, seed: int) -> Plan:
    """LLaVA's default order: a fresh seeded permutation per epoch, cut into micro-batches."""

    def plan(epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
        order = torch.randperm(n, generator=g).tolist()
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]

    return plan


class MicroBatchStream:
    """Micro-batch number p of the endless sequence of epochs, computed lazily from the plan."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._epochs: list[list[list[int]]] = []
        self._starts: list[int] = [0]

    def per_epoch(self) -> int:
        return len(self._epoch(0))

    def _epoch(self, e: int) -> list[list[int]]:
        while len(self._epochs) <= e:
            batches = self.plan(len(self._epochs))
            if not batches:
                raise ValueError("the data plan produced an empty epoch")
            self._epochs.append(batches)
            self._starts.append(self._starts[-1] + len(batches))
            if len(self._epochs) > 2:  # only the current and next epochs are ever needed again
                self._epochs[len(self._epochs) - 3] = []
        return self._epochs[e]

    def __getitem__(self, p: int) -> tuple[int, list[int]]:
        e = 0
        while True:
            self._epoch(e)
            if p < self._starts[e + 1]:
                return e, self._epoch(e)[p - self._starts[e]]
            e += 1


class StepBatches:
    """This process's micro-batches (lists of dataset indices) for optimizer steps `start`..`total-1`,
    in the order the loop consumes them: a batch sampler for a `DataLoader`.

    The micro-batch of step s is a pure function of s (`MicroBatchStream`), so a resumed run starts
    this iterator at its checkpoint's step and gets exactly the batches the uninterrupted run had.
    It has a stream of its own: the DataLoader runs it ahead of the loop (prefetch), possibly by
    more than the two epochs a stream keeps.
    """

    def __init__(self, plan: Plan, start: int, total: int, world: int, rank: int, accum: int) -> None:
        self.stream, self.start, self.total = MicroBatchStream(plan), start, total
        self.world, self.rank, self.accum = world, rank, accum

    def __iter__(self) -> Iterator[list[int]]:
        per_step = self.world * self.accum
        for s in range(self.start, self.total):
            for a in range(self.accum):
                yield self.stream[s * per_step + a * self.world + self.rank][1]

    def __len__(self) -> int:
        return max(0, self.total - self.start) * self.accum


def make_loader(
    dataset: Any, collate_fn: Callable, batches: StepBatches, num_workers: int, seed: int
) -> torch.utils.data.DataLoader:
    """A DataLoader over `batches`: workers run `dataset[i]` (image decode, pad, processor) and the
    collate while the model trains; pinned memory on CUDA.

    One iteration covers the whole stage (the sampler spans every step), so workers live for the
    stage (`persistent_workers` only matters for loaders iterated once per epoch; it is set for the
    same effect should a caller iterate twice). The loader's own generator is seeded: creating an
    iterator draws a worker base seed, which must not come from (and shift) the global torch RNG the
    model's dropout and the checkpoints use.
    """
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {"prefetch_factor": 2, "persistent_workers": True}
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate_fn,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed),
        **extra,
    )


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # No decay on biases and norm weights (1-D tensors), as usual for transformers.
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def batch_loss_sum(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over supervised positions, and how many there were."""
    kwargs = {}
    if batch.get("position_ids") is not None:  # packed rows restart positions per sample
        kwargs["position_ids"] = batch["position_ids"]
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch.get("attention_mask"),
        pixel_values=batch["pixel_values"],
        **kwargs,
    )
    logits = out.logits[:, :-1].float()
    target = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return loss, int((target != IGNORE_INDEX).sum())


def make_accelerator(cfg: TrainConfig, out_dir: str | os.PathLike | None = None):
    """An `accelerate.Accelerator` for this stage (single CPU process when not launched); with
    `cfg.tensorboard` it logs to TensorBoard under `out_dir/tensorboard`."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState

    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # Text-only batches leave the vision tower unused; DDP must not wait for its gradients.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    # cpu=True on a machine without a GPU: otherwise processes started by `accelerate launch` /
    # torchrun would each train alone instead of forming a gloo process group.
    tracking = {}
    if cfg.tensorboard:
        if out_dir is None:
            raise ValueError("tensorboard logging needs an output folder")
        tracking = {"log_with": "tensorboard", "project_dir": str(out_dir)}
    # Each stage is its own accelerate run: without a reset, the first stage's mixed precision
    # (and FSDP plugin) would stick and a later stage asking for another one would be refused.
    # The process group (PartialState) is kept.
    AcceleratorState._reset_state()
    fsdp_on_cpu = fsdp_on_cpu_requested()
    acc = Accelerator(
        mixed_precision=mp, kwargs_handlers=[ddp], cpu=not torch.cuda.is_available(), **tracking
    )
    if fsdp_on_cpu:
        enable_fsdp_on_cpu(acc, mp)
    return acc


def _real_tokens(b: dict[str, Any]) -> tuple[int, int]:
    """(real tokens, token slots) of a batch; padding is the difference."""
    slots = b["input_ids"].numel()
    if b.get("n_real") is not None:  # packed batches say how many of their slots hold tokens
        return int(b["n_real"]), slots
    mask = b.get("attention_mask")
    if mask is not None and mask.dim() == 2:
        return int(mask.sum()), slots
    return slots, slots


def train(
    model: torch.nn.Module,
    dataset: Sequence[dict[str, Any]],
    collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]],
    cfg: TrainConfig,
    out_dir: str | os.PathLike | None = None,
    progress: ProgressFn | None = None,
    *,
    plan: Plan | None = None,
    resume: bool = False,
    accelerator: Any = None,
) -> dict[str, Any]:
    """Train in place; returns a summary (steps, first/last loss, throughput, timings).

    With `resume=True` and a checkpoint in `out_dir`, training continues from it on the same
    batches, with the same RNG and optimizer state; `metrics.jsonl` is cut back to the checkpoint.
    """
    if len(dataset) == 0:
        raise ValueError("nothing to train on: the dataset is empty")
    torch.set_num_threads(cfg.num_threads or default_threads())
    seed_everything(cfg.seed)
    acc = accelerator or make_accelerator(cfg, out_dir)
    if cfg.tensorboard:
        acc.init_trackers("tensorboard")
    world, rank = acc.num_processes, acc.process_index
    plan = plan or random_plan(len(dataset), cfg.batch_size, cfg.seed)
    stream = MicroBatchStream(plan)
    per_step = world * cfg.grad_accum
    total = cfg.max_steps or max(1, math.ceil(stream.per_epoch() * cfg.epochs / per_step))
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("no trainable parameters: enable at least one of projector / llm / vision")
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
    out = Path(out_dir) if out_dir is not None else None
    state: dict[str, Any] = {
        "step": 0,
        "elapsed_s": 0.0,
        "metrics_lines": 0,
        "first_loss": None,
        "window": {"loss": 0.0, "n": 0, "pad": 0, "slots": 0},
    }
    wrapped, opt = acc.prepare(model, opt)
    sharded = is_sharded(acc)
    # Taken after prepare: FSDP replaces every parameter with its shard.
    params = [p for p in wrapped.parameters() if p.requires_grad]
    if resume and out is not None:
        saved = load_checkpoint(out, model, wrapped, _inner(opt))
        if saved is not None:
            state.update(saved)
            log.info("resumed at step %d (%.0f s done)", state["step"], state["elapsed_s"])

    metrics_fh = None
    if out is not None and acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        lines = []
        if state["step"] and (out / "metrics.jsonl").exists():
            lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[: state["metrics_lines"]]
        metrics_fh = open(out / "metrics.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        for line in lines:
            metrics_fh.write(line + "\n")

    wrapped.train()
    step = state["step"]
    t0 = time.perf_counter() - state["elapsed_s"]
    # The logging window (steps since the last metrics line) continues across a resume: a line
    # averages the same steps whether or not the run was killed in between.
    window = {"pad": 0, "slots": 0, **state["window"]}
    t_log, tok_log, pad_log, slot_log = time.perf_counter(), 0, int(window["pad"]), int(window["slots"])
    loss_log, n_log = float(window["loss"]), int(window["n"])
    first_loss, last_loss = state["first_loss"], None
    tokens_total, epoch = 0, 0
    over_budget = False
    loader = make_loader(
        dataset,
        collate_fn,
        StepBatches(plan, step, total, world, rank, cfg.grad_accum),
        cfg.num_workers,
        cfg.seed,
    )
    batches = iter(loader)
    try:
        while step < total:
            frac = step / total
            over_budget = warn_time_budget(t0, cfg.time_budget_s, step, over_budget)
            lr = cfg.lr * lr_factor(frac, cfg.warmup_ratio, cfg.min_lr_ratio)
            for g in opt.param_groups:
                g["lr"] = lr
            base = step * per_step
            micro = []
            for a in range(cfg.grad_accum):
                epoch = stream[base + a * world + rank][0]
                micro.append(next(batches))
            counts = [sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in micro)]
            if sharded:  # which micro-batches have images, checked in the same reduction
                counts += [int(b.get("pixel_values") is not None) for b in micro]
            counts_all = (
                acc.reduce(torch.tensor(counts, device=acc.device), "sum").tolist() if world > 1 else counts
            )
            n_sup_all = max(1, int(counts_all[0]))
            if sharded:
                with_images = counts_all[1:]
                _check_same_modules(with_images, world)
                # Gradients accumulated without sync are reduced in the synced (last) backward, and
                # older FSDP2 (torch 2.4's) reduces only the groups that run in it: a step ending on a
                # text-only micro-step would drop the vision tower's accumulated gradients. Image
                # micro-steps go last (the same order everywhere: it comes from reduced counts).
                micro = [micro[k] for k in sorted(range(len(micro)), key=lambda k: with_images[k] > 0)]
            local_loss = 0.0
            for k, b in enumerate(micro):
                b = {key: (v.to(acc.device) if torch.is_tensor(v) else v) for key, v in b.items()}
                sync = k == len(micro) - 1
                ctx = acc.no_sync(wrapped) if (world > 1 and not sync) else nullcontext()
                with ctx, acc.autocast():
                    loss_sum, _ = batch_loss_sum(wrapped, b)
                    # DDP and FSDP average gradients over processes; scaling by W turns that into a sum.
                    acc.backward(loss_sum * world / n_sup_all)
                local_loss += float(loss_sum.detach())
                real, slots = _real_tokens(b)
                tok_log += real
                slot_log += slots
                pad_log += slots - real
            step_loss = local_loss / n_sup_all
            if world > 1:
                step_loss = float(acc.reduce(torch.tensor(step_loss, device=acc.device), "sum"))
            grad_norm = acc.clip_grad_norm_(params, cfg.max_grad_norm)
            if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP (already the global norm)
                grad_norm = grad_norm.full_tensor()
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
                    "epoch": epoch,
                    "loss": loss_log / n_log,
                    "lr": lr,
                    "grad_norm": float(grad_norm),
                    "tokens_per_s": tok_log * world / max(1e-9, now - t_log),
                    "pad_frac": pad_log / max(1, slot_log),
                    "elapsed_s": now - t0,
                }
                last_loss = rec["loss"]
                tokens_total += tok_log * world
                if metrics_fh is not None:
                    metrics_fh.write(json.dumps(rec) + "\n")
                    metrics_fh.flush()
                    state["metrics_lines"] += 1
                if progress is not None and acc.is_main_process:
                    progress(rec)
                if cfg.tensorboard:
                    scalars = ("loss", "lr", "grad_norm", "tokens_per_s", "pad_frac")
                    acc.log({f"train/{k}": rec[k] for k in scalars}, step=step)
                t_log, tok_log, pad_log, slot_log, loss_log, n_log = now, 0, 0, 0, 0.0, 0
            if cfg.save_every and out is not None and step % cfg.save_every == 0 and step < total:
                state["window"] = {"loss": loss_log, "n": n_log, "pad": pad_log, "slots": slot_log}
                _save(acc, wrapped, opt, out, step, t0, state, first_loss)
    finally:
        del batches, loader  # stops the workers (also when a time budget ends the stage early)
        if metrics_fh is not None:
            metrics_fh.close()
    if n_log:  # steps after the last log line
        last_loss = loss_log / n_log
    elapsed = time.perf_counter() - t0
    tokens_total += tok_log * world
    acc.wait_for_everyone()
    if cfg.tensorboard:
        acc.end_training()
    model.eval()
    return {
        "steps": step,
        "planned_steps": total,
        "resumed_from": state["step"] if resume else None,
        "over_time_budget": over_budget,
        "first_loss": first_loss,
        "last_loss": last_loss,
        "train_seconds": elapsed,
        "tokens_per_s": tokens_total / max(1e-9, elapsed),
        "samples": len(dataset),
        "processes": world,
        "global_batch": cfg.batch_size * per_step,
        "distributed": str(acc.distributed_type).rsplit(".", 1)[-1],
        "mixed_precision": acc.mixed_precision,
    }


def _inner(opt: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's wrapper."""
    return opt.optimizer if hasattr(opt, "optimizer") else opt


def _check_same_modules(with_images: list[float], world: int) -> None:
    """Refuse a step where some processes have images in a micro-batch and others do not.

    Under FSDP every process must run the same sharded modules in the same order (each one
    all-gathers its weights collectively); a text-only micro-batch skips the vision tower and the
    projector, so the processes would wait on different collectives (DDP copes, through
    find_unused_parameters). Stages plan around it (`stages.modality_alignment`); this is the safety
    net for any other plan: failing here, on every process at once, beats a hang.
    """
    mixed = [k for k, n in enumerate(with_images) if 0 < n < world]
    if mixed:
        raise RuntimeError(
            f"FSDP: micro-batch {mixed[0]} of this step has images on some processes and not on others "
            f"(text-only samples); give the loop a plan whose every {world} consecutive micro-batches "
            "share a modality (sampler.py's align; stages do this under FSDP), or train with DDP"
        )


def _save(acc, wrapped, opt, out: Path, step: int, t0: float, state: dict, first_loss) -> None:
    # Collective under FSDP: every process hands over its shards, the main process writes.
    weights, optimizer_state = full_trainable_state(wrapped, _inner(opt))
    if acc.is_main_process:
        progress = {
            "step": step,
            "elapsed_s": time.perf_counter() - t0,
            "metrics_lines": state["metrics_lines"],
            "first_loss": first_loss,
            "window": state["window"],
        }
        save_checkpoint(out, weights, optimizer_state, progress)
    acc.wait_for_everyone()
