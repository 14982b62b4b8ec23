"""Backends that turn a synthesis request into reply text.

- `OpenAIBackend`: any OpenAI-compatible ``POST {base_url}/chat/completions`` (OpenAI, vLLM,
  llama.cpp, TGI, ...), async over one `httpx.AsyncClient`, at most `concurrency` requests in
  flight, a per-request timeout, and retries with exponential backoff plus jitter on 429, 408, 5xx,
  timeouts, dropped connections and unreadable bodies; a server's ``Retry-After`` (or
  ``retry-after-ms``) wins over the computed backoff. Other 4xx are permanent failures.
- `TemplateBackend`: no network; writes each data type straight from the annotations
  (`vitune.synth.template`), in the same text format an LLM is asked for.

Both return a `ChatResult` with token usage, so accounting is the same for both.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from vitune.data.records import ImageRecord
from vitune.synth.context import approx_tokens
from vitune.synth.prompts import GeneratorSpec

log = logging.getLogger(__name__)
_CONNS_PER_CLIENT = 8
KEY_HEADER = "X-Vitune-Request-Key"  # lets a server log which cached request it answered


@dataclass(slots=True)
class SynthRequest:
    key: str  # the cache key (hash of everything that changes the reply)
    generator: GeneratorSpec
    record: ImageRecord
    messages: list[dict[str, str]]
    params: dict[str, Any]
    seed: int = 0
    reask: int = 0  # 0: the first ask; k: the k-th re-ask after unparsable replies
    base: str = ""  # the key of the first ask ("" for the first ask itself)

    @property
    def base_key(self) -> str:
        return self.base or self.key


@dataclass(slots=True)
class ChatResult:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    finish_reason: str = ""
    attempts: int = 1
    latency_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class BackendError(RuntimeError):
    """A request that failed for good (a permanent error, or retries exhausted)."""


class RetryableError(RuntimeError):
    def __init__(self, msg: str, retry_after: float | None = None) -> None:
        super().__init__(msg)
        self.retry_after = retry_after


class Backend:
    """The interface `synth` drives. `identity()` goes into every cache key."""

    name = "backend"
    model = ""
    concurrency = 1
    cacheable = True

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model}

    async def complete(self, req: SynthRequest) -> ChatResult:  # pragma: no cover - interface
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        retry_after_max: float = 300.0,
        seed: int | None = None,
        jitter_seed: int = 0,
        extra_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        # The key is read here, never stored in the cache key, summaries or logs.
        self._api_key = api_key if api_key is not None else os.environ.get(api_key_env, "")
        self.concurrency = concurrency
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.seed = seed
        self._jitter = random.Random(jitter_seed)  # backoff jitter, reproducible like every choice
        self.extra_body = dict(extra_body or {})
        self.headers = dict(headers or {})
        self._clients: list[httpx.AsyncClient] = []
        self._slots: asyncio.Queue[httpx.AsyncClient] | None = None
        self.stats = {"requests": 0, "retries": 0, "errors": {}}

    def identity(self) -> dict[str, Any]:
        # Everything that changes the reply; the API key does not.
        return {
            "backend": self.name,
            "endpoint": self.base_url,
            "model": self.model,
            "seed": self.seed,
            "extra_body": self.extra_body,
        }

    def _ensure(self) -> asyncio.Queue[httpx.AsyncClient]:
        """Slots: one entry per allowed in-flight request, each naming the client that carries it.

        httpcore's pool scans every connection for every queued request, which costs O(pool size)
        per event and made a single 64-connection client CPU-bound near 90 requests/s. Several
        clients of at most `_CONNS_PER_CLIENT` connections each keep that scan short.
        """
        if self._slots is None:
            headers = {"Content-Type": "application/json", **self.headers}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            n_clients = -(-self.concurrency // _CONNS_PER_CLIENT)
            self._slots = asyncio.Queue()
            for i in range(n_clients):
                conns = len(range(i, self.concurrency, n_clients))
                limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
                client = httpx.AsyncClient(timeout=self.timeout, limits=limits, headers=headers)
                self._clients.append(client)
                for _ in range(conns):
                    self._slots.put_nowait(client)
        return self._slots

    def _wait(self, state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        ra = getattr(exc, "retry_after", None)
        if ra is not None:
            return min(ra, self.retry_after_max)
        # Exponential backoff with additive jitter (written out: tenacity's helper changed its
        # signature across the versions we accept).
        exp = self.backoff_base * 2 ** max(0, state.attempt_number - 1)
        return min(self.backoff_max, exp) + self._jitter.uniform(0, self.backoff_base)

    def _count_error(self, kind: str) -> None:
        errs = self.stats["errors"]
        errs[kind] = errs.get(kind, 0) + 1

    async def _attempt(self, key: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> ChatResult:
        slots = self._ensure()
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            **params,
            **self.extra_body,
        }
        if self.seed is not None:
            body.setdefault("seed", self.seed)
        # A slot is held for one attempt only: a request sleeping in backoff frees it for others.
        client = await slots.get()
        try:
            self.stats["requests"] += 1
            t0 = time.monotonic()
            try:
                resp = await client.post(
                    f"{self.base_url}/chat/completions",
                    content=json.dumps(body),
                    headers={KEY_HEADER: key},
                )
            except httpx.TimeoutException as e:
                self._count_error("timeout")
                raise RetryableError(f"timeout ({type(e).__name__})") from e
            except httpx.TransportError as e:  # refused, reset, server disconnected, ...
                self._count_error("connection")
                raise RetryableError(f"connection error ({type(e).__name__}: {e})") from e
            latency = time.monotonic() - t0
        finally:
            slots.put_nowait(client)
        status = resp.status_code
        if status == 429 or status == 408 or status >= 500:
            self._count_error(str(status))
            raise RetryableError(f"HTTP {status}: {resp.text[:200]}", parse_retry_after(resp.headers))
        if status >= 400:
            self._count_error(str(status))
            raise BackendError(f"HTTP {status}: {resp.text[:300]}")
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            # A truncated or garbled body is a transport problem, not the model's answer: retry.
            self._count_error("bad_body")
            raise RetryableError(f"unreadable response body: {resp.text[:200]!r}") from e
        usage = data.get("usage") or {}
        return ChatResult(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=str(data.get("model") or self.model),
            finish_reason=str(choice.get("finish_reason") or ""),
            latency_s=latency,
        )

    async def complete(self, req: SynthRequest) -> ChatResult:
        return await self.chat(req.messages, req.params, key=req.key)

    async def chat(
        self, messages: list[dict[str, Any]], params: dict[str, Any], *, key: str = ""
    ) -> ChatResult:
        """One chat completion of `messages` (OpenAI's format, images as `image_url` parts) with the
        request fields `params`, retried as the module doc says; `key` is sent for server logs."""
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.max_retries + 1),
                wait=self._wait,
                retry=retry_if_exception_type(RetryableError),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    if attempts > 1:
                        self.stats["retries"] += 1
                    result = await self._attempt(key, messages, params)
                    result.attempts = attempts
                    return result
        except RetryableError as e:
            raise BackendError(f"gave up after {attempts} attempts: {e}") from e
        raise BackendError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        for c in self._clients:
            await c.aclose()
        self._clients, self._slots = [], None


class TemplateBackend(Backend):
    """Writes every data type from the annotations alone: offline, deterministic, grounded."""

    name = "template"
    model = "template-v1"
    cacheable = False  # instant and deterministic: caching would only cost disk

    def __init__(self, concurrency: int = 64) -> None:
        self.concurrency = concurrency

    async def complete(self, req: SynthRequest) -> ChatResult:
        from vitune.synth.template import WRITERS

        writer = WRITERS.get(req.generator.format)
        if writer is None:
            raise BackendError(f"template backend cannot write format {req.generator.format!r}")
        text = writer(req.record, req.seed, req.generator)
        prompt = sum(approx_tokens(m["content"]) for m in req.messages)
        return ChatResult(
            text=text, prompt_tokens=prompt, completion_tokens=approx_tokens(text), model=self.model
        )


def make_backend(kind: str, **kw: Any) -> Backend:
    """`make_backend("openai", base_url=..., model=...)` or `make_backend("template")`."""
    if kind == "openai":
        return OpenAIBackend(**kw)
    if kind == "template":
        return TemplateBackend(**kw)
    raise ValueError(f"unknown backend {kind!r} (openai, template)")
