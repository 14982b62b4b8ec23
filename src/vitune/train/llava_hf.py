"""The llava-hf checkpoint layout: what every LLaVA loader reads (transformers 4.x and 5.x, vLLM).

transformers 5.x keeps weights at run time under `model.vision_tower.*`, `model.language_model.*`,
`lm_head.*`, `model.multi_modal_projector.*` and maps older names on load through its conversion
mapping (`transformers.conversion_mapping`: the `llava` renamings, and `PrefixChange(
prefix_to_remove="vision_model")` for CLIP / SigLIP towers). Its `save_pretrained` reverses only part
of that (the tower loses its `vision_model.` level), and its processor files name classes 4.x lacks
(`TokenizersBackend`) and nest the image processor inside `processor_config.json`.

This module writes the layout of the llava-hf checkpoints on the Hub instead, which 4.x reads as is
and 5.x maps back to the same run-time model:

- weights: `vision_tower.vision_model.*`, `language_model.model.*`, `language_model.lm_head.*`,
  `multi_modal_projector.*` (`legacy_state_dict`);
- `config.json`: 5.x's fields plus the 4.x spellings (`rope_theta` / `rope_scaling` beside
  `rope_parameters`, `torch_dtype` beside `dtype`) (`legacy_config`);
- processor files: `preprocessor_config.json` (the image processor), `processor_config.json` (the
  processor's own settings only), `tokenizer_config.json` with `PreTrainedTokenizerFast` (the
  tokenizer is `tokenizer.json`, exactly) and the chat template, which is also written as
  `chat_template.jinja` (4.5x / 5.x processors) and `chat_template.json` (older processors)
  (`rewrite_processor_files`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from transformers import LlavaForConditionalGeneration

LAYOUT = "llava-hf"
# Run-time (5.x) prefix -> llava-hf prefix; the tower gets its `vision_model.` level separately.
_RENAMES = (
    ("model.language_model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
    ("model.vision_tower.", "vision_tower."),
)
# Keys of tokenizer_config.json that 5.x writes about its own loading, meaningless elsewhere.
_TOKENIZER_RUNTIME_KEYS = ("backend", "is_local", "local_files_only", "model_specific_special_tokens")


def tower_prefix(model: LlavaForConditionalGeneration) -> str:
    """The level 4.x has inside the vision tower (`vision_model.` for CLIP / SigLIP), read from
    transformers' own conversion mapping, which removes it on load."""
    try:
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping
    except ImportError:  # a transformers without conversion mappings keeps the level itself
        return ""
    for t in get_checkpoint_conversion_mapping(type(model.model.vision_tower).__name__) or []:
        removed = getattr(t, "prefix_to_remove", None)
        if removed:
            return f"{removed}."
    return ""


def legacy_key(name: str, tower: str) -> str:
    """A run-time parameter name in the llava-hf layout (names already in it stay as they are)."""
    for new, old in _RENAMES:
        if name.startswith(new):
            rest = name[len(new) :]
            if new == "model.vision_tower." and tower and not rest.startswith(tower):
                rest = tower + rest
            return old + rest
    return name


def legacy_state_dict(model: LlavaForConditionalGeneration) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The model's weights under llava-hf names, and the names of tied copies not to write."""
    tower = tower_prefix(model)
    state = {legacy_key(k, tower): v.detach().cpu() for k, v in model.state_dict().items()}
    if len(state) != len(model.state_dict()):
        raise ValueError("two weights map to the same llava-hf name; this model is not a plain LLaVA")
    tied = model.config.get_text_config().tie_word_embeddings or model.config.tie_word_embeddings
    return state, (["language_model.lm_head.weight"] if tied else [])


def legacy_config(model: LlavaForConditionalGeneration) -> dict[str, Any]:
    """`config.json` as 5.x writes it plus the fields under the names 4.x reads."""
    cfg = model.config.to_dict()
    cfg.pop("_name_or_path", None)
    cfg["architectures"] = [type(model).__name__]
    for sub in (cfg, cfg.get("text_config") or {}, cfg.get("vision_config") or {}):
        if "dtype" in sub and "torch_dtype" not in sub:
            sub["torch_dtype"] = sub["dtype"]  # 4.55 and older
    text = cfg.get("text_config") or {}
    rope = text.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        # 4.x reads `rope_theta` and a `rope_scaling` dict; 5.x folds both back into rope_parameters.
        text.setdefault("rope_theta", rope["rope_theta"])
        scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
        if scaling.get("rope_type", "default") != "default":
            text.setdefault("rope_scaling", scaling)
    return cfg


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _write(path: Path, obj: dict[str, Any]) -> None:
    # Inside the export's temporary folder: the whole folder is renamed into place at the end.
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def rewrite_processor_files(d: str | os.PathLike, processor: Any) -> None:
    """Turn the processor files 5.x wrote into `d` into the llava-hf set (see the module doc)."""
    d = Path(d)
    proc = _read(d / "processor_config.json")
    image = proc.pop("image_processor", None) or _read(d / "preprocessor_config.json")
    if not image:
        raise ValueError(f"{d}: the processor wrote no image processor settings")
    # The class names 4.x and 5.x share (`LlavaImageProcessor`, `CLIPImageProcessor`): 5.x's PIL
    # variants carry a `Pil` suffix that 4.x does not know.
    kind = str(image.get("image_processor_type", ""))
    image["image_processor_type"] = kind[: -len("Pil")] if kind.endswith("Pil") else kind
    image["processor_class"] = type(processor).__name__
    _write(d / "preprocessor_config.json", image)
    for key in ("patch_size", "vision_feature_select_strategy", "num_additional_image_tokens", "image_token"):
        if getattr(processor, key, None) is not None:
            proc[key] = getattr(processor, key)
    proc["processor_class"] = type(processor).__name__
    proc.pop("chat_template", None)
    _write(d / "processor_config.json", proc)
    _rewrite_tokenizer_config(d, processor)
    template = processor.chat_template
    if isinstance(template, str):
        (d / "chat_template.jinja").write_text(template, encoding="utf-8")
        _write(d / "chat_template.json", {"chat_template": template})


def _rewrite_tokenizer_config(d: Path, processor: Any) -> None:
    tok = processor.tokenizer
    cfg = _read(d / "tokenizer_config.json")
    named = cfg.get("model_specific_special_tokens") or {}
    extra = cfg.get("extra_special_tokens")
    for key in _TOKENIZER_RUNTIME_KEYS:
        cfg.pop(key, None)
    # The class that reads tokenizer.json and nothing else, in 4.x and 5.x: the ids are the file's.
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    # 4.x's PreTrainedTokenizerFast would also return token_type_ids, which `generate` refuses.
    cfg["model_input_names"] = list(tok.model_input_names)
    # 4.x takes a dict of named tokens here (a list fails); unnamed ones are its additional_special_tokens.
    cfg["extra_special_tokens"] = dict(named) if isinstance(named, dict) else {}
    if isinstance(extra, list) and extra:
        cfg["additional_special_tokens"] = [t["content"] if isinstance(t, dict) else str(t) for t in extra]
    template = processor.chat_template or tok.chat_template
    if isinstance(template, str):
        cfg["chat_template"] = template  # where tokenizers (and processors before 4.43) look
    if not (d / "tokenizer.json").exists():
        raise ValueError(f"{d}: the tokenizer wrote no tokenizer.json (a fast tokenizer is required)")
    _write(d / "tokenizer_config.json", cfg)
