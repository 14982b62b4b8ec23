"""What vitune adds to accelerate for sharded training: FSDP2 on CPU processes, and full state.

accelerate (1.15) only turns an FSDP launch into FSDP on GPU-like devices: on CPU processes
(`Accelerator(cpu=True)`, the gloo backend) its state stays `MULTI_CPU` and `prepare` silently wraps
the model in DDP, whatever the config says. torch's FSDP2 (`fully_shard`) itself runs on a CPU
device mesh over gloo, so `enable_fsdp_on_cpu` switches the accelerator's state to FSDP after it
is built; from there every FSDP step (`prepare`, `no_sync`, `clip_grad_norm_`, `get_state_dict`) is
accelerate's own GPU code path, which is what the CPU test of `configs/accelerate/fsdp-cpu-2proc.yaml`
exercises. Only FSDP2 is allowed there: accelerate's FSDP1 plugin asks for a GPU as soon as
`sync_module_states` is on, and the launcher turns it on by default.

Under FSDP every parameter is a shard (a DTensor), so checkpoints and exports must gather full
tensors, collectively on all processes, before the main process writes them: `full_trainable_state`
and `load_trainable_state` (torch.distributed.checkpoint's state-dict API, which also works on a
plain or DDP-wrapped model, so checkpoints have one format whatever the launch).
"""

from __future__ import annotations

import os
from typing import Any

import torch


def fsdp_on_cpu_requested() -> bool:
    """Whether `accelerate launch` was given an FSDP config (it exports ACCELERATE_USE_FSDP to every
    process) on a machine without a GPU. Call before building the Accelerator: with FSDP1 asked
    for, accelerate's own plugin fails there with "There are currently no available devices
    found", which this replaces with what to change."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true" or torch.cuda.is_available():
        return False
    if os.environ.get("FSDP_VERSION", "1") != "2":
        raise ValueError(
            "FSDP on CPU processes needs `fsdp_version: 2` in the accelerate config (accelerate's FSDP1 "
            "plugin requires a GPU for sync_module_states); see configs/accelerate/fsdp-cpu-2proc.yaml"
        )
    return True


def is_sharded(acc: Any) -> bool:
    from accelerate.utils import DistributedType

    return acc.distributed_type == DistributedType.FSDP


def enable_fsdp_on_cpu(acc: Any, mixed_precision: str) -> None:
    """Make a multi-process CPU accelerator shard with FSDP2, as its launch config asked.

    The plugin is built from the same `FSDP_*` variables accelerate itself would read, and gets the
    stage's mixed precision (accelerate does that in its own FSDP branch, which CPU never reaches).
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if acc.num_processes < 2 or acc.device.type != "cpu" or is_sharded(acc):
        return  # nothing to shard, or an accelerate that shards on CPU by itself
    plugin = FullyShardedDataParallelPlugin()
    if mixed_precision != "no":
        plugin.set_mixed_precision(mixed_precision)
    # Both shared states: every later `AcceleratorState()` (accelerate builds them in many helpers)
    # copies the process-level PartialState over its own fields and would turn FSDP back into
    # MULTI_CPU halfway through a stage. The plugin lives on the AcceleratorState only.
    PartialState().distributed_type = DistributedType.FSDP
    acc.state.distributed_type = DistributedType.FSDP
    acc.state.fsdp_plugin = plugin


def _options(**kw: bool):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(**kw)


def full_trainable_state(
    wrapped: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Full (unsharded, CPU) trainable weights and optimizer state keyed by parameter name.

    Collective under FSDP: every process must call it; only rank 0 gets the tensors (the others
    get empty dicts), which is all the main process needs to write a checkpoint.
    """
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    # Frozen weights are rebuilt from the stage's starting export, so they are not saved.
    opts = _options(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    model_sd = get_model_state_dict(wrapped, options=opts)
    optim_sd = get_optimizer_state_dict(wrapped, optimizer, options=opts)
    return model_sd, optim_sd


def load_trainable_state(
    wrapped: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    model_sd: dict[str, torch.Tensor],
    optim_sd: dict[str, Any],
) -> None:
    """Load full trainable weights and optimizer state (every process passes the same full dicts;
    under FSDP each keeps its own shard of them). Call after `accelerator.prepare`."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    # strict=False: frozen weights are absent from a checkpoint by design, and so is the optimizer
    # state of a trainable weight that never got a gradient (AdamW creates it lazily; e.g. the
    # vision tower's last layer when features come from the one before). The caller has checked
    # that the checkpoint trains exactly this model's parameters.
    relaxed = _options(full_state_dict=True, strict=False)
    set_model_state_dict(wrapped, model_sd, options=relaxed)
    set_optimizer_state_dict(wrapped, optimizer, optim_sd, options=relaxed)
