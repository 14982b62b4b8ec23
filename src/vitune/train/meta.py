"""The model a training recipe will build, from configs alone, on the meta device.

`model_info(recipe.model)` reads the configs of the recipe's model (a preset; a vision tower + LLM
pair; a LLaVA checkpoint; or a run's existing `base/`) from local folders, the Hugging Face cache
(`local_files_only`) or vitune's copies of the `config.json` of the models the bundled recipes name,
and joins them with `compose.llava_config`, exactly as composition will; `meta_model` builds the
`LlavaForConditionalGeneration` on the meta device (shapes, no memory). Nothing is downloaded and
no weight is read: this is what `vitune train --plan` sizes a run with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vitune.data.instance import IMAGE_TOKEN
from vitune.train.recipe import ModelSpec, RecipeError

# The `config.json` shapes of the models the bundled recipes name, so a plan of those recipes needs
# no download; a local folder or the Hugging Face cache always wins over these.
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "openai/clip-vit-large-patch14-336": {
        "model_type": "clip_vision_model",
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 336,
        "patch_size": 14,
        "projection_dim": 768,
        "hidden_act": "quick_gelu",
    },
    **{
        f"lmsys/vicuna-{size}-v1.5": {
            "model_type": "llama",
            "hidden_size": h,
            "intermediate_size": i,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": heads,
            "vocab_size": 32000,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": False,
        }
        for size, h, i, layers, heads in (("7b", 4096, 11008, 32, 32), ("13b", 5120, 13824, 40, 40))
    },
}


@dataclass
class ModelInfo:
    config: Any  # a LlavaConfig
    tokenizer: Any | None
    source: str
    notes: list[str] = field(default_factory=list)


def read_config(name: str, what: str) -> tuple[Any, str]:
    """A model's config from a local folder, the Hugging Face cache or KNOWN_CONFIGS; never a download."""
    from transformers import AutoConfig

    if Path(name).exists():
        try:
            return AutoConfig.from_pretrained(name, local_files_only=True), f"{name}"
        except (OSError, ValueError) as e:
            raise RecipeError(f"model.{what}: {name}: no readable config.json ({e})") from None
    try:
        return AutoConfig.from_pretrained(name, local_files_only=True), f"{name} (Hugging Face cache)"
    except (OSError, ValueError):
        pass
    if name in KNOWN_CONFIGS:
        known = dict(KNOWN_CONFIGS[name])
        return AutoConfig.for_model(known.pop("model_type"), **known), f"{name} (vitune's copy of its config)"
    raise RecipeError(
        f"model.{what}: {name!r} is not a local folder, not in the Hugging Face cache, and not one of "
        f"the configs vitune knows ({sorted(KNOWN_CONFIGS)}); the plan downloads nothing: pass a "
        f"local folder holding its config.json"
    )


def _local_tokenizer(path: str | Path) -> Any | None:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError):
        return None


def model_info(spec: ModelSpec, run_dir: Path | None = None) -> ModelInfo:
    """The LlavaConfig the recipe's model will have, and a tokenizer when one exists locally."""
    base = None if run_dir is None else run_dir / "base" / "model"
    if base is not None and (base / "config.json").exists():
        config, src = read_config(str(base), "checkpoint")
        return ModelInfo(config, _local_tokenizer(base), f"{base} (this run's base model)")
    if spec.checkpoint is not None:
        config, src = read_config(spec.checkpoint, "checkpoint")
        return ModelInfo(
            config, _local_tokenizer(spec.checkpoint) if Path(spec.checkpoint).exists() else None, src
        )
    if spec.preset is not None:
        return _preset_info(spec)
    return _parts_info(spec)


def _preset_info(spec: ModelSpec) -> ModelInfo:
    from dataclasses import replace

    from vitune.train.model import get_preset, preset_config

    try:
        preset = get_preset(spec.preset or "")
    except ValueError as e:
        raise RecipeError(f"model.preset: {e}") from None
    if spec.feature_layer is not None or spec.image_size is not None:
        preset = replace(
            preset,
            feature_layer=preset.feature_layer if spec.feature_layer is None else spec.feature_layer,
            image_size=preset.image_size if spec.image_size is None else spec.image_size,
        )
    # The BPE tokenizer is trained to `vocab_size` when the run starts; ids only matter for shapes.
    config = preset_config(preset, spec.vocab_size, 3, 1, 2, 0)
    note = f"preset {spec.preset}: its tokenizer is trained at the run's start, tokens are estimated"
    return ModelInfo(config, None, f"preset {spec.preset}", [note])


def _parts_info(spec: ModelSpec) -> ModelInfo:
    from vitune.train.compose import llava_config, prepare_tokenizer

    assert spec.vision_tower is not None and spec.llm is not None
    vconf, vsrc = read_config(spec.vision_tower, "vision_tower")
    vconf = getattr(vconf, "vision_config", None) or vconf
    for attr in ("image_size", "patch_size", "hidden_size"):
        if not isinstance(getattr(vconf, attr, None), int):
            raise RecipeError(f"model.vision_tower: {vsrc} has no CLIP-like config (no integer {attr!r})")
    if spec.image_size is not None:
        vconf.image_size = spec.image_size
    tconf, tsrc = read_config(spec.llm, "llm")
    tokenizer = _local_tokenizer(spec.llm) if Path(spec.llm).exists() else None
    notes = []
    if tokenizer is not None:
        prepare_tokenizer(tokenizer, None)  # <image> and a pad token, as compose adds them
        vocab = max(tconf.vocab_size, len(tokenizer))
        image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    else:
        vocab, image_id = tconf.vocab_size + 1, tconf.vocab_size  # <image> is added to the vocabulary
        notes.append(f"no tokenizer in {tsrc}: vocabulary {vocab} assumed, tokens estimated")
    tconf.vocab_size = vocab
    # CLIP-like towers emit a CLS token beyond the patch grid, SigLIP none.
    extra = 0 if "siglip" in str(getattr(vconf, "model_type", "")) else 1
    if spec.select_strategy == "default" and extra < 1:
        raise RecipeError(
            "model.select_strategy: default drops a CLS token this tower does not have; use full"
        )
    config = llava_config(
        vconf,
        tconf,
        image_id,
        extra_tokens=extra,
        projector=spec.projector,
        vision_feature_layer=-2 if spec.feature_layer is None else spec.feature_layer,
        vision_feature_select_strategy=spec.select_strategy,
    )
    return ModelInfo(config, tokenizer, f"{vsrc} + {tsrc}", notes)


def meta_model(config: Any) -> Any:
    """The LlavaForConditionalGeneration of `config` on the meta device: shapes, no memory."""
    from transformers import LlavaForConditionalGeneration

    with torch.device("meta"):
        return LlavaForConditionalGeneration(config)
