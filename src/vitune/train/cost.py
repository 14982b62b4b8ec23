"""The arithmetic of a training plan: FLOPs per token and step, and memory per GPU.

Pure functions of shapes (`PartShape`, read from a LLaVA model built on the meta device by
`shapes_of`) and of how each part trains; `train/plan.py` applies them to a recipe's stages and
`benchmarks/gpu_train.py` uses the same FLOPs for MFU. The formulas:

FLOPs per token of a part with N matmul parameters, L layers, width h, attention context T (PaLM's
convention, Chowdhery et al. 2022, appendix B): forward 2N + 4LhT; backward through the part
(when it trains or anything before it does) 2N + 8LhT; weight gradients 2N when the part trains
fully, and 6 N_lora for LoRA adapters. So a fully trained part costs 6N + 12LhT, a frozen LLM under
a trained projector 4N + 12LhT, a frozen tower before nothing trainable 2N + 4LhT. Embedding
lookups are not counted, `lm_head` is; T is the mean sample length (packed samples attend only to
themselves) and the tower's own token count per image. Gradient checkpointing recomputes one
forward of the checkpointed parts: reported apart (`recompute`), MFU uses the model FLOPs.

Memory per GPU (P processes, N parameters, Nt trainable, B = 2 or 4 bytes of the compute dtype):
- 1 GPU / DDP / FSDP keep vitune's fp32 master weights under autocast: weights 4N, gradients 4Nt,
  AdamW moments 8Nt; DDP adds its gradient buckets (4Nt); FSDP divides the three by P and adds what
  it gathers in the compute dtype: the largest wrapped layer twice (prefetch) and the unwrapped
  root (embeddings, lm_head, norms, projector, the tower's embeddings).
- DeepSpeed casts the model to bf16: ZeRO-2 keeps 2N replicated and partitions gradients 2Nt/P and
  optimizer states 12Nt/P (fp32 master + moments); ZeRO-3 partitions the weights too, 2N/P, and
  gathers layers like FSDP (ZeRO paper, Rajbhandari et al. 2020). Offloaded states cost no GPU memory.
- Activations of one micro-batch per token and layer, in the compute dtype: a trained Llama-style
  layer keeps 7h + 2kv + 4I values (norm inputs and outputs, q/k/v, the attention output, the MLP's
  gate, up and product), a frozen one that gradients pass through 4h + 2kv + 3I (a frozen matmul
  keeps no input), a trained CLIP layer 8h + 3I; a frozen part before nothing trainable keeps
  nothing. With gradient checkpointing a layer keeps its input (h) and one layer at a time is
  recomputed. The logits add T x V x (B + 8) bytes (the fp32 copy the loss takes, and its gradient).
These are estimates (about +-25%): enough to tell 40 GB from 120 GB before renting GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

PARTS = ("vision", "projector", "llm")


@dataclass(frozen=True)
class PartShape:
    """What the arithmetic needs of one part of a LLaVA model."""

    params: int  # every parameter of the part
    matmul_params: int  # those multiplied per token (no embedding lookups; lm_head included)
    layers: int = 0
    hidden: int = 0
    intermediate: int = 0
    kv_dim: int = 0
    largest_layer: int = 0  # parameters of its largest repeated layer (an FSDP / ZeRO-3 unit)
    layer_params: int = 0  # parameters inside its repeated layers (the rest is FSDP's root)
    vocab: int = 0  # output rows (the LLM's lm_head)


def _layers(module: nn.Module) -> list[nn.Module]:
    lists = [
        m for name, m in module.named_modules() if isinstance(m, nn.ModuleList) and name.endswith("layers")
    ]
    return [layer for lst in lists for layer in lst]


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def shapes_of(model: Any) -> dict[str, PartShape]:
    """Per-part shapes of a (meta) `LlavaForConditionalGeneration`."""
    cfg = model.config
    vc, tc = cfg.vision_config, cfg.get_text_config()
    tower, proj = model.model.vision_tower, model.model.multi_modal_projector
    lm = model.model.language_model
    out: dict[str, PartShape] = {}
    lookups = sum(m.weight.numel() for m in tower.modules() if isinstance(m, nn.Embedding))
    vl = _layers(tower)
    out["vision"] = PartShape(
        _count(tower),
        _count(tower) - lookups,
        vc.num_hidden_layers,
        vc.hidden_size,
        vc.intermediate_size,
        vc.hidden_size,
        max((_count(m) for m in vl), default=0),
        sum(_count(m) for m in vl),
    )
    out["projector"] = PartShape(_count(proj), _count(proj))
    embed, head = lm.get_input_embeddings().weight, model.lm_head.weight
    llm_params = _count(lm) + (0 if head is embed else head.numel())
    heads = tc.num_attention_heads
    head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // heads
    kv = (getattr(tc, "num_key_value_heads", None) or heads) * head_dim
    tl = _layers(lm)
    out["llm"] = PartShape(
        llm_params,
        llm_params - embed.numel() + (head.numel() if head is embed else 0),
        tc.num_hidden_layers,
        tc.hidden_size,
        tc.intermediate_size,
        kv,
        max((_count(m) for m in tl), default=0),
        sum(_count(m) for m in tl),
        head.shape[0],
    )
    return out


# --------------------------------------------------------------------------------------------------
# FLOPs


def upstream_trains(modes: dict[str, str]) -> dict[str, bool]:
    """Whether gradients must flow back through each part: something before it trains."""
    out, before = {}, False
    for part in PARTS:
        out[part] = before
        before = before or modes[part] != "frozen"
    return out


def part_flops(
    shape: PartShape, mode: str, upstream: bool, context: float, lora_params: int = 0
) -> tuple[float, float]:
    """(training FLOPs, forward FLOPs) per token of one part; see the module docstring."""
    attention = shape.layers * shape.hidden * context
    forward = 2 * shape.matmul_params + 4 * attention
    total = forward
    if mode != "frozen" or upstream:
        total += 2 * shape.matmul_params + 8 * attention
    if mode == "full":
        total += 2 * shape.matmul_params
    elif mode == "lora":
        total += 6 * lora_params
    return total, forward


@dataclass(frozen=True)
class StepLoad:
    """The work of one optimizer step (or one micro-batch)."""

    tokens: float  # LLM tokens, image placeholders included
    images: float
    mean_length: float  # tokens per sample: the LLM's attention context
    vision_tokens: int  # tokens the tower runs per image (patches + CLS)
    image_features: int  # features the projector maps per image


def step_flops(
    shapes: dict[str, PartShape],
    modes: dict[str, str],
    load: StepLoad,
    *,
    lora: dict[str, int] | None = None,
    checkpointing: dict[str, bool] | None = None,
    dense: bool = False,
) -> dict[str, float]:
    """{"model": FLOPs, "recompute": extra FLOPs of gradient checkpointing, and per part}.

    `dense`: a dense_vision stage runs the tower alone (no projector, no LLM)."""
    up = upstream_trains(modes)
    lora, checkpointing = lora or {}, checkpointing or {}
    per_item = {
        "vision": load.images * load.vision_tokens,
        "projector": load.images * load.image_features,
        "llm": load.tokens,
    }
    context = {"vision": load.vision_tokens, "projector": 0, "llm": load.mean_length}
    out: dict[str, float] = {"model": 0.0, "recompute": 0.0}
    for part in ("vision",) if dense else PARTS:
        train, fwd = part_flops(shapes[part], modes[part], up[part], context[part], lora.get(part, 0))
        out[part] = train * per_item[part]
        out["model"] += out[part]
        if checkpointing.get(part):
            out["recompute"] += fwd * per_item[part]
    return out


# --------------------------------------------------------------------------------------------------
# Memory


def state_bytes(
    n_total: int,
    n_trainable: int,
    strategy: str,
    processes: int,
    *,
    half: bool,
    offload_optimizer: bool = False,
    offload_params: bool = False,
) -> dict[str, float]:
    """Weights, gradients and optimizer states per GPU (bytes); see the module docstring."""
    p = processes if strategy in ("fsdp", "zero2", "zero3") else 1
    if strategy in ("zero2", "zero3"):
        w = 2 if half else 4
        weights = w * n_total / (p if strategy == "zero3" else 1)
        grads = w * n_trainable / p
        optimizer = (12 if half else 8) * n_trainable / p
    else:
        weights = 4 * n_total / p
        grads = 4 * n_trainable / p * (2 if strategy == "ddp" else 1)  # DDP: + its gradient buckets
        optimizer = 8 * n_trainable / p
    return {
        "weights": 0.0 if offload_params else weights,
        "gradients": grads,
        "optimizer": 0.0 if offload_optimizer else optimizer,
    }


def gathered_bytes(shapes: dict[str, PartShape], strategy: str, half: bool) -> float:
    """What FSDP / ZeRO-3 hold unsharded during a step: the largest layer twice (prefetch) and the
    root module's parameters (everything outside the repeated layers), in the compute dtype."""
    if strategy not in ("fsdp", "zero3"):
        return 0.0
    b = 2 if half else 4
    largest = max(s.largest_layer for s in shapes.values())
    root = sum(s.params - s.layer_params for s in shapes.values())
    return b * (2 * largest + root)


