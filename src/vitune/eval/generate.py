"""Batched greedy generation with a saved Llava model, giving the same answers as batch size 1.

The model and processor are loaded with plain transformers (`LlavaForConditionalGeneration` +
`AutoProcessor`), i.e. exactly what a user of the exported model gets. Prompts are LLaVA's
(`generation_prompt`, identical to the saved `vicuna_v1` chat template), images go through
`load_rgb -> expand2square -> processor` as in training.

Why batching does not change answers:

- LEFT padding, so every prompt ends at the last column and the first generated token of every row
  is predicted from its own last prompt token; transformers derives position ids from the
  attention mask (cumsum - 1), so a padded row sees positions 0..n-1 just like batch 1.
- Greedy decoding (`do_sample=False`, one beam) and float32 by default: no sampling noise, and the
  tiny numeric differences of a different matmul shape stay far below the gap between logits.
- Items are sorted by (modality, prompt length) into batches, which also minimises padding; the
  answers are returned in input order.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import LlavaForConditionalGeneration

from vitune.data.images import expand2square, load_rgb, pad_color
from vitune.train.export import load_pretrained
from vitune.train.templates import chat_template_name, generation_prompt


@dataclass(frozen=True, slots=True)
class GenItem:
    """One single-turn request: a user message and an optional image (path or loaded PIL image)."""

    text: str
    image: str | os.PathLike | Image.Image | None = None


def _prepare_image(image: str | os.PathLike | Image.Image, image_processor: object) -> Image.Image:
    img = image if isinstance(image, Image.Image) else load_rgb(image)
    return expand2square(img.convert("RGB"), pad_color(image_processor))


@contextlib.contextmanager
def _left_padding(tokenizer) -> Iterator[None]:
    # Restore the caller's setting: training collators rely on right padding.
    old = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = old


class Generator:
    """Greedy, batched, order-preserving generation for single-turn prompts."""

    def __init__(
        self,
        model: LlavaForConditionalGeneration,
        processor,
        *,
        template: str | None = None,
        max_new_tokens: int = 32,
        batch_size: int = 8,
    ) -> None:
        """`template=None` takes the template the processor's chat template names (vicuna_v1 if none)."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.template = (
            template or chat_template_name(getattr(processor, "chat_template", None)) or "vicuna_v1"
        )
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike, *, device: str = "cpu", **kwargs) -> Generator:
        model, processor = load_pretrained(model_dir, device=device)
        return cls(model, processor, **kwargs)

    def prompt(self, text: str, has_image: bool) -> str:
        eos = self.tokenizer.eos_token or "</s>"
        return generation_prompt(self.template, [("user", text)], has_image, eos)

    def _order(self, prompts: Sequence[str], has_image: Sequence[bool]) -> list[int]:
        # Text-only and image prompts never share a batch (the processor wants images for all or
        # none); within a modality, similar lengths share a batch so little padding is needed.
        lengths = [len(ids) for ids in self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
        return sorted(range(len(prompts)), key=lambda i: (has_image[i], lengths[i], i))

    def _batches(self, order: list[int], has_image: Sequence[bool]) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in order:
            if batch and (len(batch) == self.batch_size or has_image[batch[0]] != has_image[i]):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[str], images: list[Image.Image] | None) -> list[str]:
        with _left_padding(self.tokenizer):
            inputs = self.processor(images=images, text=prompts, return_tensors="pt", padding=True)
        inputs = inputs.to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        out = self.model.generate(
            **inputs,
            do_sample=False,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            max_new_tokens=self.max_new_tokens,
            pad_token_id=pad_id,
            # A preallocated cache: the default dynamic cache concatenates every layer's keys and
            # values at each step, which at batch 32 on a CPU cost more than the attention itself.
            cache_implementation="static",
        )
        # Left padding: every row's prompt ends at the same column, so new tokens start there.
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [t.strip() for t in texts]

    def generate(self, items: Sequence[GenItem]) -> list[str]:
        """Answer every item; the result is in input order and does not depend on `batch_size`."""
        if not items:
            return []
        has_image = [it.image is not None for it in items]
        prompts = [self.prompt(it.text, h) for it, h in zip(items, has_image, strict=True)]
        answers: list[str | None] = [None] * len(items)
        for batch in self._batches(self._order(prompts, has_image), has_image):
            # Images are loaded per batch: a 100K-question run never holds them all in memory.
            images = (
                [_prepare_image(items[i].image, self.processor.image_processor) for i in batch]
                if has_image[batch[0]]
                else None
            )  # type: ignore[arg-type]
            for i, text in zip(batch, self._generate_batch([prompts[i] for i in batch], images), strict=True):
                answers[i] = text
        return [a if a is not None else "" for a in answers]

    __call__ = generate
