"""Dense patch supervision of a vision tower from object annotations: a miniature CLIP pretraining.

LLaVA starts from a CLIP tower that already sees shapes and colours. A tower built from a tiny config
has no such prior, and learning it through the language-model loss alone is slow: one answer token
per sample is a thin signal for 64 patches. Object annotations (COCO/VG boxes with names and
attributes) give a label to every patch: each patch is labelled with the name and the attributes of
the topmost annotated object whose box covers the patch centre (background otherwise). Two linear
heads on the patch features the projector will read (the model's `vision_feature_layer`) are trained
with cross-entropy (name) and binary cross-entropy (attributes); the heads are thrown away after.

The patch grid is computed on the image exactly as training sees it: padded to a square (offset
`(long - short) // 2`, as `expand2square`) and resized to the tower's input size.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, Field

from vitune.data.records import ImageRecord
from vitune.train.loop import lr_factor, warn_time_budget

ProgressFn = Callable[[dict[str, Any]], None]


class DenseConfig(BaseModel):
    """Hyper-parameters of the dense vision pretraining stage."""

    lr: float = 2e-3
    batch_size: int = 32
    max_steps: int | None = None
    time_budget_s: float | None = None
    epochs: float = 1.0
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1
    # Attributes seen fewer times are not learnable from a handful of patches (e.g. sign texts).
    min_attribute_count: int = Field(default=20, ge=1)
    attribute_weight: float = 5.0
    seed: int = 0
    log_every: int = Field(default=25, ge=1)


@dataclass(frozen=True)
class DenseVocab:
    """Label vocabularies: object names (0 is background) and multi-hot attributes."""

    names: tuple[str, ...]
    attributes: tuple[str, ...]

    @classmethod
    def from_records(cls, records: Sequence[ImageRecord], min_attribute_count: int = 20) -> DenseVocab:
        names = sorted({o.name for r in records for o in r.objects})
        counts = Counter(a for r in records for o in r.objects for a in o.attributes)
        attrs = sorted(a for a, c in counts.items() if c >= min_attribute_count)
        return cls(tuple(names), tuple(attrs))


def patch_targets(
    record: ImageRecord, vocab: DenseVocab, image_size: int, patch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(name ids `[G*G]`, attribute multi-hot `[G*G, A]`) for the square-padded, resized image."""
    g = image_size // patch_size
    side = max(record.width, record.height)
    ox, oy = (side - record.width) // 2, (side - record.height) // 2
    scale = image_size / side
    name_idx = {n: i + 1 for i, n in enumerate(vocab.names)}
    attr_idx = {a: i for i, a in enumerate(vocab.attributes)}
    names = torch.zeros(g * g, dtype=torch.long)
    attrs = torch.zeros(g * g, len(vocab.attributes))
    centres = (torch.arange(g, dtype=torch.float32) + 0.5) * patch_size
    # Annotation order is drawing order, so a later object covers an earlier one.
    for o in record.objects:
        if o.name not in name_idx:
            continue
        x0, y0 = (o.box.x + ox) * scale, (o.box.y + oy) * scale
        x1, y1 = x0 + o.box.w * scale, y0 + o.box.h * scale
        cols = ((centres >= x0) & (centres <= x1)).nonzero().flatten()
        rows = ((centres >= y0) & (centres <= y1)).nonzero().flatten()
        if len(cols) == 0 or len(rows) == 0:
            continue
        cells = (rows[:, None] * g + cols[None, :]).flatten()
        names[cells] = name_idx[o.name]
        hot = torch.zeros(len(vocab.attributes))
        for a in o.attributes:
            if a in attr_idx:
                hot[attr_idx[a]] = 1.0
        attrs[cells] = hot
    return names, attrs


class DenseHeads(torch.nn.Module):
    def __init__(self, hidden: int, vocab: DenseVocab) -> None:
        super().__init__()
        self.name = torch.nn.Linear(hidden, len(vocab.names) + 1)
        self.attr = torch.nn.Linear(hidden, max(1, len(vocab.attributes)))


