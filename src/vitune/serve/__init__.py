"""`vitune serve`: a trained checkpoint behind an OpenAI-compatible chat API, safe by default.

- `protocol.py`: the chat-completions request format, validated, and OpenAI's error body;
- `limits.py`: what one request may cost (body, text, images, queue, time), with safe defaults;
- `media.py`: images from base64 data URLs, or local files only under an image root;
- `batcher.py`: concurrent requests collected into batches for one worker thread;
- `engine.py`: per-request preparation (rendering with the checkpoint's template, tokenization,
  position checks), then `Generator.complete` (greedy, micro-batched) and `Generator.stream`
  (sampled or streamed, one request per call), a failing batch retried one job at a time;
- `streaming.py`: tokens from the worker to Server-Sent Events in OpenAI's chunk format;
- `gate.py`: request ids, the API key, the access log, the last-resort 500; `metrics.py`: Prometheus;
- `app.py`: the FastAPI routes; `server.py`: building it from a folder and running it.

The names below are imported lazily, so `vitune --help` does not load FastAPI and torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BackgroundServer": "vitune.serve.server",
    "load_app": "vitune.serve.server",
    "serve": "vitune.serve.server",
    "Engine": "vitune.serve.engine",
    "create_app": "vitune.serve.app",
    "Limits": "vitune.serve.limits",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vitune.serve' has no attribute {name!r}")
