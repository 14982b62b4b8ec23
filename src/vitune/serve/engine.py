"""The model side of the server: requests prepared one by one, then answered in micro-batches by
`Generator.complete` (greedy) or alone by `Generator.stream` (sampled or streamed).

Request isolation. Everything a single request can get wrong is found before it meets another
request: `prepare` (called per request, off the event loop) renders the conversation with the
checkpoint's template, tokenizes it with the engine's *own* tokenizer copy (the `Generator`'s is
the worker's; a fast tokenizer must not be used from two threads) and checks it against the model's
positions, so a request that fails there gets its 4xx alone. On the worker, a batch that still
fails is retried one job at a time, so only the job that fails alone fails (`ServerFault`, a 500
with the request id, logged with its traceback), and its batch-mates get the answers they get alone.

Batching. Per batch, the greedy jobs, streamed or not, are grouped by their token budget and each
group is one `Generator.complete` call with that many new tokens, so every answer is exactly the
one a request sent alone gets (greedy, left-padded batches; see `models/llava.py`); a streamed
job's tokens go to its `TokenSink` as its row generates them. Clients normally send the same
`max_tokens`, so a batch is normally one call. A sampled job is always its own call, seeded from
the job's seed (transformers draws every row of a batch from one RNG); a request without a seed
gets one drawn from the engine's own seeded RNG and reported back. A streamed job whose sink has
already been handed tokens is not retried when its batch fails (its client has part of an answer):
it fails with the batch.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from PIL import Image

from vitune.data.templates import generation_prompt
from vitune.models.llava import Completion, Generator, Sampling
from vitune.serve.batcher import MicroBatcher
from vitune.serve.protocol import RequestError
from vitune.serve.streaming import TokenSink

log = logging.getLogger(__name__)


class ServerFault(Exception):
    """A job the model failed on although it passed every check: a server bug, answered with 500."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request ready for the worker: its prompt, positions and token budget."""

    prompt: str  # rendered with the checkpoint's template, ends where the assistant reply starts
    n_prompt: int  # positions the prompt takes in the model, image tokens included
    max_new: int  # new tokens it gets


