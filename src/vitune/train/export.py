"""Save a trained model + processor so that plain transformers (and vLLM, lmms-eval) reload it.

The directory holds `model.safetensors` (sharded above 5 GB) + `config.json` +
`generation_config.json` (the model) and the tokenizer, image processor and chat template (the
processor), in the llava-hf layout that transformers 4.x and 5.x both load to the same model
(`llava_hf.py`), plus `vitune.json` (what made it, and `"export": {"layout": "llava-hf"}`). It is
written into a temporary sibling directory and renamed into place, so a reader never sees a
half-written export; an existing directory is replaced only if it is an export itself.

Before writing, the export is checked the way a downstream loader would trip over it: no peft
adapters left (merge them with `train.lora.merge_lora`), the processor's `<image>` expansion equals
the model's feature count, and the chat template and pad token are present.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import transformers
from huggingface_hub import save_torch_state_dict
from transformers import AutoProcessor, LlavaForConditionalGeneration

from vitune.models.llava import load_pretrained
from vitune.train import llava_hf

EXPORT_INFO = "vitune.json"
MAX_SHARD_SIZE = "5GB"  # transformers' own default: larger models get model-0000k-of-0000n files


def save_pretrained(
    model: LlavaForConditionalGeneration,
    processor: Any,
    out_dir: str | os.PathLike,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write model + processor (+ `vitune.json` with `extra`) to `out_dir` atomically.

    An existing `out_dir` is replaced only after the new export is complete, and only if it is an
    export (or empty): a folder of something else is refused with a ValueError.
    """
    _check_exportable(model, processor)
    out = Path(out_dir)
    check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_model(model, tmp)
        processor.save_pretrained(tmp)
        llava_hf.rewrite_processor_files(tmp, processor)
        info = dict(extra or {})
        info["export"] = {"layout": llava_hf.LAYOUT, "transformers": transformers.__version__}
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; an export is read by other users and services
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old.{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_model(model: LlavaForConditionalGeneration, d: Path) -> None:
    state, tied = llava_hf.legacy_state_dict(model)
    # huggingface_hub writes what transformers' save_pretrained does: safetensors with format "pt",
    # sharded at 5 GB with model.safetensors.index.json; tied copies are written once.
    save_torch_state_dict(
        state,
        d,
        max_shard_size=MAX_SHARD_SIZE,
        metadata={"format": "pt"},
        shared_tensors_to_discard=tied or None,
    )
    (d / "config.json").write_text(
        json.dumps(llava_hf.legacy_config(model), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    model.generation_config.save_pretrained(d)


def is_export(d: str | os.PathLike) -> bool:
    """A folder holding a LLaVA checkpoint (config.json of model_type llava and its weights)."""
    d = Path(d)
    try:
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    has_weights = (d / "model.safetensors").exists() or (d / "model.safetensors.index.json").exists()
    return isinstance(config, dict) and config.get("model_type") == "llava" and has_weights


def check_replaceable(out: Path) -> None:
    """Refuse to replace a folder that holds something other than an export (it would be deleted)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_export(out))):
        raise ValueError(f"{out}: exists and is not a model export; refusing to replace it")


def _check_exportable(model: Any, processor: Any) -> None:
    from vitune.train.compose import check_image_tokens

    if any(".lora_" in n for n, _ in model.named_parameters()) or not isinstance(
        model, LlavaForConditionalGeneration
    ):
        # A peft model saves adapter files, or base weights under renamed keys: neither loads as
        # a plain Llava checkpoint.
        raise ValueError(
            "export needs a plain LlavaForConditionalGeneration; call train.lora.merge_lora() first"
        )
    check_image_tokens(model, processor)
    tok = processor.tokenizer
    if processor.chat_template is None and tok.chat_template is not None:
        # Saved as the processor's chat_template.jinja, which is what apply_chat_template reads.
        processor.chat_template = tok.chat_template
    if tok.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; batched inference would fail")
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id


def read_export_info(model_dir: str | os.PathLike) -> dict[str, Any]:
    """`vitune.json` of an export ({} if it has none or it is unreadable)."""
    try:
        info = json.loads(Path(model_dir, EXPORT_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def source_kind(src: str | os.PathLike) -> tuple[str, Path]:
    """What `vitune export SRC` was given: ("adapter", dir) for a peft LoRA adapter folder, ("model",
    dir) for a model folder, or a training stage's folder, whose `model/` is its export."""
    src = Path(src)
    if (src / "adapter_config.json").exists():
        return "adapter", src
    if (src / "config.json").exists():
        return "model", src
    if (src / "model" / "config.json").exists():
        return "model", src / "model"
    raise ValueError(f"{src}: not a model folder, a training stage or a LoRA adapter folder")


def _load_adapter(src: Path) -> tuple[LlavaForConditionalGeneration, Any]:
    """The adapter's base model with the LoRA adapters merged in (a plain Llava)."""
    from peft import PeftModel

    from vitune.train.lora import merge_lora

    cfg = json.loads((src / "adapter_config.json").read_text(encoding="utf-8"))
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{src}/adapter_config.json: no base_model_name_or_path")
    base_dir = Path(base) if Path(base).is_absolute() or Path(base).exists() else src / base
    if not (base_dir / "config.json").exists():
        raise ValueError(f"{src}/adapter_config.json: base model {base!r} is not a local model folder")
    model, processor = load_pretrained(base_dir)
    merged = merge_lora(PeftModel.from_pretrained(model, src, is_trainable=False))
    if (src / "tokenizer.json").exists():
        processor = AutoProcessor.from_pretrained(src, local_files_only=True)
    return merged.eval(), processor


def export_model(src: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Rewrite an existing model folder, training stage or LoRA adapter (merged) as an export in
    the current layout at `out` (which may be `src` itself: the model is read fully first)."""
    kind, path = source_kind(src)
    check_replaceable(Path(out))
    model, processor = _load_adapter(path) if kind == "adapter" else load_pretrained(path)
    extra = {k: v for k, v in read_export_info(path).items() if k != "export"}
    extra["converted_from"] = {"path": str(src), "kind": kind}
    return save_pretrained(model, processor, out, extra=extra)
