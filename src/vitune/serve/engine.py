"""The model side of the server: chat requests rendered with the checkpoint's template, checked
against the model's positions, and answered in micro-batches by `Generator.complete` (greedy) or
one by one by `Generator.sample` (temperature > 0).

Everything that touches the model or its tokenizer runs on the batcher's single worker thread
(neither is thread-safe: a fast tokenizer that is padding on one thread refuses to encode on
another). Per batch, the jobs that fit are grouped by their `max_tokens` and each group is one
`Generator.complete` call with that many new tokens, so every answer is exactly the one a request
sent alone gets (greedy, left-padded batches; see `eval/generate.py`). Clients normally send the
same `max_tokens`, so a batch is normally one call.

A sampled job is always its own `Generator.sample` call, seeded from the job's seed: transformers
draws every row of a batch from one RNG, so batching would make a sampled answer depend on what
else was in flight. A request without a seed gets one drawn from the engine's own RNG (itself
seeded, `seed=`), reported back in the answer so the reply can be reproduced.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from PIL import Image

from vitune.eval.generate import Generator, Sampling
from vitune.serve.batcher import MicroBatcher
from vitune.serve.protocol import RequestError
from vitune.train.templates import generation_prompt


@dataclass(frozen=True, slots=True)
class Job:
    prompt: str  # rendered with the checkpoint's template, ends where the assistant reply starts
    image: Image.Image | None
    max_tokens: int | None  # None: the server's cap, or what the model's positions leave
    sampling: Sampling | None = None  # None: greedy


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    prompt_tokens: int  # positions the prompt takes in the model, image tokens included
    completion_tokens: int
    finish_reason: str  # "stop" (ended on eos) or "length" (cut at max_tokens)
    seed: int | None = None  # the seed a sampled answer was drawn with


class Engine:
    """Owns the `Generator` and the worker thread; `submit(job)` returns a future of an `Answer`."""

    def __init__(
        self,
        generator: Generator,
        *,
        max_tokens_cap: int = 512,
        batch_size: int = 8,
        max_wait_ms: float = 10,
        seed: int = 0,
    ) -> None:
        if max_tokens_cap < 1:
            raise ValueError("max_tokens_cap must be >= 1")
        self.generator = generator
        self.max_tokens_cap = max_tokens_cap
        generator.batch_size = batch_size
        self.batcher = MicroBatcher(self._handle, batch_size=batch_size, max_wait_s=max_wait_ms / 1000.0)
        self.generate_calls = 0
        # Seeds for sampled requests that bring none; `draw_seed` may be called from any thread.
        self._seeds = random.Random(seed)
        self._seeds_lock = threading.Lock()
        config = generator.model.config
        self.max_positions: int | None = getattr(config.get_text_config(), "max_position_embeddings", None)
        self.image_tokens = int(getattr(config, "image_seq_length", 0) or 0)

    @property
    def template(self) -> str:
        return self.generator.template

    def render(self, turns: list[tuple[str, str]], has_image: bool) -> str:
        """The prompt for the next assistant reply, exactly as `eval/multiround.py` renders dialogs."""
        eos = self.generator.tokenizer.eos_token or "</s>"
        return generation_prompt(self.template, turns, has_image, eos)

    def start(self) -> None:
        self.batcher.start()

    def stop(self) -> None:
        self.batcher.stop()

    def submit(self, job: Job):
        return self.batcher.submit(job)

    def draw_seed(self) -> int:
        """A seed for a sampled request that gave none (31 bits: any client can send it back)."""
        with self._seeds_lock:
            return self._seeds.randrange(2**31)

    def _budget(self, job: Job, n_prompt: int) -> int | RequestError:
        """How many new tokens `job` gets, or why it cannot be answered."""
        want = job.max_tokens if job.max_tokens is not None else self.max_tokens_cap
        if self.max_positions is None:
            return want
        room = self.max_positions - n_prompt
        if job.max_tokens is None:
            want = min(want, room)
        if want < 1 or want > room:
            return RequestError(
                400,
                f"the prompt takes {n_prompt} of the model's {self.max_positions} positions, leaving "
                f"{max(room, 0)} for new tokens (asked: {want}); send a shorter conversation"
                + (" or a smaller max_tokens" if job.max_tokens is not None and room >= 1 else ""),
                "messages",
                kind="context_length_exceeded",
            )
        return want

    def _handle(self, jobs: list[Job]) -> list[Answer | RequestError]:
        ids = self.generator.tokenizer([j.prompt for j in jobs], add_special_tokens=True)["input_ids"]
        out: list[Answer | RequestError | None] = [None] * len(jobs)
        n_prompt: list[int] = []
        groups: dict[int, list[int]] = defaultdict(list)
        for i, (job, toks) in enumerate(zip(jobs, ids, strict=True)):
            # The processor expands the one <image> token into image_seq_length positions.
            n_prompt.append(len(toks) + (self.image_tokens - 1 if job.image is not None else 0))
            budget = self._budget(job, n_prompt[i])
            if isinstance(budget, RequestError):
                out[i] = budget
            elif job.sampling is None:
                groups[budget].append(i)
            else:
                self.generator.max_new_tokens = budget
                self.generate_calls += 1
                c = self.generator.sample(job.prompt, job.image, job.sampling)
                out[i] = Answer(
                    c.text, n_prompt[i], c.n_tokens, "stop" if c.stopped else "length", job.sampling.seed
                )
        for budget, idx in sorted(groups.items()):
            self.generator.max_new_tokens = budget
            self.generate_calls += 1
            done = self.generator.complete([jobs[i].prompt for i in idx], [jobs[i].image for i in idx])
            for i, c in zip(idx, done, strict=True):
                out[i] = Answer(c.text, n_prompt[i], c.n_tokens, "stop" if c.stopped else "length")
        return [a for a in out if a is not None]

    def stats(self) -> dict[str, Any]:
        return {**self.batcher.stats(), "generate_calls": self.generate_calls}
