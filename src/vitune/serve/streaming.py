"""Streaming answers: tokens from the worker thread to the event loop, as OpenAI's SSE chunks.

A greedy streamed request is micro-batched like any greedy request (`Generator.complete`, whose
answers equal batch size 1, so greedy streamed text equals the non-streamed answer); a sampled one
is generated alone (`Generator.stream`). transformers hands each new token to a `TokenSink` (its
streamer interface, on the worker thread, one row of the batch through `models.llava.RowStreams`,
decoding with a tokenizer of its own, the worker's alone); the sink decodes everything so far
the way the final answer is decoded (`skip_special_tokens`, stripped) and passes the new text on to
the request's `asyncio.Queue` through `loop.call_soon_threadsafe`. Text is held back while it ends
in whitespace (the final answer is stripped) or in an incomplete UTF-8 character, so what has been
sent is always a prefix of the final answer; the handler sends the rest once the answer is done.

A client that goes away (or times out) sets `cancelled`; `stop_requested` then ends its row of the
batch at the next token, so the worker is not held by an answer nobody reads.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer

END = None  # what the sink puts on the queue when generation is over


class TokenSink(BaseStreamer):
    """transformers' streamer interface on the worker thread, feeding an `asyncio.Queue` (module doc)."""

    def __init__(self, tokenizer: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.tokenizer = tokenizer
        self.loop = loop
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.cancelled = threading.Event()
        self._ids: list[int] = []
        self._sent = ""
        self._prompt_seen = False
        self._closed = False
        self.touched = False  # True once generation has handed it anything

    def stop_requested(self) -> bool:
        return self.cancelled.is_set()

    def _push(self, item: str | None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()

    def put(self, value: torch.Tensor) -> None:
        self.touched = True
        if not self._prompt_seen:  # generate hands over the prompt first
            self._prompt_seen = True
            return
        self._ids.extend(int(t) for t in value.reshape(-1))
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True).lstrip().rstrip()
        text = text.rstrip("\ufffd")  # an incomplete UTF-8 character: wait for its other bytes
        if len(text) > len(self._sent) and text.startswith(self._sent):
            self._push(text[len(self._sent) :])
            self._sent = text

    def end(self) -> None:
        self.close()

    def close(self) -> None:
        """No more text (also when generation failed or never ran); safe to call twice."""
        if not self._closed:
            self._closed = True
            self._push(END)


def sse(data: dict[str, Any] | str) -> str:
    """One Server-Sent Event (`data: ...` and a blank line)."""
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def chunk(
    cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    """OpenAI's `chat.completion.chunk` with one choice."""
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
