"""The HTTP API: OpenAI's `GET /v1/models` and `POST /v1/chat/completions`, plus `/health`,
`/metrics` (Prometheus) and `/vitune/stats` (recent batch sizes).

`create_app(engine, model_name=...)` wires the routes to an `Engine` (started and stopped with the
app's lifespan; stopping lets the worker finish what was submitted). A chat request is, in order:
admitted (at most `limits.max_queue` at once, else 429 with `Retry-After`), read (at most
`limits.max_body_bytes`, else 413), decoded and validated (`protocol.parse_chat`), prepared alone
(`Engine.prepare`: rendered, tokenized, checked against the positions), its image read and checked
(`media.load_image`, at most `limits.decode_slots` at once), and only then submitted to the
micro-batcher; every step off the event loop that could block it. It is answered within
`limits.timeout_s` of its admission (else 504), as one JSON body or, with `stream: true`, as
Server-Sent Events in OpenAI's chunk format ending with `data: [DONE]`.

Errors use OpenAI's body (`{"error": {"message", "type", "param", "code"}}`): 4xx for a request the
server cannot honour, 404 for an unknown model or route, 401 without the API key (`gate.py`); a 500
only for a failure of the server itself, and its body holds nothing but the request id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from vitune.models.llava import Sampling
from vitune.serve.engine import Answer, Engine, Job, ServerFault
from vitune.serve.gate import Gate, server_error
from vitune.serve.limits import Limits
from vitune.serve.media import load_image
from vitune.serve.metrics import CONTENT_TYPE, Metrics
from vitune.serve.protocol import ChatRequest, RequestError, parse_chat
from vitune.serve.streaming import END, TokenSink, chunk, sse

log = logging.getLogger("vitune.serve")
DRAIN_FACTOR = 4  # an oversized body is read (and dropped) this far, so the client sees the 413


def _error(err: RequestError) -> JSONResponse:
    return JSONResponse(err.payload(), status_code=err.status, headers=err.headers)


def usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def completion_body(answer: Answer, model_name: str) -> dict[str, Any]:
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(answer),
    }
    if answer.seed is not None:
        # A vitune extension (OpenAI's SDK keeps unknown fields): the seed a sampled answer was
        # drawn with, so a request that sent none can be repeated exactly.
        body["seed"] = answer.seed
    return body


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 once it is over `limit` bytes (never holding more than `limit`)."""
    declared = request.headers.get("content-length", "")
    over = declared.isdigit() and int(declared) > limit
    buf = bytearray()
    seen = 0
    async for part in request.stream():
        seen += len(part)
        over = over or seen > limit
        if not over:
            buf += part
        elif seen > DRAIN_FACTOR * limit:
            break
    if over:
        raise RequestError(413, f"the request body is over {limit} bytes (vitune serve --max-body-bytes)")
    return bytes(buf)


def decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise RequestError(400, "the request body is nested too deeply") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise RequestError(400, f"the request body is not valid JSON: {e}") from None


