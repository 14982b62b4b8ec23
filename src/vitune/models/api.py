"""Answers from any OpenAI-compatible chat server (vLLM, SGLang, `vitune serve`, hosted APIs).

Each question is one user message: the image as a base64 `data:` URL `image_url` part (the file's
own bytes, after the one image check `vitune.data.images.open_image`, so the server decodes exactly
what a local run reads), then the text; `temperature` 0 and `max_tokens` = the run's token budget.
The HTTP side is `vitune.synth.backends.OpenAIBackend` (one definition): at most `concurrency`
requests in flight, a per-request timeout, retries with exponential backoff and jitter on 429 /
408 / 5xx / timeouts / dropped connections / unreadable bodies (a server's Retry-After wins). An
item that still fails raises `APIError` naming it; the items answered before it stay cached.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
from collections.abc import Sequence
from typing import Any

from PIL import Image

from vitune.data.images import open_image
from vitune.models.base import GenItem
from vitune.synth.backends import BackendError, OpenAIBackend


class APIError(RuntimeError):
    """A question the server did not answer after all retries (or refused)."""


def data_url(image: str | os.PathLike | Image.Image) -> str:
    """The image as a base64 data URL: a file's own bytes (checked first), a PIL image as PNG."""
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="PNG")
        raw, fmt = buf.getvalue(), "png"
    else:
        with open(image, "rb") as fh:
            raw = fh.read()
        open_image(raw, source=image)  # the one image check: a bad file fails here, named
        with Image.open(io.BytesIO(raw)) as im:
            fmt = (im.format or "png").lower()
        fmt = {"mpo": "jpeg"}.get(fmt, fmt)  # a camera JPEG with extra frames is still a JPEG to servers
    return f"data:image/{fmt};base64," + base64.b64encode(raw).decode("ascii")


def messages_for(item: GenItem) -> list[dict[str, Any]]:
    """OpenAI chat messages asking `item`: the image part first (as LLaVA puts it), then the text."""
    if item.image is None:
        return [{"role": "user", "content": item.text}]
    parts = [
        {"type": "image_url", "image_url": {"url": data_url(item.image)}},
        {"type": "text", "text": item.text},
    ]
    return [{"role": "user", "content": parts}]


class APIGenerator:
    """`items -> answers` through an OpenAI-compatible server; answers come back in input order."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        max_new_tokens: int = 32,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 6,
        backoff_base: float = 0.5,
    ) -> None:
        self.max_new_tokens = max_new_tokens
        self.concurrency = concurrency
        self._backend_kw = dict(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
        )
        self.stats: dict[str, Any] = {"requests": 0, "retries": 0, "errors": {}}

    async def _ask(self, backend: OpenAIBackend, gate: asyncio.Semaphore, item: GenItem) -> str:
        # The gate bounds what is prepared at once too: an image is read only when its turn comes.
        async with gate:
            # Reading and checking the image on a thread keeps the event loop sending other requests.
            messages = await asyncio.to_thread(messages_for, item)
            key = hashlib.sha256(repr((item.text, str(item.image))).encode()).hexdigest()[:32]
            params = {"max_tokens": self.max_new_tokens, "temperature": 0}
            try:
                result = await backend.chat(messages, params, key=key)
            except BackendError as e:
                raise APIError(f"{self._backend_kw['base_url']}: no answer to {item.text[:60]!r}: {e}") from e
            return result.text.strip()

    async def _all(self, items: Sequence[GenItem]) -> list[str]:
        backend = OpenAIBackend(**self._backend_kw)  # type: ignore[arg-type]
        gate = asyncio.Semaphore(self.concurrency)
        try:
            return list(await asyncio.gather(*(self._ask(backend, gate, it) for it in items)))
        finally:
            await backend.aclose()
            for k in ("requests", "retries"):
                self.stats[k] += backend.stats[k]
            for k, n in backend.stats["errors"].items():
                self.stats["errors"][k] = self.stats["errors"].get(k, 0) + n

    def generate(self, items: Sequence[GenItem]) -> list[str]:
        """Answer every item (one event loop per call: the runner calls it once per chunk)."""
        return asyncio.run(self._all(items)) if items else []

    __call__ = generate
