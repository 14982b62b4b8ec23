"""The HTTP API: a FastAPI app with OpenAI's `GET /v1/models` and `POST /v1/chat/completions`.

`create_app(engine, model_name=...)` wires the routes to an `Engine` (started and stopped with the
app's lifespan). Requests are read by `protocol.parse_chat`, images by `media.load_image` (off the
event loop), and answered through the engine's micro-batcher; the handler awaits its future, so
the event loop keeps accepting requests while a batch generates. `GET /vitune/stats` reports the
batch sizes, so batching can be checked from outside. A sampled answer (temperature > 0) carries
the seed it was drawn with as a top-level `seed` field (a vitune extension), so it can be repeated.

Errors use OpenAI's body (`{"error": {"message", "type", "param", "code"}}`): 400 for a request the
server cannot honour, 404 for an unknown model or route; only a failure of the server itself is a
500, and its body names the exception instead of holding a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from vitune.eval.generate import Sampling
from vitune.serve.engine import Answer, Engine, Job
from vitune.serve.media import load_image
from vitune.serve.protocol import RequestError, parse_chat

log = logging.getLogger(__name__)


def _error(err: RequestError) -> JSONResponse:
    return JSONResponse(err.payload(), status_code=err.status)


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
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        },
    }
    if answer.seed is not None:
        # A vitune extension (OpenAI's SDK keeps unknown fields): the seed a sampled answer was
        # drawn with, so a request that sent none can be repeated exactly.
        body["seed"] = answer.seed
    return body


def create_app(engine: Engine, *, model_name: str, image_root: str | os.PathLike | None = None) -> FastAPI:
    """The API for `engine`'s model, served as `model_name`; local image files only under `image_root` if set."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        try:
            yield
        finally:
            # The worker is a plain thread: stopping it off the loop lets in-flight handlers finish.
            await run_in_threadpool(engine.stop)

    app = FastAPI(title="vitune serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.state.model_name = model_name
    created = int(time.time())

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, err: RequestError) -> JSONResponse:
        return _error(err)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, err: HTTPException) -> JSONResponse:
        kind = "not_found_error" if err.status_code == 404 else None
        return _error(RequestError(err.status_code, str(err.detail), kind=kind))

    @app.exception_handler(Exception)
    async def _server_error(request: Request, err: Exception) -> JSONResponse:
        log.exception("request failed")
        return _error(RequestError(500, f"internal server error: {type(err).__name__}: {err}"))

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": model_name, "object": "model", "created": created, "owned_by": "vitune"}
        return {"object": "list", "data": [card]}

    @app.get("/vitune/stats")
    async def stats() -> dict[str, Any]:
        return {"model": model_name, "template": engine.template, **engine.stats()}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            raise RequestError(400, f"the request body is not valid JSON: {e}") from None
        chat = parse_chat(body, engine.max_tokens_cap)
        if chat.model is not None and chat.model != model_name:
            raise RequestError(
                404,
                f"the model {chat.model!r} does not exist; this server serves {model_name!r}",
                "model",
                kind="not_found_error",
            )
        image = await run_in_threadpool(load_image, chat.image_url, image_root) if chat.image_url else None
        sampling = None
        if chat.temperature > 0:
            seed = chat.seed if chat.seed is not None else engine.draw_seed()
            sampling = Sampling(chat.temperature, chat.top_p, seed)
        job = Job(engine.render(chat.turns, image is not None), image, chat.max_tokens, sampling)
        answer = await asyncio.wrap_future(engine.submit(job))
        return JSONResponse(completion_body(answer, model_name))

    return app
