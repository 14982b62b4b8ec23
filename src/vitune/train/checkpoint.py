"""Resumable training checkpoints: trainable weights, optimizer, RNG states and the data position.

Only parameters that train are saved (frozen ones are rebuilt from the stage's starting weights),
so a checkpoint of a LoRA or projector-only stage stays small. Weights and optimizer state are full
tensors keyed by parameter name (gathered from the shards under FSDP, see `train/distributed.py`),
so one file resumes on 1 process, under DDP or under FSDP alike. The file is written to a temporary
name, fsynced and renamed, so a kill at any moment leaves either the previous checkpoint or the new
one, never a torn file. The data position needs no sampler state: batches are a pure function of
(seed, epoch), so the optimizer step count says exactly where to continue.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitune.train.distributed import load_trainable_state
from vitune.utils.atomic import atomic_open

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 2  # 2: optimizer state keyed by parameter name (1 keyed it by position)


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    # Tensors and plain tuples only, so the file loads with torch.load(weights_only=True).
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    directory: str | os.PathLike,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    progress: dict[str, Any],
) -> Path:
    """Atomically write `directory/checkpoint.pt` from full trainable weights and optimizer state
    (`distributed.full_trainable_state`); `progress` holds step, elapsed time, metrics lines."""
    path = Path(directory) / CHECKPOINT_FILE
    payload = {
        "format": FORMAT,
        "model": weights,
        "optimizer": optimizer_state,
        "rng": rng_state(),
        "progress": progress,
    }
    with atomic_open(path, "wb", fsync=True) as fh:
        torch.save(payload, fh)
    return path


def load_checkpoint(
    directory: str | os.PathLike,
    model: torch.nn.Module,
    wrapped: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> dict[str, Any] | None:
    """Restore weights, optimizer and RNG from `directory`; returns the saved progress or None.

    `model` is the module as built (its parameter names are the checkpoint's keys), `wrapped` and
    `optimizer` what `accelerator.prepare` returned: under FSDP the state can only be loaded into
    the shards, so this runs after prepare, on every process.
    """
    path = Path(directory) / CHECKPOINT_FILE
    if not path.exists():
        return None
    # weights_only: a tampered checkpoint cannot run code when loaded.
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(
            f"{path}: written by an older vitune (optimizer state by index); re-run with --no-resume"
        )
    params = dict(model.named_parameters())
    missing = [n for n in payload["model"] if n not in params]
    if missing:
        raise ValueError(f"{path}: checkpoint parameters not in the model (different recipe?): {missing[:5]}")
    trainable = {n for n, p in params.items() if p.requires_grad}
    if trainable != set(payload["model"]):
        raise ValueError(f"{path}: the checkpoint trains other parameters than this stage; cannot resume")
    load_trainable_state(wrapped, optimizer, payload["model"], payload["optimizer"])
    set_rng_state(payload["rng"])
    return payload["progress"]