@dataclass(frozen=True, slots=True)
class Job:
    prepared: Prepared
    image: Image.Image | None
    sampling: Sampling | None = None  # None: greedy
    sink: TokenSink | None = None  # set: streamed
    request_id: str = "-"


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
        on_batch: Any = None,
    ) -> None:
        if max_tokens_cap < 1:
            raise ValueError("max_tokens_cap must be >= 1")
        self.generator = generator
        self.max_tokens_cap = max_tokens_cap
        generator.batch_size = batch_size
        self.batcher = MicroBatcher(
            self._handle, batch_size=batch_size, max_wait_s=max_wait_ms / 1000.0, on_batch=on_batch
        )
        self.generate_calls = 0
        # Seeds for sampled requests that bring none; `draw_seed` may be called from any thread.
        self._seeds = random.Random(seed)
        self._seeds_lock = threading.Lock()
        # `prepare` runs on request threads: its own tokenizer, one thread at a time.
        self._tokenizer = copy.deepcopy(generator.tokenizer)
        self._tokenizer_lock = threading.Lock()
        # Streaming sinks decode on the worker while its prefetch thread may be encoding the next
        # batch with the generator's tokenizer: they get a copy of their own.
        self._sink_tokenizer = copy.deepcopy(generator.tokenizer)
        config = generator.model.config
        self.max_positions: int | None = getattr(config.get_text_config(), "max_position_embeddings", None)
        self.image_tokens = int(getattr(config, "image_seq_length", 0) or 0)

    @property
    def template(self) -> str:
        return self.generator.template

    @property
    def tokenizer(self) -> Any:
        """The tokenizer streaming sinks decode with (used on the worker thread only)."""
        return self._sink_tokenizer

    def render(self, turns: list[tuple[str, str]], has_image: bool) -> str:
        """The prompt for the next assistant reply, exactly as `eval/multiround.py` renders dialogs."""
        eos = self.generator.tokenizer.eos_token or "</s>"
        return generation_prompt(self.template, turns, has_image, eos)

    def prepare(self, turns: list[tuple[str, str]], has_image: bool, max_tokens: int | None) -> Prepared:
        """Render and tokenize one request and fix its token budget; `RequestError` if it cannot fit."""
        prompt = self.render(turns, has_image)
        try:
            with self._tokenizer_lock:
                n_ids = len(self._tokenizer(prompt, add_special_tokens=True)["input_ids"])
        except Exception:  # the parser lets only valid Unicode through; anything else is refused here
            raise RequestError(400, "the messages cannot be tokenized", "messages") from None
        # The processor expands the one <image> token into image_seq_length positions.
        n_prompt = n_ids + (self.image_tokens - 1 if has_image else 0)
        return Prepared(prompt, n_prompt, self._budget(max_tokens, n_prompt))

    def _budget(self, max_tokens: int | None, n_prompt: int) -> int:
        """How many new tokens a request gets, or a `RequestError` saying why it cannot be answered."""
        want = max_tokens if max_tokens is not None else self.max_tokens_cap
        if self.max_positions is None:
            return want
        room = self.max_positions - n_prompt
        if max_tokens is None:
            want = min(want, room)
        if want < 1 or want > room:
            raise RequestError(
                400,
                f"the prompt takes {n_prompt} of the model's {self.max_positions} positions, leaving "
                f"{max(room, 0)} for new tokens (asked: {want}); send a shorter conversation"
                + (" or a smaller max_tokens" if max_tokens is not None and room >= 1 else ""),
                "messages",
                kind="context_length_exceeded",
            )
        return want

    def start(self) -> None:
        self.batcher.start()

    def stop(self) -> None:
        self.batcher.stop()

    def submit(self, job: Job) -> Future:
        return self.batcher.submit(job)

    @property
    def pending(self) -> int:
        return self.batcher.pending

    @property
    def alive(self) -> bool:
        return self.batcher.alive

    def draw_seed(self) -> int:
        """A seed for a sampled request that gave none (31 bits: any client can send it back)."""
        with self._seeds_lock:
            return self._seeds.randrange(2**31)

    @staticmethod
    def _answer(job: Job, c: Completion) -> Answer:
        seed = job.sampling.seed if job.sampling is not None else None
        finish = "stop" if c.stopped else "length"
        return Answer(c.text, job.prepared.n_prompt, c.n_tokens, finish, seed)

    def _solo(self, job: Job) -> Answer | ServerFault:
        """A sampled job (streamed or not), generated alone."""
        self.generator.max_new_tokens = job.prepared.max_new
        self.generate_calls += 1
        try:
            c = self.generator.stream(job.prepared.prompt, job.image, job.sampling, job.sink)
            return self._answer(job, c)
        except Exception:
            log.exception("request %s failed on the model", job.request_id)
            return ServerFault(job.request_id)

    def _greedy(self, budget: int, jobs: list[Job]) -> list[Answer | ServerFault]:
        """Greedy jobs with one token budget, as one `complete` call; one by one if that fails."""
        self.generator.max_new_tokens = budget
        self.generate_calls += 1
        sinks = [j.sink for j in jobs]
        try:
            done = self.generator.complete(
                [j.prepared.prompt for j in jobs], [j.image for j in jobs], sinks if any(sinks) else None
            )
        except Exception:
            if len(jobs) == 1:
                log.exception("request %s failed on the model", jobs[0].request_id)
                return [ServerFault(jobs[0].request_id)]
            log.warning("a batch of %d failed; answering its requests one by one", len(jobs))
            return [
                ServerFault(j.request_id)
                if j.sink is not None and j.sink.touched
                else self._greedy(budget, [j])[0]
                for j in jobs
            ]
        return [self._answer(j, c) for j, c in zip(jobs, done, strict=True)]

    def _handle(self, jobs: list[Job]) -> list[Answer | ServerFault]:
        out: list[Answer | ServerFault | None] = [None] * len(jobs)
        groups: dict[int, list[int]] = defaultdict(list)
        try:
            for i, job in enumerate(jobs):
                if job.sampling is None:
                    groups[job.prepared.max_new].append(i)
                else:
                    out[i] = self._solo(job)
            for budget, idx in sorted(groups.items()):
                for i, answer in zip(idx, self._greedy(budget, [jobs[i] for i in idx]), strict=True):
                    out[i] = answer
        finally:
            for job in jobs:  # every stream ends, whatever happened
                if job.sink is not None:
                    job.sink.close()
        return [a for a in out if a is not None]

    def stats(self) -> dict[str, Any]:
        return {**self.batcher.stats(), "generate_calls": self.generate_calls, "pending": self.pending}
