"""LoRA adapters (peft) on a LLaVA model's LLM and optionally its vision tower, and merging them back.

LLaVA's LoRA recipe: adapters on the LLM's attention and MLP projections, never on the projector,
which trains fully (`trainable.set_trainable_parts` sets that up). `merge_lora` folds the adapters
into the base weights and drops peft, so the export is a plain `LlavaForConditionalGeneration` with
the original parameter names: transformers, vLLM and lmms-eval load it without peft.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from transformers import LlavaForConditionalGeneration

from vitune.train.trainable import PARTS, is_lora_param, lora_parts, set_trainable_parts, unwrap

LLM_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# CLIP / SigLIP encoder layers: attention projections and the two MLP layers.
VISION_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


class LoraSettings(BaseModel):
    """LoRA hyper-parameters. Defaults are LLaVA-1.5's LoRA run (r 128, alpha 256, dropout 0.05)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=128, ge=1)
    alpha: float = Field(default=256, gt=0)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    # Module names (the last component of the dotted path) that get adapters, per part.
    llm_targets: list[str] = Field(default_factory=lambda: list(LLM_TARGETS))
    vision_targets: list[str] = Field(default_factory=lambda: list(VISION_TARGETS))

    @classmethod
    def coerce(cls, spec: Any) -> LoraSettings:
        """From a `LoraSettings`, a dict, or any object with r / alpha / dropout and either
        `llm_targets` + `vision_targets` or one `target_modules` list (taken as the LLM's)."""
        if isinstance(spec, cls):
            return spec
        get = spec.get if isinstance(spec, dict) else lambda k, d=None: getattr(spec, k, d)
        fields: dict[str, Any] = {k: get(k) for k in ("r", "alpha", "dropout") if get(k) is not None}
        llm = get("llm_targets") or get("target_modules")
        if llm is not None:
            fields["llm_targets"] = list(llm)
        if get("vision_targets") is not None:
            fields["vision_targets"] = list(get("vision_targets"))
        return cls(**fields)


def target_pattern(parts: Sequence[str], settings: LoraSettings) -> str:
    """The regex given to peft as `target_modules`.

    peft full-matches a string `target_modules` against every module's dotted name, so the part
    prefix in the pattern keeps adapters out of the projector (and out of the tower unless asked),
    even where module names repeat across parts (`q_proj` exists in CLIP and Llama alike).
    """
    alts = []
    for part in parts:
        names = settings.llm_targets if part == "llm" else settings.vision_targets
        if not names:
            raise ValueError(f"LoRA on {part!r} needs at least one target module name")
        prefix = r"model\.language_model" if part == "llm" else r"model\.vision_tower"
        alts.append(rf"{prefix}\..*\.(?:{'|'.join(map(re.escape, names))})")
    return "|".join(f"(?:{a})" for a in alts)


def apply_lora(model: nn.Module, spec: Any, parts: Sequence[str] | None = None) -> PeftModel:
    """Wrap `model` with LoRA adapters on `parts` ("llm" and/or "vision"; default: the LLM).

    `spec` is a `LoraSettings` (or anything `LoraSettings.coerce` takes). It may also be a training
    stage with `.train` (modes per part) and `.lora` (settings): then the parts in "lora" mode get
    adapters and all three parts' `requires_grad` are set from the modes, so the projector keeps
    training fully.
    """
    modes = None
    if hasattr(spec, "train") and hasattr(spec, "lora"):
        train = spec.train
        modes = dict(train) if isinstance(train, dict) else {p: getattr(train, p) for p in PARTS}
        parts = [p for p in PARTS if modes[p] == "lora"]
        spec = spec.lora if spec.lora is not None else LoraSettings()
    settings = LoraSettings.coerce(spec)
    parts = list(parts) if parts is not None else ["llm"]
    bad = set(parts) - {"llm", "vision"}
    if bad or not parts:
        raise ValueError(f"LoRA applies to 'llm' and/or 'vision', not {sorted(bad) or 'nothing'}")
    if lora_parts(model):
        raise ValueError("the model already carries LoRA adapters; merge_lora() first")
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=target_pattern(parts, settings),
        bias="none",
    )
    peft_model = get_peft_model(unwrap(model), config)
    missing = set(parts) - lora_parts(peft_model)
    if missing:
        raise ValueError(f"no LoRA target module matched in {sorted(missing)}; check the target names")
    if modes is not None:
        set_trainable_parts(peft_model, modes)
    return peft_model


def merge_lora(model: nn.Module) -> LlavaForConditionalGeneration:
    """Fold LoRA adapters into the base weights and drop peft: a plain Llava model.

    The result has exactly the original parameter names, so `save_pretrained` writes a checkpoint
    that plain transformers (and vLLM) load. A model without adapters is returned as is.
    """
    merged = model.merge_and_unload(safe_merge=True) if isinstance(model, PeftModel) else model
    leftover = [n for n, _ in merged.named_parameters() if is_lora_param(n)]
    if leftover:
        raise ValueError(f"LoRA parameters remain after merging, e.g. {leftover[:3]}")
    return merged  # type: ignore[return-value]
