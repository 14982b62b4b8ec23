"""Tiny LLaVA models built from configs (no download) and the matching `LlavaProcessor`.

A preset names a CLIP vision config and a Llama text config small enough to train from scratch on
two CPU cores in minutes. They are combined exactly as LLaVA-1.5 / transformers' Llava does it:
CLIP layer -2 patch features without CLS (`vision_feature_select_strategy="default"`), a 2-layer GELU
MLP projector, and `image_seq_length = (image_size / patch_size) ** 2` placeholder tokens per image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

from vitune.data.images import CLIP_MEAN, CLIP_STD
from vitune.train.tokenizer import image_token_id
from vitune.train.trainable import set_trainable_parts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    image_size: int
    patch_size: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    text_hidden: int
    text_layers: int
    text_heads: int
    max_positions: int = 512
    # LLaVA reads CLIP's penultimate layer; a tower trained from scratch can use its last one.
    feature_layer: int = -2

    @property
    def image_seq_length(self) -> int:
        return (self.image_size // self.patch_size) ** 2


# `tiny` is sized by the CPU budget of the quickstart (train ~4 min on 2 cores): 64 image tokens and
# ~100-token sequences keep a step of 16 samples well under a second. `micro` is for unit tests.
PRESETS: dict[str, Preset] = {
    "micro": Preset(32, 8, 32, 2, 2, 64, 2, 2, max_positions=512),
    "tiny": Preset(64, 8, 128, 3, 4, 192, 3, 4),
    # 16 image tokens: ~1.8x the samples/s of `tiny` on CPU, same accuracy in our 4-minute runs.
    "tiny16": Preset(64, 16, 128, 3, 4, 192, 3, 4),
    "small": Preset(64, 8, 192, 4, 4, 256, 4, 4, max_positions=1024),
    # 128 px with 16 px patches: the same 64 tokens as `tiny`, 4x the pixels per object.
    "tiny128": Preset(128, 16, 128, 3, 4, 192, 3, 4, feature_layer=-1),
    "tiny128b": Preset(128, 16, 128, 2, 4, 192, 2, 4, feature_layer=-1),
    "tiny128p32": Preset(128, 32, 128, 3, 4, 192, 3, 4, feature_layer=-1),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}") from None


def build_config(preset: str | Preset, tokenizer: PreTrainedTokenizerFast) -> LlavaConfig:
    return preset_config(
        preset,
        len(tokenizer),
        image_token_id(tokenizer),
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )


def preset_config(
    preset: str | Preset, vocab_size: int, image_token: int, bos: int | None, eos: int | None, pad: int | None
) -> LlavaConfig:
    """`build_config` from the tokenizer's numbers only (the plan sizes a preset before its
    tokenizer is trained)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    vision = CLIPVisionConfig(
        image_size=p.image_size,
        patch_size=p.patch_size,
        hidden_size=p.vision_hidden,
        intermediate_size=4 * p.vision_hidden,
        num_hidden_layers=p.vision_layers,
        num_attention_heads=p.vision_heads,
        projection_dim=p.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=p.text_hidden,
        intermediate_size=int(8 * p.text_hidden / 3 + 63) // 64 * 64,  # LLaMA's 8/3 ratio, rounded
        num_hidden_layers=p.text_layers,
        num_attention_heads=p.text_heads,
        num_key_value_heads=p.text_heads,
        max_position_embeddings=p.max_positions,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=False,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token,
        image_seq_length=p.image_seq_length,
        vision_feature_layer=p.feature_layer,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )


def build_model(
    preset: str | Preset, tokenizer: PreTrainedTokenizerFast, seed: int = 0
) -> LlavaForConditionalGeneration:
    """A randomly initialised Llava; the same seed gives the same weights."""
    config = build_config(preset, tokenizer)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    gc = model.generation_config
    gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    gc.do_sample = False
    return model


def build_image_processor(
    image_size: int,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> LlavaImageProcessorPil:
    """CLIP preprocessing at `image_size`, with LLaVA's pad-to-square (mean colour) built in.

    `do_pad=True` pads exactly like `vitune.data.images.expand2square` (offset `(long - short) // 2`,
    colour `int(mean * 255)`), so plain transformers inference sees the same pixels as training.
    """
    return LlavaImageProcessorPil(
        do_pad=True,
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(mean),
        image_std=list(std),
    )


def build_processor(
    tokenizer: PreTrainedTokenizerFast,
    image_size: int,
    patch_size: int = 8,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> LlavaProcessor:
    """A `LlavaProcessor` that expands each `<image>` into `(image_size / patch_size) ** 2` tokens."""
    return LlavaProcessor(
        image_processor=build_image_processor(image_size, mean, std),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        # CLIP prepends a CLS token; "default" drops it again, so the count is exactly the patches.
        num_additional_image_tokens=1,
        chat_template=tokenizer.chat_template,
        image_token="<image>",
    )


def processor_for(
    model: LlavaForConditionalGeneration,
    tokenizer: PreTrainedTokenizerFast,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> LlavaProcessor:
    vc = model.config.vision_config
    return build_processor(tokenizer, vc.image_size, vc.patch_size, mean, std)


def set_trainable(
    model: LlavaForConditionalGeneration, projector: bool, llm: bool, vision: bool
) -> dict[str, int]:
    """Freeze/unfreeze the three parts (full or frozen) and return the counts.

    LLaVA always freezes its *pretrained* CLIP tower; a tiny model trained from scratch has a random
    tower that must learn, hence the switch. The per-mode API (with LoRA) is
    `trainable.set_trainable_parts`; this keeps the boolean form and its count keys.
    """
    modes = {
        name: "full" if flag else "frozen"
        for name, flag in (("vision", vision), ("projector", projector), ("llm", llm))
    }
    model, _ = set_trainable_parts(model, modes)
    parts = {
        "vision_tower": (model.model.vision_tower, vision),
        "multi_modal_projector": (model.model.multi_modal_projector, projector),
        "language_model": (model.model.language_model, llm),
        "lm_head": (model.lm_head, llm),
    }
    counts: dict[str, int] = {}
    for name, (module, flag) in parts.items():
        counts[f"{name}.{'trainable' if flag else 'frozen'}"] = sum(p.numel() for p in module.parameters())
    counts["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
