"""What instruction tuning changes: projector swap, projector correlation, per-part weight change.

Vision-Flan (§ analysis) finds that tuning changes the LLM far more than the projector: putting the
pre-instruction (caption-aligned) projector back into the tuned model keeps over 90% of its scores,
and the pretrained and tuned projector parameters correlate above 0.99 (Pearson). Here:

- `swap_projector(tuned, pre, out)`: the tuned model with the pre-instruction projector, exported
  like any stage (so it is evaluated like any model);
- `pearson(a, b)`: the correlation of two flattened parameter sets (float64);
- `relative_change(pre, tuned)`: per part, ||tuned - pre|| / ||pre|| over the part's parameters, the
  parts being the vision tower, the projector, the LLM's embeddings, each LLM block, its final norm
  and head (names as either checkpoint layout spells them).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import torch

_LAYER = re.compile(r"\.layers\.(\d+)\.")


def part_of(name: str) -> str:
    """The part a parameter belongs to, from its name."""
    if "vision_tower" in name:
        return "vision"
    if "multi_modal_projector" in name:
        return "projector"
    if m := _LAYER.search(name):
        return f"llm.block{int(m.group(1)):02d}"
    if "embed_tokens" in name:
        return "llm.embed"
    if "lm_head" in name:
        return "llm.head"
    return "llm.norm" if "norm" in name else "other"


def load_state(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of an exported model folder (all safetensors shards)."""
    from safetensors.torch import load_file

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def pearson(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """Pearson correlation of the parameters shared by name, flattened in name order."""
    names = sorted(set(a) & set(b))
    if not names:
        raise ValueError("no parameters in common")
    x = torch.cat([a[n].double().flatten() for n in names])
    y = torch.cat([b[n].double().flatten() for n in names])
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm()))


def relative_change(pre: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """||tuned - pre|| / ||pre|| per part (parameters present in both with equal shapes)."""
    diff: dict[str, float] = defaultdict(float)
    base: dict[str, float] = defaultdict(float)
    for name in sorted(set(pre) & set(tuned)):
        if pre[name].shape != tuned[name].shape:
            continue
        part = part_of(name)
        p = pre[name].double()
        diff[part] += float(((tuned[name].double() - p) ** 2).sum())
        base[part] += float((p**2).sum())
    return {k: (diff[k] ** 0.5) / (base[k] ** 0.5) if base[k] else 0.0 for k in sorted(diff)}


def projector_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if part_of(k) == "projector"}


def swap_projector(tuned_dir: Path, pre_dir: Path, out_dir: Path) -> Path:
    """Export the tuned model with the pre-instruction model's projector (reused when present)."""
    from vitune.train.export import load_pretrained, save_pretrained

    if (out_dir / "config.json").exists():
        return out_dir
    model, processor = load_pretrained(tuned_dir)
    pre_model, _ = load_pretrained(pre_dir)
    model.model.multi_modal_projector.load_state_dict(pre_model.model.multi_modal_projector.state_dict())
    save_pretrained(model, processor, out_dir, extra={"lab": "projector swapped from " + str(pre_dir)})
    return out_dir