def patch_features(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """The patch features the projector reads: `vision_feature_layer`, CLS dropped."""
    tower = model.model.vision_tower
    hidden = tower(pixel_values, output_hidden_states=True).hidden_states[model.config.vision_feature_layer]
    return hidden[:, 1:] if model.config.vision_feature_select_strategy == "default" else hidden


def pretrain_vision(
    model: Any,
    records: Sequence[ImageRecord],
    pixels: Callable[[str], torch.Tensor],
    cfg: DenseConfig,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Train `model`'s vision tower in place on dense patch labels from `records`' objects.

    `pixels(file_name)` returns the preprocessed image tensor (the same preprocessing as training).
    Records without objects carry no signal and are skipped (counted in the summary).
    """
    vc = model.config.vision_config
    usable = [r for r in records if r.objects and r.width > 0 and r.height > 0]
    if not usable:
        raise ValueError("dense vision pretraining: no record has annotated objects")
    vocab = DenseVocab.from_records(usable, cfg.min_attribute_count)
    targets = [patch_targets(r, vocab, vc.image_size, vc.patch_size) for r in usable]
    heads = DenseHeads(vc.hidden_size, vocab)
    tower = model.model.vision_tower
    was_training = [p.requires_grad for p in tower.parameters()]
    for p in tower.parameters():
        p.requires_grad_(True)
    params = [*tower.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(cfg.seed)
    bs = min(cfg.batch_size, len(usable))
    per_epoch = max(1, len(usable) // bs)
    total = cfg.max_steps or max(1, math.ceil(per_epoch * cfg.epochs))
    tower.train()
    t0 = time.perf_counter()
    step, first, last, over_budget = 0, None, None, False
    order: list[int] = []
    while step < total:
        frac = step / total
        over_budget = warn_time_budget(t0, cfg.time_budget_s, step, over_budget)
        if len(order) < bs:
            order = torch.randperm(len(usable), generator=gen).tolist()
        idx, order = order[:bs], order[bs:]
        x = torch.stack([pixels(usable[i].file_name) for i in idx])
        names = torch.stack([targets[i][0] for i in idx])
        attrs = torch.stack([targets[i][1] for i in idx])
        feats = patch_features(model, x)
        loss = torch.nn.functional.cross_entropy(heads.name(feats).flatten(0, 1), names.flatten())
        if vocab.attributes:
            bce = torch.nn.functional.binary_cross_entropy_with_logits(heads.attr(feats), attrs)
            loss = loss + cfg.attribute_weight * bce
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(frac, cfg.warmup_ratio, cfg.min_lr_ratio)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        last = float(loss.detach())
        first = last if first is None else first
        if progress is not None and (step % cfg.log_every == 0 or step == 1):
            progress(
                {"step": step, "total_steps": total, "loss": last, "elapsed_s": time.perf_counter() - t0}
            )
    for p, flag in zip(tower.parameters(), was_training, strict=True):
        p.requires_grad_(flag)
    tower.eval()
    with torch.no_grad():
        acc = _accuracy(model, heads, usable[: min(256, len(usable))], targets, pixels)
    return {
        "steps": step,
        "over_time_budget": over_budget,
        "first_loss": first,
        "last_loss": last,
        "train_seconds": time.perf_counter() - t0,
        "records": len(usable),
        "skipped_records": len(records) - len(usable),
        "names": list(vocab.names),
        "attributes": list(vocab.attributes),
        "train_patch_accuracy": acc,
    }


def _accuracy(model: Any, heads: DenseHeads, recs: Sequence[ImageRecord], targets: list, pixels) -> dict:
    """Name accuracy on object patches and background accuracy, on (a prefix of) the training set."""
    x = torch.stack([pixels(r.file_name) for r in recs])
    pred = heads.name(patch_features(model, x)).argmax(-1)
    gold = torch.stack([targets[i][0] for i in range(len(recs))])
    fg = gold > 0
    return {
        "object_patches": float((pred[fg] == gold[fg]).float().mean()) if fg.any() else None,
        "background_patches": float((pred[~fg] == 0).float().mean()) if (~fg).any() else None,
    }
