"""The ASGI middleware every request passes: request id, API key, access log, metrics, last resort.

- Every request gets an id (`x-request-id` response header), which a 500 body and the log share.
- With an API key, every route but `/health` needs `Authorization: Bearer <key>` (compared in
  constant time); anything else is a 401 with OpenAI's error body.
- One access-log line per request on the `vitune.serve.access` logger (stderr under `vitune serve`):
  client, method, path, status, milliseconds, request id.
- An exception nothing else handled becomes a 500 whose body holds only the request id (the
  traceback goes to the log). The middleware answers it itself and does not re-raise, so the
  connection stays usable for the client's next request. A client that went away is logged as 499.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import Any

from starlette.requests import ClientDisconnect

from vitune.serve.metrics import Metrics
from vitune.serve.protocol import RequestError

log = logging.getLogger("vitune.serve")
access_log = logging.getLogger("vitune.serve.access")
OPEN_PATHS = frozenset({"/health"})


def server_error(request_id: str) -> RequestError:
    return RequestError(500, f"internal server error (request id {request_id})")


async def send_error(send: Any, err: RequestError, request_id: str) -> None:
    body = json.dumps(err.payload()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (err.headers or {}).items()]
    headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Gate:
    """ASGI middleware (see the module doc); `api_key=None` serves everyone."""

    def __init__(self, app: Any, *, api_key: str | None = None, metrics: Metrics | None = None) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.metrics = metrics

    def _authorized(self, scope: dict[str, Any]) -> bool:
        if self.expected is None or scope.get("path") in OPEN_PATHS:
            return True
        given = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
        return hmac.compare_digest(given, self.expected)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req-{uuid.uuid4().hex[:20]}"
        scope.setdefault("state", {})["request_id"] = request_id
        t0 = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_tagged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.update(code=message["status"], started=True)
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())],
                }
            await send(message)

        try:
            if self._authorized(scope):
                await self.app(scope, receive, send_tagged)
            else:
                err = RequestError(
                    401,
                    "a valid API key is required: send Authorization: Bearer <key>",
                    kind="authentication_error",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                status.update(code=401, started=True)
                await send_error(send, err, request_id)
        except (ClientDisconnect, ConnectionError):
            # The client went away (a stream it stopped reading): nothing to answer, nothing broken.
            status.update(code=499, started=True)
        except Exception:
            log.exception("request %s failed", request_id)
            if not status["started"]:
                status.update(code=500, started=True)
                await send_error(send, server_error(request_id), request_id)
        finally:
            self._record(scope, status["code"], time.perf_counter() - t0, request_id)

    def _record(self, scope: dict[str, Any], code: int, seconds: float, request_id: str) -> None:
        client = scope.get("client")
        who = f"{client[0]}:{client[1]}" if client else "-"
        path = scope.get("path", "")
        # repr escapes newlines and control characters: a hostile path cannot forge log lines.
        shown = repr(path[:200])[1:-1]
        access_log.info(
            '%s "%s %s" %d %.1fms %s', who, scope.get("method"), shown, code, seconds * 1000, request_id
        )
        if self.metrics is not None:
            self.metrics.observe(path, code, seconds)
