"""Greedy batched answers from any transformers image-text-to-text model, with its own processor and
chat template (Qwen2-VL, Qwen2.5-VL, LLaVA-NeXT / OneVision, Idefics3, SmolVLM, Gemma 3, ...).

The model is `AutoModelForImageTextToText`, the processor `AutoProcessor`, both from local files
only. Each question becomes one user message (`{"type": "image"}` then `{"type": "text"}`) rendered
by the processor's own chat template with the generation prompt, as the model's authors prompt it.

Batched answers equal batch-1 answers for the same reasons as `models.llava`: LEFT padding (every
prompt ends at the last column; the families derive positions from the attention mask, Qwen2-VL's
3-D rope included), greedy decoding in float32, and batches of one modality sorted by prompt length.
The checkpoint's sampling defaults (`generation_config.json` of chat models sets temperature/top_p)
are overridden: evaluation is greedy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from PIL import Image

from vitune.data.images import load_rgb
from vitune.models.base import GenItem, modality_batches, prefetched, processor_inputs
from vitune.models.families import Family


def _image(src: str | os.PathLike | Image.Image) -> Image.Image:
    return src.convert("RGB") if isinstance(src, Image.Image) else load_rgb(src)


class HFGenerator:
    """Greedy, batched, order-preserving answers of a Hugging Face VLM; see the module doc."""

    def __init__(
        self, model: Any, processor: Any, family: Family, *, max_new_tokens: int = 32, batch_size: int = 8
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model, self.processor, self.family = model, processor, family
        self.tokenizer = processor.tokenizer
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self._lock = threading.Lock()  # a fast tokenizer must not be used from two threads at once

    @classmethod
    def from_dir(
        cls,
        model_dir: str | os.PathLike,
        family: Family,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        **kwargs: Any,
    ) -> HFGenerator:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
        model.to(device).eval()
        processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        if getattr(processor, "chat_template", None) is None:
            raise ValueError(
                f"{model_dir}: the processor has no chat template; cannot prompt a {family.name} model"
            )
        return cls(model, processor, family, **kwargs)

    def prompt(self, text: str, has_image: bool) -> str:
        content = [{"type": "image"}] if has_image else []
        messages = [{"role": "user", "content": [*content, {"type": "text", "text": text}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _batches(self, prompts: Sequence[str], has_image: Sequence[bool]) -> Iterator[list[int]]:
        lengths = [len(ids) for ids in self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: (has_image[i], lengths[i], i))
        return modality_batches(order, has_image, self.batch_size)

    def _inputs(self, prompts: list[str], images: list[Image.Image] | None) -> Any:
        if images is not None and self.family.nested_images:
            images = [[im] for im in images]  # type: ignore[misc]
        return processor_inputs(self.processor, self._lock, self.model, prompts, images)

    @torch.inference_mode()
    def _run(self, inputs: Any) -> list[str]:
        pad_id = self.tokenizer.pad_token_id
        out = self.model.generate(
            **inputs,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            num_beams=1,
            max_new_tokens=self.max_new_tokens,
            pad_token_id=self.tokenizer.eos_token_id if pad_id is None else pad_id,
        )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]  # left padding: new tokens start here
        with self._lock:
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [t.strip() for t in texts]

    def generate(self, items: Sequence[GenItem]) -> list[str]:
        """Answer every item; in input order, the same whatever `batch_size` (images loaded per batch,
        the next batch's on a thread while the current one generates)."""
        if not items:
            return []
        has_image = [it.image is not None for it in items]
        prompts = [self.prompt(it.text, h) for it, h in zip(items, has_image, strict=True)]
        batches = list(self._batches(prompts, has_image))

        def prepare(batch: list[int]) -> Any:
            imgs = [_image(items[i].image) for i in batch] if has_image[batch[0]] else None  # type: ignore[arg-type]
            return self._inputs([prompts[i] for i in batch], imgs)

        answers = [""] * len(items)
        for batch, inputs in prefetched(batches, prepare):
            for i, text in zip(batch, self._run(inputs), strict=True):
                answers[i] = text
        return answers

    __call__ = generate
