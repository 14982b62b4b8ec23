"""Build a `LlavaForConditionalGeneration` the way LLaVA starts: pretrained parts + a fresh projector.

`compose_llava` loads a CLIP-like vision tower (a `CLIPVisionModel`, or the vision half of a full
CLIP / SigLIP checkpoint) and a causal LM (Llama family, Qwen2, Mistral, ... via
`AutoModelForCausalLM`) separately, and joins them with a freshly initialised projector
(`mlp2x_gelu` as LLaVA-1.5, or `linear` as LLaVA-1). The pretrained modules are *moved* into the
Llava skeleton, not copied, so their weights are exactly the checkpoint's. The LLM's tokenizer gets
`<image>` (a special token) and a pad token, the embeddings grow to match, and an `LlavaProcessor`
is built whose `<image>` expansion equals the number of features the model produces.

`load_llava` opens an existing LLaVA checkpoint directory (model + processor) instead. Both return
a `Composed` (model, processor, tokenizer) ready for `train.labels.LabelEncoder`. Tokenizers without
a BOS (Qwen2) are fine: training ids start with whatever the tokenizer itself adds. With the
`chatml` chat template the generation config also stops on `<|im_end|>`, the token replies are
trained to end with, whatever the tokenizer's eos is.

`from_pretrained_parts` / `from_llava_checkpoint` are the same with the recipe's field names,
returning `(model, processor)`.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from PIL import Image
from tokenizers import AddedToken
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoProcessor,
    AutoTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedModel,
)
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector
from transformers.utils import logging as hf_logging

from vitune.data.images import CLIP_MEAN, CLIP_STD
from vitune.data.instance import IMAGE_TOKEN
from vitune.data.paths import check_model_source
from vitune.data.templates import CHAT_TEMPLATES, chat_template_name, turn_terminator

log = logging.getLogger(__name__)

ProjectorType = Literal["mlp2x_gelu", "linear"]
SelectStrategy = Literal["default", "full"]


@dataclass
class Composed:
    """A LLaVA model with its processor and tokenizer, plus notes on what was added or changed."""

    model: LlavaForConditionalGeneration
    processor: LlavaProcessor
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def image_token_id(self) -> int:
        return int(self.model.config.image_token_id)

    @property
    def image_seq_length(self) -> int:
        """`<image>` placeholders per image: what `LabelEncoder(tokenizer, image_seq_length)` needs."""
        return int(self.model.config.image_seq_length)


# --------------------------------------------------------------------------------------------------
# Parts


def _require_all_loaded(
    what: str, name: str, info: dict[str, Any], allowed_missing: set[str] = frozenset()
) -> None:
    # A checkpoint lacking some weights would load with those modules randomly initialised, which
    # trains "fine" and silently wastes the run; refuse instead.
    missing = [k for k in info.get("missing_keys", []) if k not in allowed_missing]
    if missing:
        raise ValueError(
            f"{what} checkpoint {name!r} lacks weights for {len(missing)} tensors, e.g. {missing[:3]}"
        )
    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        raise ValueError(
            f"{what} checkpoint {name!r} has tensors of the wrong shape, e.g. {list(mismatched)[:3]}"
        )


def load_vision_tower(
    name: str | os.PathLike, dtype: torch.dtype = torch.float32, local_files_only: bool = False
) -> PreTrainedModel:
    """The vision encoder of `name`: a vision-only checkpoint, or the vision half of a CLIP/SigLIP one."""
    config = AutoConfig.from_pretrained(name, local_files_only=local_files_only)
    # A full CLIP/SigLIP checkpoint holds a vision_config; AutoModel maps that config to the
    # vision-only class (CLIPVisionModel, SiglipVisionModel), which picks its weights out of the file.
    vconfig = getattr(config, "vision_config", None) or config
    for attr in ("image_size", "patch_size", "hidden_size"):
        if not isinstance(getattr(vconfig, attr, None), int):
            raise ValueError(f"vision checkpoint {str(name)!r} has no CLIP-like config (no integer {attr!r})")
    quiet = vconfig is not config
    previous = hf_logging.get_verbosity()
    if quiet:
        # The text tower's tensors are "unexpected" by design; transformers would print a table of them.
        hf_logging.set_verbosity_error()
    try:
        vision, info = AutoModel.from_pretrained(
            name, config=vconfig, dtype=dtype, local_files_only=local_files_only, output_loading_info=True
        )
    finally:
        hf_logging.set_verbosity(previous)
    if quiet:
        log.info("vision tower from %s; ignored %d other tensors", name, len(info.get("unexpected_keys", [])))
    _require_all_loaded("vision", str(name), info)
    return vision


def load_llm(name: str | os.PathLike, dtype: torch.dtype = torch.float32, local_files_only: bool = False):
    """A causal LM with its tokenizer."""
    llm, info = AutoModelForCausalLM.from_pretrained(
        name, dtype=dtype, local_files_only=local_files_only, output_loading_info=True
    )
    # A tied lm_head is legitimately absent from the file.
    tied = {"lm_head.weight"} if llm.config.get_text_config().tie_word_embeddings else set()
    _require_all_loaded("LLM", str(name), info, tied)
    tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only)
    return llm, tokenizer


def prepare_tokenizer(tokenizer: Any, chat_template: str | None = "vicuna_v1") -> list[str]:
    """Add `<image>` and a pad token where missing and set the chat template; returns added tokens.

    Pad follows LLaVA: the unk token when there is one (its embedding is never trained, and pad
    positions are masked anyway), else a new `<pad>`.
    """
    added: list[str] = []
    if IMAGE_TOKEN not in tokenizer.get_added_vocab():
        # Special + not normalized: `<image>` stays one token whatever surrounds it, and the
        # processor finds it by id.
        tok = AddedToken(IMAGE_TOKEN, special=True, normalized=False, lstrip=False, rstrip=False)
        tokenizer.add_special_tokens({"extra_special_tokens": [tok]}, replace_extra_special_tokens=False)
        added.append(IMAGE_TOKEN)
    if tokenizer.pad_token is None:
        if tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
            added.append("<pad>")
    if chat_template is not None:
        tokenizer.chat_template = CHAT_TEMPLATES.get(chat_template, chat_template)
    if tokenizer.eos_token is None:
        raise ValueError("the LLM tokenizer has no eos token; assistant replies could not be terminated")
    return added


def add_stop_token(generation_config: Any, tokenizer: Any) -> int | None:
    """Make generation stop on the chat template's turn terminator; returns its id if added.

    chatml replies end with `<|im_end|>`, which is not the eos of every chatml tokenizer (Qwen2.5
    base models end documents with `<|endoftext|>`); without this, generation would run past the
    end of the reply it was trained to close.
    """
    name = chat_template_name(tokenizer.chat_template)
    end = turn_terminator(name, tokenizer.eos_token) if name is not None else None
    ids = tokenizer.encode(end, add_special_tokens=False) if end is not None else []
    if len(ids) != 1:
        return None
    eos = generation_config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if ids[0] in eos:
        return None
    generation_config.eos_token_id = [*eos, ids[0]] if eos else ids[0]
    return ids[0]


def resize_embeddings(llm: PreTrainedModel, n_tokens: int) -> int:
    """Grow input/output embeddings to `n_tokens` rows; new rows are the mean of the old ones.

    LLaVA (`smart_tokenizer_and_embedding_resize`) does exactly this; transformers' own mean
    resizing samples around the mean instead, which would make composition non-deterministic.
    Returns how many rows were added (0 when the matrix is already large enough: many LLMs ship
    with spare rows).
    """
    old = llm.get_input_embeddings().weight.shape[0]
    if n_tokens <= old:
        return 0
    llm.resize_token_embeddings(n_tokens, mean_resizing=False)
    with torch.no_grad():
        for emb in (llm.get_input_embeddings(), llm.get_output_embeddings()):
            if emb is not None:
                w = emb.weight
                w[old:] = w[:old].float().mean(0).to(w.dtype)
    return n_tokens - old


def _find_embeddings(vision: nn.Module) -> nn.Module | None:
    for module in vision.modules():
        if isinstance(getattr(module, "position_embedding", None), nn.Embedding) and hasattr(
            module, "num_patches"
        ):
            return module
    return None


def resize_vision_positions(vision: PreTrainedModel, image_size: int) -> None:
    """Bicubic interpolation of a ViT's position embeddings to a new input size (in place).

    The patch grid is interpolated; a CLS position (CLIP) is kept as is. This is how CLIP towers
    are usually run at another resolution; everything else in the tower stays bit-identical.
    """
    cfg = vision.config
    emb = _find_embeddings(vision)
    if emb is None:
        raise NotImplementedError(f"cannot resize the position embeddings of {type(vision).__name__}")
    p = cfg.patch_size
    if image_size % p:
        raise ValueError(f"image_size {image_size} is not a multiple of the patch size {p}")
    old = emb.position_embedding.weight.detach()
    g_old, g_new = cfg.image_size // p, image_size // p
    n_extra = old.shape[0] - g_old * g_old
    if n_extra not in (0, 1):
        raise NotImplementedError(f"{old.shape[0]} positions for a {g_old}x{g_old} patch grid")
    d = old.shape[1]
    grid = old[n_extra:].float().reshape(1, g_old, g_old, d).permute(0, 3, 1, 2)
    grid = nn.functional.interpolate(grid, size=(g_new, g_new), mode="bicubic", align_corners=False)
    new = torch.cat([old[:n_extra].float(), grid.permute(0, 2, 3, 1).reshape(-1, d)]).to(old.dtype)
    table = nn.Embedding(new.shape[0], d, device=old.device, dtype=old.dtype)
    with torch.no_grad():
        table.weight.copy_(new)
    emb.position_embedding = table
    emb.num_patches = g_new * g_new
    emb.num_positions = new.shape[0]
    emb.image_size = image_size
    persistent = "position_ids" not in getattr(emb, "_non_persistent_buffers_set", set())
    emb.register_buffer(
        "position_ids", torch.arange(new.shape[0], device=old.device).expand((1, -1)), persistent=persistent
    )
    cfg.image_size = image_size


def _size_dict(size: Any) -> dict[str, int] | None:
    if size is None:
        return None
    keys = ("height", "width", "shortest_edge", "longest_edge")
    if isinstance(size, dict):
        return {k: int(v) for k, v in size.items() if k in keys and v is not None}
    return {k: int(getattr(size, k)) for k in keys if getattr(size, k, None) is not None}


def llava_image_processor(
    src: Any | None, image_size: int, pad_to_square: bool = True
) -> LlavaImageProcessorPil:
    """`src`'s preprocessing (resize, crop, rescale, mean/std) as a Llava image processor at `image_size`.

    Converted rather than used as is, because only the Llava image processor pads to a square with
    the mean colour (LLaVA-1.5's `image_aspect_ratio pad`, and what `ImageCache` does in training),
    so plain-transformers inference sees the pixels training saw. `src` None: CLIP's preprocessing.
    """
    kwargs: dict[str, Any] = {
        "size": {"shortest_edge": image_size},
        "crop_size": {"height": image_size, "width": image_size},
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
        "do_center_crop": True,
    }
    if src is not None:
        copied = ("do_resize", "resample", "do_rescale", "rescale_factor", "do_normalize", "do_convert_rgb")
        kwargs.update({a: getattr(src, a) for a in copied if getattr(src, a, None) is not None})
        for attr in ("image_mean", "image_std"):
            if getattr(src, attr, None) is not None:
                kwargs[attr] = list(getattr(src, attr))
        size = _size_dict(getattr(src, "size", None))
        if size and "shortest_edge" not in size and {"height", "width"} <= set(size):
            # Fixed-size resize (SigLIP): no crop needed.
            kwargs["size"] = {"height": image_size, "width": image_size}
            kwargs["do_center_crop"] = bool(getattr(src, "do_center_crop", False))
        else:
            kwargs["do_center_crop"] = bool(getattr(src, "do_center_crop", True))
    return LlavaImageProcessorPil(do_pad=pad_to_square, **kwargs)


def build_image_processor(
    vision_source: str | os.PathLike,
    image_size: int,
    pad_to_square: bool = True,
    local_files_only: bool = False,
) -> LlavaImageProcessorPil:
    """The vision checkpoint's image processor converted by `llava_image_processor`."""
    try:
        src = AutoImageProcessor.from_pretrained(vision_source, local_files_only=local_files_only)
    except (OSError, ValueError):
        log.warning("no image processor in %s; using CLIP preprocessing at %d px", vision_source, image_size)
        src = None
    return llava_image_processor(src, image_size, pad_to_square)


# --------------------------------------------------------------------------------------------------
# Token counts: the processor's expansion must equal the model's feature count


def _vision_extra_tokens(vision: nn.Module, image_size: int) -> int:
    """Tokens the tower emits beyond the patch grid (1 for CLIP's CLS, 0 for SigLIP)."""
    emb = _find_embeddings(vision)
    if emb is not None and hasattr(emb, "num_positions"):
        return int(emb.num_positions - emb.num_patches)
    # Unknown layout: ask the tower itself with one blank image.
    param = next(vision.parameters())
    with torch.no_grad():
        x = torch.zeros(1, 3, image_size, image_size, dtype=param.dtype, device=param.device)
        n = vision(pixel_values=x).last_hidden_state.shape[1]
    return int(n - (image_size // vision.config.patch_size) ** 2)


def model_image_tokens(model: LlavaForConditionalGeneration) -> int:
    """How many feature vectors the model scatters into the `<image>` positions of one image."""
    cfg = model.config
    vc = cfg.vision_config
    n = (vc.image_size // vc.patch_size) ** 2 + _vision_extra_tokens(model.model.vision_tower, vc.image_size)
    # "default" drops the first token (CLS) of each image's features; "full" keeps them all.
    return n - 1 if cfg.vision_feature_select_strategy == "default" else n


def processor_image_tokens(processor: LlavaProcessor) -> tuple[int, tuple[int, ...]]:
    """How many `<image>` ids the processor emits for one image, and the pixel tensor's shape."""
    out = processor(text=processor.image_token, images=Image.new("RGB", (40, 30)), return_tensors="pt")
    n = int((out["input_ids"] == processor.image_token_id).sum())
    return n, tuple(out["pixel_values"].shape)


def check_image_tokens(model: LlavaForConditionalGeneration, processor: LlavaProcessor) -> int:
    """Raise unless processor, config and model agree on the image token count; return it.

    A mismatch otherwise surfaces only at the first forward pass ("Image features and image tokens
    do not match"), or worse, in a serving stack that trusts the config.
    """
    want = model_image_tokens(model)
    got, shape = processor_image_tokens(processor)
    size = model.config.vision_config.image_size
    problems = []
    if got != want:
        problems.append(f"processor expands <image> to {got} tokens, the model produces {want} features")
    if shape[-2:] != (size, size):
        problems.append(
            f"processor makes {shape[-2]}x{shape[-1]} pixels, the vision tower takes {size}x{size}"
        )
    if model.config.image_seq_length != want:
        problems.append(f"config.image_seq_length is {model.config.image_seq_length}, expected {want}")
    if processor.image_token_id != model.config.image_token_id:
        problems.append(
            f"image token id: processor {processor.image_token_id}, model {model.config.image_token_id}"
        )
    if problems:
        raise ValueError("; ".join(problems))
    return want


def make_processor(
    tokenizer: Any,
    image_processor: Any,
    model: LlavaForConditionalGeneration,
) -> LlavaProcessor:
    """An `LlavaProcessor` whose expansion matches `model` (patch size, CLS, select strategy)."""
    vc = model.config.vision_config
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vc.patch_size,
        vision_feature_select_strategy=model.config.vision_feature_select_strategy,
        num_additional_image_tokens=_vision_extra_tokens(model.model.vision_tower, vc.image_size),
        chat_template=tokenizer.chat_template,
        image_token=IMAGE_TOKEN,
    )


# --------------------------------------------------------------------------------------------------
# Composition


def make_projector(config: LlavaConfig, kind: ProjectorType, seed: int) -> LlavaMultiModalProjector:
    """A fresh projector. PyTorch's default Linear init, as LLaVA's `build_vision_projector`.

    `linear` (LLaVA-1) is stored in the standard two-layer Llava projector with an identity
    activation and `linear_2` set to the identity, so the export stays a plain Llava checkpoint;
    `trainable.set_trainable_parts` keeps that `linear_2` frozen, so it trains exactly like one
    linear layer.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        proj = LlavaMultiModalProjector(config)
    if kind == "linear":
        with torch.no_grad():
            proj.linear_2.weight.copy_(torch.eye(proj.linear_2.weight.shape[0]))
            if proj.linear_2.bias is not None:
                proj.linear_2.bias.zero_()
    return proj


def llava_config(
    vision_config: Any,
    text_config: Any,
    image_token_index: int,
    *,
    extra_tokens: int = 1,
    projector: ProjectorType = "mlp2x_gelu",
    vision_feature_layer: int | list[int] = -2,
    vision_feature_select_strategy: SelectStrategy = "default",
) -> LlavaConfig:
    """The Llava config joining a vision and a text config (also what `train/plan.py` builds on the
    meta device). `extra_tokens`: what the tower emits beyond the patch grid (1: CLIP's CLS)."""
    grid = (vision_config.image_size // vision_config.patch_size) ** 2
    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_index,
        image_seq_length=grid + extra_tokens - (vision_feature_select_strategy == "default"),
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=vision_feature_select_strategy,
        projector_hidden_act="gelu" if projector == "mlp2x_gelu" else "linear",
        tie_word_embeddings=text_config.get_text_config().tie_word_embeddings,
    )


def compose_llava(
    vision_tower: str | os.PathLike,
    llm: str | os.PathLike,
    *,
    projector: ProjectorType = "mlp2x_gelu",
    vision_feature_layer: int | list[int] = -2,
    vision_feature_select_strategy: SelectStrategy = "default",
    image_size: int | None = None,
    chat_template: str | None = "vicuna_v1",
    pad_to_square: bool = True,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    local_files_only: bool = False,
) -> Composed:
    """Pretrained vision tower + pretrained LLM + fresh projector -> Llava model and processor.

    `vision_feature_layer` -2 and strategy "default" (penultimate CLIP layer, CLS dropped) are
    LLaVA-1.5's choice. `image_size` other than the checkpoint's interpolates the position
    embeddings. `chat_template` is a name in `CHAT_TEMPLATES`, a Jinja string, or None to keep the
    tokenizer's own.
    """
    for source, what in ((vision_tower, "vision tower"), (llm, "LLM")):
        if reason := check_model_source(source, what):
            raise FileNotFoundError(reason)
    if projector not in ("mlp2x_gelu", "linear"):
        raise ValueError(f"unknown projector {projector!r}; known: mlp2x_gelu, linear")
    if vision_feature_select_strategy not in ("default", "full"):
        raise ValueError(f"unknown vision_feature_select_strategy {vision_feature_select_strategy!r}")
    vision = load_vision_tower(vision_tower, dtype, local_files_only)
    lm, tokenizer = load_llm(llm, dtype, local_files_only)
    info: dict[str, Any] = {"vision_tower": str(vision_tower), "llm": str(llm), "projector": projector}

    native = vision.config.image_size
    if image_size is not None and image_size != native:
        resize_vision_positions(vision, image_size)
        info["image_size_from"] = native
    size = vision.config.image_size
    extra = _vision_extra_tokens(vision, size)
    if vision_feature_select_strategy == "default" and extra < 1:
        # Llava's "default" drops the first token; without a CLS that is a real image patch.
        raise ValueError(
            f"{type(vision).__name__} has no CLS token; use vision_feature_select_strategy='full'"
        )

    vocab_before = lm.get_input_embeddings().weight.shape[0]
    info["added_tokens"] = prepare_tokenizer(tokenizer, chat_template)
    info["embedding_rows_added"] = resize_embeddings(lm, len(tokenizer))
    info["vocab_before"] = vocab_before

    config = llava_config(
        vision.config,
        lm.config,
        tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        extra_tokens=extra,
        projector=projector,
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=vision_feature_select_strategy,
    )
    n_tokens = config.image_seq_length
    # The skeleton is built on the meta device (no memory, no init cost: a 7B LLM is not
    # allocated twice), then the pretrained modules are moved in, so nothing is copied or cast.
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.config.vision_config = vision.config
    model.config.text_config = lm.config
    model.model.vision_tower = vision
    model.model.language_model = lm.get_decoder()
    model.lm_head = lm.get_output_embeddings()
    if not isinstance(model.lm_head, nn.Linear) or model.lm_head.bias is not None:
        raise ValueError(f"{type(lm).__name__}'s output layer is not a bias-free Linear as Llava expects")
    model.model.multi_modal_projector = make_projector(config, projector, seed).to(dtype)
    if config.tie_word_embeddings:
        model.tie_weights()
    leftover = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.is_meta]
    if leftover:
        raise RuntimeError(f"composition left modules uninitialised: {leftover[:5]}")

    gen = copy.deepcopy(lm.generation_config)
    gen.pad_token_id = tokenizer.pad_token_id
    if gen.eos_token_id is None:
        gen.eos_token_id = tokenizer.eos_token_id
    if gen.bos_token_id is None:
        gen.bos_token_id = tokenizer.bos_token_id
    info["stop_token_added"] = add_stop_token(gen, tokenizer)
    model.generation_config = gen
    model.eval()

    image_processor = build_image_processor(vision_tower, size, pad_to_square, local_files_only)
    processor = make_processor(tokenizer, image_processor, model)
    info["image_seq_length"] = check_image_tokens(model, processor)
    info["prompt_tokenization_consistent"] = _prompt_consistent(tokenizer)
    log.info(
        "composed LLaVA: %s + %s, %s projector, %d image tokens, added %s",
        vision_tower,
        llm,
        projector,
        n_tokens,
        info["added_tokens"] or "nothing",
    )
    return Composed(model, processor, tokenizer, info)


def _prompt_consistent(tokenizer: Any) -> bool | None:
    """Are the ids of a tokenized generation prompt a prefix of the ids `LabelEncoder` trains on
    (the whole conversation tokenized at once)? None when the chat template is not one of ours."""
    name = chat_template_name(tokenizer.chat_template)
    if name is None:
        return None
    from vitune.train.labels import prompt_is_consistent

    turns = [("user", "What is in the image?"), ("assistant", "A red circle."), ("user", "And the square?")]
    ok = prompt_is_consistent(tokenizer, name, turns, True)
    if not ok:
        log.warning("the %s generation prompt tokenizes differently from the same text in training", name)
    return ok


def load_llava(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    chat_template: str | None = None,
    pad_to_square: bool = True,
    local_files_only: bool = False,
) -> Composed:
    """An existing LLaVA checkpoint (model + processor), with the same tokenizer guarantees.

    `chat_template` None keeps the checkpoint's template (or sets vicuna_v1 where it has none).
    `pad_to_square` converts an image processor that does not pad (llava-hf ships a plain
    CLIPImageProcessor) into one that does, since training pads every image.
    """
    if reason := check_model_source(path, "LLaVA checkpoint"):
        raise FileNotFoundError(reason)
    model = LlavaForConditionalGeneration.from_pretrained(
        path, dtype=dtype, local_files_only=local_files_only
    )
    processor = AutoProcessor.from_pretrained(path, local_files_only=local_files_only)
    tokenizer = processor.tokenizer
    if pad_to_square and not getattr(processor.image_processor, "do_pad", False):
        size = model.config.vision_config.image_size
        processor.image_processor = llava_image_processor(processor.image_processor, size, True)
    if chat_template is None and not (processor.chat_template or tokenizer.chat_template):
        chat_template = "vicuna_v1"
    added = prepare_tokenizer(tokenizer, chat_template)
    if IMAGE_TOKEN in added:
        raise ValueError(f"{path}: the checkpoint's tokenizer has no {IMAGE_TOKEN} token")
    info: dict[str, Any] = {"llava": str(path), "added_tokens": added}
    info["embedding_rows_added"] = resize_embeddings(model, len(tokenizer))
    if chat_template is not None or processor.chat_template is None:
        processor.chat_template = tokenizer.chat_template
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    info["stop_token_added"] = add_stop_token(model.generation_config, tokenizer)
    model.eval()
    info["image_seq_length"] = check_image_tokens(model, processor)
    info["prompt_tokenization_consistent"] = _prompt_consistent(tokenizer)
    return Composed(model, processor, tokenizer, info)


def from_pretrained_parts(
    vision_tower: str | os.PathLike,
    llm: str | os.PathLike,
    *,
    projector: ProjectorType = "mlp2x_gelu",
    image_size: int | None = None,
    feature_layer: int = -2,
    select_strategy: SelectStrategy = "default",
    seed: int = 0,
    **kwargs: Any,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """`compose_llava` under the recipe's field names (`model:` block), returning (model, processor)."""
    c = compose_llava(
        vision_tower,
        llm,
        projector=projector,
        vision_feature_layer=feature_layer,
        vision_feature_select_strategy=select_strategy,
        image_size=image_size,
        seed=seed,
        **kwargs,
    )
    return c.model, c.processor


def from_llava_checkpoint(
    path: str | os.PathLike, **kwargs: Any
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """`load_llava`, returning (model, processor)."""
    c = load_llava(path, **kwargs)
    return c.model, c.processor
