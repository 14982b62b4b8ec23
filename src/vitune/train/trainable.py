"""Which parameters train in a stage: each part of a LLaVA model full, frozen, or LoRA.

The three parts are the vision tower, the projector and the LLM (decoder + `lm_head`).
`set_trainable_parts(model, {"vision": "frozen", "projector": "full", "llm": "lora"}, lora)` sets
`requires_grad` accordingly, wrapping the model with peft adapters (`train/lora.py`) when a part is
"lora", and returns the (possibly wrapped) model with per-part trainable / total parameter counts.
`enable_gradient_checkpointing` trades compute for activation memory in the LLM and vision tower.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from peft import PeftModel
from torch import nn
from transformers import LlavaForConditionalGeneration

if TYPE_CHECKING:
    from vitune.train.lora import LoraSettings

log = logging.getLogger(__name__)

Mode = Literal["full", "frozen", "lora"]
PARTS = ("vision", "projector", "llm")
# Where each part lives in a LlavaForConditionalGeneration (transformers >= 4.52 layout).
PART_PREFIXES = {
    "vision": ("model.vision_tower.",),
    "projector": ("model.multi_modal_projector.",),
    "llm": ("model.language_model.", "lm_head."),
}


def unwrap(model: nn.Module) -> LlavaForConditionalGeneration:
    """The LlavaForConditionalGeneration inside a peft wrapper (or the model itself)."""
    if isinstance(model, PeftModel):
        return model.get_base_model()
    return model  # type: ignore[return-value]


def part_of(name: str) -> str | None:
    """The part a parameter name (as in `unwrap(model).named_parameters()`) belongs to."""
    for part, prefixes in PART_PREFIXES.items():
        if name.startswith(prefixes):
            return part
    return None


def is_lora_param(name: str) -> bool:
    return ".lora_" in name


def lora_parts(model: nn.Module) -> set[str]:
    """Parts that currently carry LoRA adapters."""
    return {p for n, _ in unwrap(model).named_parameters() if is_lora_param(n) and (p := part_of(n))}


def _fixed_params(model: LlavaForConditionalGeneration) -> set[str]:
    # The `linear` projector is stored as linear_2(identity(linear_1(x))) with linear_2 = I (see
    # compose.make_projector); keeping linear_2 fixed makes it train exactly like one linear layer.
    if model.config.projector_hidden_act == "linear":
        return {
            n for n, _ in model.named_parameters() if n.startswith("model.multi_modal_projector.linear_2.")
        }
    return set()


def set_trainable_parts(
    model: nn.Module,
    modes: Mapping[str, Mode],
    lora: LoraSettings | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Set `requires_grad` per part; returns the model (peft-wrapped if any part is "lora") and counts.

    `modes` maps "vision", "projector", "llm" to "full", "frozen" or "lora" (missing parts are
    frozen). A model that already has adapters keeps them: its "lora" parts must match, and a part
    with adapters cannot be switched to "full" (merge first).

    The counts: `{part: {"mode", "trainable", "total", "lora"}, "trainable", "total"}`, where a part's
    total includes its adapter parameters and "lora" counts those.
    """
    unknown = set(modes) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown model parts {sorted(unknown)}; known: {list(PARTS)}")
    modes = {p: modes.get(p, "frozen") for p in PARTS}
    for part, mode in modes.items():
        if mode not in ("full", "frozen", "lora"):
            raise ValueError(f"unknown mode {mode!r} for {part!r}; use full, frozen or lora")
    if modes["projector"] == "lora":
        raise ValueError("the projector trains fully or not at all (LLaVA never puts LoRA on it)")

    wanted = {p for p, m in modes.items() if m == "lora"}
    have = lora_parts(model)
    if wanted and not have:
        # Imported here: lora.py builds on this module's helpers.
        from vitune.train.lora import LoraSettings, apply_lora

        model = apply_lora(unwrap(model), lora or LoraSettings(), parts=sorted(wanted))
    elif wanted and wanted != have:
        raise ValueError(f"the model has LoRA on {sorted(have)}, this stage asks for {sorted(wanted)}")
    for part in have:
        if modes[part] == "full":
            raise ValueError(f"{part!r} carries LoRA adapters; merge_lora() before training it fully")

    base = unwrap(model)
    fixed = _fixed_params(base)
    report: dict[str, Any] = {p: {"mode": modes[p], "trainable": 0, "total": 0, "lora": 0} for p in PARTS}
    for name, param in base.named_parameters():
        part = part_of(name)
        if part is None:
            raise RuntimeError(f"parameter {name!r} belongs to no known part")
        mode, is_lora = modes[part], is_lora_param(name)
        train = name not in fixed and (mode == "full" or (mode == "lora" and is_lora))
        param.requires_grad_(train)
        rec = report[part]
        rec["total"] += param.numel()
        rec["lora"] += param.numel() if is_lora else 0
        rec["trainable"] += param.numel() if train else 0
    report["trainable"] = sum(report[p]["trainable"] for p in PARTS)
    report["total"] = sum(report[p]["total"] for p in PARTS)
    for p in PARTS:
        r = report[p]
        log.info("%-9s %-6s %12d / %12d trainable", p, r["mode"], r["trainable"], r["total"])
    log.info("trainable %d / %d parameters", report["trainable"], report["total"])
    return model, report


def trainable_by_part(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters per part, e.g. for optimizer groups with their own learning rates
    (LLaVA's LoRA run: adapters 2e-4, projector 2e-5)."""
    out: dict[str, list[nn.Parameter]] = {p: [] for p in PARTS}
    for name, param in unwrap(model).named_parameters():
        if param.requires_grad:
            out[part_of(name) or "llm"].append(param)
    return out


def checkpointed_parts(modes: Mapping[str, str]) -> dict[str, bool]:
    """Which parts gradient checkpointing should recompute: those that keep activations for the
    backward pass, i.e. that train or that gradients pass through to a trained part before them.

    A frozen LLM under a trained projector (LLaVA's align stage) keeps its activations like a
    trained one (gradients flow back through every layer to the projector): at 32 samples of ~600
    tokens a frozen 13B LLM keeps ~120 GB of them, so it must be checkpointed too (LLaVA's
    pretraining runs with gradient checkpointing for this reason). A frozen tower before nothing
    trainable keeps nothing and is left alone."""
    vision = modes.get("vision", "frozen") != "frozen"
    upstream = vision or modes.get("projector", "frozen") != "frozen"
    return {"vision": vision, "llm": modes.get("llm", "frozen") != "frozen" or upstream}


def enable_gradient_checkpointing(model: nn.Module, llm: bool = True, vision: bool = True) -> None:
    """Recompute activations in the backward pass of the LLM (and vision tower) layers.

    Per part (not on the whole Llava model) so a frozen tower can be left alone. Non-reentrant
    checkpointing: gradients reach LoRA adapters and the projector even when the embeddings and
    inputs are frozen (the reentrant variant needs inputs that require grad). The config is not
    touched (transformers drops the KV cache by itself in checkpointed training layers), so the
    export keeps `use_cache` for inference.
    """
    base = unwrap(model)
    kwargs = {"use_reentrant": False}
    if llm:
        base.model.language_model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    if vision:
        base.model.vision_tower.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)


def disable_gradient_checkpointing(model: nn.Module) -> None:
    base = unwrap(model)
    for module in (base.model.language_model, base.model.vision_tower):
        if getattr(module, "supports_gradient_checkpointing", False):
            module.activation_checkpointing_disable()