class Deadline:
    """The time left of a request's `timeout_s`, counted from its admission."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        self.end = self.start + seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.error()
        return left

    def error(self) -> RequestError:
        return RequestError(
            504, f"the request took longer than {self.seconds:g} s (vitune serve --timeout-s)", kind="timeout"
        )

    async def wait(self, fut: Future, request_id: str) -> Answer:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.left())
        except asyncio.TimeoutError:
            raise self.error() from None
        except ServerFault:
            raise server_error(request_id) from None
        except RuntimeError:  # the batcher stopped: the server is going down
            raise RequestError(503, "the server is shutting down", kind="server_error") from None


class ChatRoute:
    """`POST /v1/chat/completions`: admission, preparation, the answer or its stream (module doc)."""

    def __init__(
        self,
        engine: Engine,
        model_name: str,
        image_root: str | os.PathLike | None,
        limits: Limits,
        metrics: Metrics,
    ) -> None:
        self.engine, self.model_name, self.image_root = engine, model_name, image_root
        self.limits, self.metrics = limits, metrics
        self.decode_slots = asyncio.Semaphore(limits.decode_slots)
        self.preparing = 0  # requests being read or prepared (only touched on the event loop)

    @property
    def admitted(self) -> int:
        """Requests being read or prepared, plus jobs waiting for the worker."""
        return self.preparing + self.engine.pending

    async def __call__(self, request: Request) -> Response:
        if self.admitted >= self.limits.max_queue:
            raise RequestError(
                429,
                "the server is busy; retry shortly",
                kind="rate_limit_error",
                headers={"Retry-After": "1"},
            )
        deadline = Deadline(self.limits.timeout_s)
        self.preparing += 1
        try:
            chat, job, fut = await self.submit(request, deadline)
        except asyncio.TimeoutError:  # reading the body took too long
            raise deadline.error() from None
        finally:
            self.preparing -= 1
        if chat.stream:
            return StreamingResponse(
                self.stream(chat, job, fut, deadline),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        try:
            answer = await deadline.wait(fut, job.request_id)
        finally:
            fut.cancel()  # a request that timed out leaves the queue
        return JSONResponse(completion_body(answer, self.model_name))

    async def submit(self, request: Request, deadline: Deadline) -> tuple[ChatRequest, Job, Future]:
        """Read, validate and prepare one request, alone, then hand it to the worker."""
        engine, limits = self.engine, self.limits
        raw = await asyncio.wait_for(read_body(request, limits.max_body_bytes), deadline.left())
        chat = parse_chat(decode_json(raw), engine.max_tokens_cap, limits)
        if chat.model is not None and chat.model != self.model_name:
            raise RequestError(
                404,
                f"the model does not exist; this server serves {self.model_name!r}",
                "model",
                kind="not_found_error",
            )
        prepared = await run_in_threadpool(
            engine.prepare, chat.turns, chat.image_url is not None, chat.max_tokens
        )
        image = None
        if chat.image_url is not None:
            async with self.decode_slots:
                image = await run_in_threadpool(load_image, chat.image_url, self.image_root, limits)
        sampling = None
        if chat.temperature > 0:
            seed = chat.seed if chat.seed is not None else engine.draw_seed()
            sampling = Sampling(chat.temperature, chat.top_p, seed)
        sink = TokenSink(engine.tokenizer, asyncio.get_running_loop()) if chat.stream else None
        job = Job(prepared, image, sampling, sink, request.state.request_id)
        try:
            return chat, job, engine.submit(job)
        except RuntimeError:
            raise RequestError(503, "the server is shutting down", kind="server_error") from None

    async def stream(
        self, chat: ChatRequest, job: Job, fut: Future, deadline: Deadline
    ) -> AsyncIterator[str]:
        """The answer as SSE chunks: the role, text as it comes, the rest, the finish, `[DONE]`."""
        name, cid, now = self.model_name, f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        sink, sent = job.sink, ""
        assert sink is not None
        try:
            yield sse(chunk(cid, now, name, {"role": "assistant", "content": ""}))
            while (text := await asyncio.wait_for(sink.queue.get(), deadline.left())) is not END:
                if not sent:
                    self.metrics.first_token.observe(deadline.elapsed())
                sent += text
                yield sse(chunk(cid, now, name, {"content": text}))
            answer = await deadline.wait(fut, job.request_id)
            if not answer.text.startswith(sent):  # cannot happen with a prefix-stable tokenizer
                log.warning("request %s: streamed text is not a prefix of the answer", job.request_id)
            elif answer.text != sent:
                yield sse(chunk(cid, now, name, {"content": answer.text[len(sent) :]}))
            yield sse(chunk(cid, now, name, {}, answer.finish_reason))
            if chat.include_usage:
                yield sse({**chunk(cid, now, name, {}), "choices": [], "usage": usage(answer)})
        except (asyncio.TimeoutError, RequestError) as e:
            yield sse((e if isinstance(e, RequestError) else deadline.error()).payload())
        finally:
            sink.cancelled.set()  # ends generation early if the client went away
            fut.cancel()
        yield sse("[DONE]")


def create_app(
    engine: Engine,
    *,
    model_name: str,
    image_root: str | os.PathLike | None = None,
    limits: Limits | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """The API for `engine`'s model, served as `model_name` (see the module doc). Local image files
    are read only when `image_root` is set, and only under it; `api_key` set: required."""
    limits = limits or Limits()
    metrics = Metrics()
    metrics.track_queue(lambda: engine.pending)
    engine.batcher.on_batch = metrics.batch_size.observe
    route = ChatRoute(engine, model_name, image_root, limits, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        try:
            yield
        finally:
            # uvicorn has let in-flight requests finish; the worker runs what is still queued.
            await run_in_threadpool(engine.stop)

    app = FastAPI(title="vitune serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.model_name, app.state.limits = engine, model_name, limits
    app.state.metrics, app.state.api_key_required = metrics, api_key is not None
    app.add_middleware(Gate, api_key=api_key, metrics=metrics)
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_api_route("/v1/chat/completions", route, methods=["POST"])
    created = int(time.time())

    @app.get("/health")
    async def health() -> JSONResponse:
        alive = engine.alive
        body = {"status": "ok" if alive else "worker stopped", "model": model_name, "queue": engine.pending}
        return JSONResponse(body, status_code=200 if alive else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.admitted.set(route.admitted)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": model_name, "object": "model", "created": created, "owned_by": "vitune"}
        return {"object": "list", "data": [card]}

    @app.get("/vitune/stats")
    async def stats() -> dict[str, Any]:
        return {"model": model_name, "template": engine.template, **engine.stats()}

    return app


async def _request_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestError)
    return _error(err)


async def _http_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, HTTPException)
    kind = "not_found_error" if err.status_code == 404 else None
    return _error(RequestError(err.status_code, str(err.detail), kind=kind))
