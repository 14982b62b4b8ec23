"""The backend interface: what a generation request is (`GenItem`), what answers it (`AnswerFn`) and
what describes a model to the eval cache without loading it (`ModelSource`)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from vitune.utils.hashing import dir_fingerprint

# Every file of a saved checkpoint that changes what it answers (weights, configs, tokenizer, processor).
MODEL_FILES = (
    "*.safetensors",
    "*.bin",
    "config.json",
    "generation_config.json",
    "tokenizer*.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template*",
)


@dataclass(frozen=True, slots=True)
class GenItem:
    """One single-turn request: a user message and an optional image (path or loaded PIL image)."""

    text: str
    image: str | os.PathLike | Image.Image | None = None


# Anything that answers GenItems in input order: a backend's generator, or a stub in tests.
AnswerFn = Callable[[Sequence[Any]], list[str]]


def modality_batches(order: Sequence[int], has_image: Sequence[bool], batch_size: int) -> Iterator[list[int]]:
    """Consecutive runs of `order`, at most `batch_size` each, never mixing image and text-only items
    (a batch's processor call has images for every row or for none)."""
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == batch_size or has_image[batch[0]] != has_image[i]):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def prefetched(
    batches: Sequence[list[int]], prepare: Callable[[list[int]], Any]
) -> Iterator[tuple[list[int], Any]]:
    """`(batch, prepare(batch))` for each batch in order, the next batch prepared on a thread while the
    caller works on the current one (PIL and the image processor release the GIL for most of it)."""
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(prepare, batches[0])
        for k, batch in enumerate(batches):
            inputs = pending.result()
            if k + 1 < len(batches):
                pending = pool.submit(prepare, batches[k + 1])
            yield batch, inputs


def processor_inputs(processor: Any, lock: Any, model: Any, prompts: list[str], images: Any) -> Any:
    """A left-padded batch from a model's processor, on the model's device, pixels in its dtype.

    padding_side is an argument, not a setting of the shared tokenizer: a training collator that
    shares it relies on right padding, and this runs on a prefetch thread (hence `lock`)."""
    with lock:
        inputs = processor(
            images=images, text=prompts, return_tensors="pt", padding=True, padding_side="left"
        )
    inputs = inputs.to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    return inputs


def model_fingerprint(model_dir: str | os.PathLike) -> str:
    """Names, sizes and mtimes of the files that change a checkpoint's answers (see `MODEL_FILES`)."""
    path = Path(model_dir)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{model_dir}: not a saved model (no config.json)")
    return dir_fingerprint(path, MODEL_FILES)


class ModelSource(ABC):
    """What answers benchmark items. `identity` and `params` are cheap (cache keys); `open` loads."""

    @abstractmethod
    def identity(self) -> str:
        """The model part of every cache key: a checkpoint fingerprint, or a served model's name."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Everything besides the model that changes an answer (prompt format, token budget, decoding)."""

    @abstractmethod
    def describe(self) -> str:
        """What results.json names as the model (a resolved folder, or `name @ url`)."""

    @abstractmethod
    def open(self) -> AnswerFn:
        """Load the model (or connect) and return its answer function."""