def activation_bytes(
    shapes: dict[str, PartShape],
    modes: dict[str, str],
    micro: StepLoad,
    *,
    half: bool,
    checkpointing: dict[str, bool] | None = None,
    dense: bool = False,
) -> float:
    """Activations kept for the backward pass of one micro-batch (bytes); see the module docstring."""
    b = 2 if half else 4
    up = upstream_trains(modes)
    checkpointing = checkpointing or {}
    total = 0.0
    for part in ("vision",) if dense else PARTS:
        s, mode = shapes[part], modes[part]
        if mode == "frozen" and not up[part]:
            continue  # nothing before it trains: no gradient passes through, nothing is kept
        if part == "projector":
            total += (
                b * micro.images * micro.image_features * (shapes["vision"].hidden + 2 * shapes["llm"].hidden)
            )
            continue
        tokens = micro.tokens if part == "llm" else micro.images * micro.vision_tokens
        if part == "llm":
            per_layer = 7 * s.hidden + 2 * s.kv_dim + 4 * s.intermediate
            if mode == "frozen":
                per_layer = 4 * s.hidden + 2 * s.kv_dim + 3 * s.intermediate
        else:
            per_layer = 8 * s.hidden + 3 * s.intermediate
        if checkpointing.get(part):
            total += b * tokens * (s.layers * s.hidden + per_layer)
        else:
            total += b * tokens * s.layers * per_layer
    if not dense:
        total += micro.tokens * shapes["llm"].vocab * (b + 8)
    return total
