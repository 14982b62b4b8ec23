"""Save a trained model + processor so that plain transformers (and vLLM, lmms-eval) reload it.

The directory holds `model.safetensors` + `config.json` + `generation_config.json` (the model) and
the tokenizer, image processor and chat template (the processor). It is written into a temporary
sibling directory and renamed into place, so a reader never sees a half-written export.

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

from transformers import LlavaForConditionalGeneration

from vitune.models.llava import load_pretrained  # noqa: F401  (its one definition; re-exported here)


def save_pretrained(
    model: LlavaForConditionalGeneration,
    processor: Any,
    out_dir: str | os.PathLike,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write model + processor (+ `vitune.json` with `extra`) to `out_dir` atomically.

    An existing `out_dir` is replaced only after the new export is complete.
    """
    _check_exportable(model, processor)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        if extra is not None:
            (tmp / "vitune.json").write_text(
                json.dumps(extra, indent=2, default=str) + "\n", encoding="utf-8"
            )
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
