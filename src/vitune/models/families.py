"""The registry of model families: which backend answers a checkpoint, detected from its `config.json`.

A family maps transformers `model_type`s to a backend kind: `"llava"` (vitune's own exports and
llava-hf checkpoints, answered by `models.llava.Generator` with vitune's conversation templates) or
`"hf"` (any `AutoModelForImageTextToText` with its own processor and chat template, answered by
`models.hf.HFGenerator`). Add a family with `register_family(Family(...))`; a family whose processor
wants its images in another shape than one list per prompt sets `nested_images=False`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["llava", "hf"]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    kind: Kind = "hf"
    # Images passed to the processor as one list per prompt ([[img], [img]]) rather than flat.
    nested_images: bool = True


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add (or replace) a family; every one of its `model_types` then detects to it."""
    for t in family.model_types:
        _FAMILIES[t] = family
    return family


for _f in (
    Family("llava", ("llava",), kind="llava"),
    Family("qwen2_vl", ("qwen2_vl",)),
    Family("qwen2_5_vl", ("qwen2_5_vl",)),
    Family("qwen3_vl", ("qwen3_vl",)),
    Family("llava_next", ("llava_next",)),
    Family("llava_onevision", ("llava_onevision",)),
    Family("idefics3", ("idefics3",)),
    Family("smolvlm", ("smolvlm",)),
    Family("gemma3", ("gemma3",)),
):
    register_family(_f)


def family_names() -> list[str]:
    return sorted({f.name for f in _FAMILIES.values()})


def model_type(model_dir: str | os.PathLike) -> str:
    """The `model_type` of a saved checkpoint's config.json (a clear error when there is none)."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: not a saved model (no config.json)")
    try:
        kind = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, AttributeError) as e:
        raise ValueError(f"{path}: not a model config ({e})") from None
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{path}: no model_type")
    return kind


def detect_family(model_dir: str | os.PathLike) -> Family:
    """The registered family of the checkpoint in `model_dir`, from its config's `model_type`."""
    kind = model_type(model_dir)
    if kind not in _FAMILIES:
        raise ValueError(
            f"{model_dir}: model_type {kind!r} is not a registered model family "
            f"(known: {', '.join(sorted(_FAMILIES))}); add it with vitune.models.register_family"
        )
    return _FAMILIES[kind]
