"""The vitune / LLaVA backend: batched greedy generation with a saved Llava model, giving the same
answers as batch size 1 (`vitune.eval.generate` re-exports it: serve and older code import it there).

The model and processor are loaded with plain transformers (`LlavaForConditionalGeneration` +
`AutoProcessor`), i.e. exactly what a user of the exported model gets. Prompts are LLaVA's
(`generation_prompt`, identical to the checkpoint's saved chat template), images go through
`load_rgb -> expand2square -> processor` as in training.

Why batching does not change answers:

- LEFT padding, so every prompt ends at the last column and the first generated token of every row
  is predicted from its own last prompt token; transformers derives position ids from the
  attention mask (cumsum - 1), so a padded row sees positions 0..n-1 just like batch 1.
- Greedy decoding (`do_sample=False`, one beam) and float32 by default: no sampling noise, and the
  tiny numeric differences of a different matmul shape stay far below the gap between logits.
- Items are sorted by (modality, prompt length) into batches, which also minimises padding; the
  answers are returned in input order.

Sampling (`Generator.sample`, what `vitune serve` uses for temperature > 0) is one prompt per
`generate` call: transformers' `generate` takes no RNG of its own (it draws with `torch.multinomial`
from torch's global generator), so a batch would make an answer depend on its batch-mates. The
global RNG is seeded from the request's seed inside `torch.random.fork_rng`, so the same prompt and
seed give the same answer and the caller's RNG state is left as it was.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration
from transformers.generation.stopping_criteria import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from vitune.data.images import expand2square, load_rgb, pad_color
from vitune.data.templates import chat_template_name, generation_prompt
from vitune.models.base import GenItem, modality_batches, prefetched, processor_inputs


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling settings of one request (`Generator.sample`): OpenAI's meaning, no top-k."""

    temperature: float  # > 0
    top_p: float = 1.0  # 0 < top_p <= 1
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer with what an API reports about it (`Generator.complete`)."""

    text: str
    n_tokens: int  # new tokens, the stop token included, the padding after it not
    stopped: bool  # True: ended on an eos token; False: cut off at max_new_tokens


def load_pretrained(
    model_dir: str | os.PathLike, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[LlavaForConditionalGeneration, Any]:
    """Reload with plain transformers (what any downstream user would do), local files only.

    Reads both layouts vitune has written (5.x's own and llava-hf); a weight missing from the files
    is an error, not a randomly initialised part.
    """
    model, info = LlavaForConditionalGeneration.from_pretrained(
        model_dir, dtype=dtype, local_files_only=True, output_loading_info=True
    )
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise ValueError(f"{model_dir}: the weights do not match the model: " + _loading_summary(bad))
    model.to(device).eval()
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    return model, processor


def _loading_summary(bad: dict[str, Any]) -> str:
    return "; ".join(
        f"{k.replace('_', ' ')} {sorted(map(str, v))[:4]} ({len(v)} in all)" for k, v in bad.items()
    )


class RowStreams(BaseStreamer, StoppingCriteria):
    """One batch's per-row streamers behind transformers' single `streamer` (row r of every step goes
    to `streamers[r]`) and its stopping criteria (a row stops once its streamer asks to)."""

    def __init__(self, streamers: Sequence[Any]) -> None:
        self.streamers = list(streamers)

    @classmethod
    def extra(cls, streamers: Sequence[Any]) -> dict[str, Any]:
        """`generate` arguments for a batch's streamers (none when no row streams)."""
        if all(s is None for s in streamers):
            return {}
        rows = cls(streamers)
        return {"streamer": rows, "stopping_criteria": StoppingCriteriaList([rows])}

    def put(self, value: torch.Tensor) -> None:
        for r, s in enumerate(self.streamers):
            if s is not None:
                s.put(value[r : r + 1])

    def end(self) -> None:
        for s in self.streamers:
            if s is not None:
                s.end()

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        stop = [s is not None and bool(getattr(s, "stop_requested", lambda: False)()) for s in self.streamers]
        return torch.tensor(stop, dtype=torch.bool, device=input_ids.device)


def _prepare_image(image: str | os.PathLike | Image.Image, image_processor: object) -> Image.Image:
    img = image if isinstance(image, Image.Image) else load_rgb(image)
    return expand2square(img.convert("RGB"), pad_color(image_processor))


class Generator:
    """Greedy, batched, order-preserving generation for single-turn prompts (and `sample`)."""

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
        # A fast tokenizer must not be used from two threads at once (padding settings are set on
        # the shared Rust object per call: "Already borrowed"); the prefetch thread encodes while
        # this one may be decoding the previous batch.
        self._tokenizer_lock = threading.Lock()

    @classmethod
    def from_dir(
        cls,
        model_dir: str | os.PathLike,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        **kwargs,
    ) -> Generator:
        model, processor = load_pretrained(model_dir, device=device, dtype=dtype)
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
        return modality_batches(order, has_image, self.batch_size)

    def _inputs(self, prompts: list[str], images: list[Image.Image] | None) -> Any:
        return processor_inputs(self.processor, self._tokenizer_lock, self.model, prompts, images)

    def _stop(self, row: torch.Tensor) -> tuple[int, bool]:
        """(tokens generated, ended on eos) of one row of new tokens; finished rows are padded after eos."""
        eos = self.model.generation_config.eos_token_id
        eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        hits = torch.isin(row, torch.tensor(eos_ids, dtype=row.dtype, device=row.device)).nonzero()
        return (int(hits[0]) + 1, True) if len(hits) else (int(row.shape[0]), False)

    @torch.inference_mode()
    def _run(self, inputs: Any, sampling: Sampling | None = None, **extra: Any) -> list[Completion]:
        """Generate for prepared `inputs`; `extra` goes to `generate` (`streamer`, `stopping_criteria`)."""
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        decoding: dict[str, Any] = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling is not None:
            # top_k=0, not None: None falls back to transformers' default of 50, which OpenAI's
            # sampling does not have.
            decoding = dict(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        out = self.model.generate(
            **inputs,
            **decoding,
            num_beams=1,
            max_new_tokens=self.max_new_tokens,
            pad_token_id=pad_id,
            # A preallocated cache: the default dynamic cache concatenates every layer's keys and
            # values at each step, which at batch 32 on a CPU cost more than the attention itself.
            cache_implementation="static",
            **extra,
        )
        # Left padding: every row's prompt ends at the same column, so new tokens start there.
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        with self._tokenizer_lock:
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [Completion(t.strip(), *self._stop(row)) for t, row in zip(texts, new_tokens, strict=True)]

    def answer(self, prompts: Sequence[str], images: Sequence[Any]) -> list[str]:
        """Answer rendered prompts (`images[i]`: a path, a PIL image, or None for text-only)."""
        return [c.text for c in self.complete(prompts, images)]

    def complete(
        self, prompts: Sequence[str], images: Sequence[Any], streamers: Sequence[Any] | None = None
    ) -> list[Completion]:
        """`answer`, with each answer's token count and whether it ended on eos (for an API's usage).

        `streamers[i]` (transformers' streamer interface, or None) is handed item i's new tokens as
        its batch generates them (`RowStreams`); a streamer whose `stop_requested()` is True ends its
        row early (the other rows of the batch are unaffected).

        Batches go in length order; results come back in input order. Images are loaded per batch
        (a 100K-question run never holds them all), and the next batch's images are loaded and
        processed on a thread while the current batch generates: PIL and the image processor
        release the GIL for most of that work, so it overlaps the model instead of adding to it.
        """
        if not prompts:
            return []
        has_image = [im is not None for im in images]
        batches = list(self._batches(self._order(prompts, has_image), has_image))

        def prepare(batch: list[int]) -> Any:
            imgs = (
                [_prepare_image(images[i], self.processor.image_processor) for i in batch]
                if has_image[batch[0]]
                else None
            )
            return self._inputs([prompts[i] for i in batch], imgs)

        answers: list[Completion] = [Completion("", 0, False)] * len(prompts)
        for batch, inputs in prefetched(batches, prepare):
            extra = RowStreams.extra([streamers[i] for i in batch]) if streamers else {}
            for i, done in zip(batch, self._run(inputs, **extra), strict=True):
                answers[i] = done
        return answers

    def sample(self, prompt: str, image: Any, sampling: Sampling) -> Completion:
        """One rendered prompt answered by sampling, alone; reproducible given `sampling.seed`.

        Run it on the thread that owns the model: it seeds torch's global RNG (restored afterwards),
        which another thread drawing from it meanwhile would disturb.
        """
        if not sampling.temperature > 0 or not 0 < sampling.top_p <= 1:
            raise ValueError(f"sampling needs temperature > 0 and 0 < top_p <= 1, got {sampling}")
        return self.stream(prompt, image, sampling)

    def stream(self, prompt: str, image: Any, sampling: Sampling | None, streamer: Any = None) -> Completion:
        """One rendered prompt answered alone: greedy (`sampling` None, the answer `complete` gives) or
        sampled from `sampling.seed`; `streamer` as in `complete` (what `vitune serve` streams)."""
        imgs = None if image is None else [_prepare_image(image, self.processor.image_processor)]
        inputs = self._inputs([prompt], imgs)
        extra = RowStreams.extra([streamer])
        if sampling is None:
            return self._run(inputs, None, **extra)[0]
        cuda = [self.model.device.index or 0] if self.model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(sampling.seed)
            return self._run(inputs, sampling, **extra)[0]

    def generate(self, items: Sequence[GenItem]) -> list[str]:
        """Answer every item; the result is in input order and does not depend on `batch_size`."""
        has_image = [it.image is not None for it in items]
        prompts = [self.prompt(it.text, h) for it, h in zip(items, has_image, strict=True)]
        return self.answer(prompts, [it.image for it in items])

    __call__ = generate
