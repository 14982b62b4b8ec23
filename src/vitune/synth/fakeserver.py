"""A small local OpenAI-compatible chat server for tests, benchmarks and offline dry runs.

``POST /v1/chat/completions`` on 127.0.0.1 (a real socket, stdlib `ThreadingHTTPServer`), with
seeded replies in the generators' text formats (built from the ``Objects:`` block of the prompt,
so they pass the filters) and a ``usage`` block. It can model a real server's behaviour:

- `latency`: seconds each request takes; `capacity`: at most this many requests are served at
  once, the rest wait (a vLLM-like queue), so throughput is capped at capacity / latency;
- faults, by arrival order (`faults` list) or by a function of (request number, key, attempt of
  this key): ``"429"`` (with Retry-After), ``"500"``, ``"timeout"`` (answers after `slow_s`),
  ``"drop"`` (closes the connection without a response), ``"badjson"`` (a truncated body) and
  ``"malformed"`` (a 200 whose text follows no format).

Every request is logged (key, fault, status, whether the response was fully written), so tests
count requests server-side. Run standalone: ``python -m vitune.synth.fakeserver --port 8000``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FaultFn = Callable[[int, str, int], "str | None"]
_OBJ_LINE = re.compile(r"^(?P<name>[^:\n]+):\s*(?P<box>\[[^\]]+\])\s*$", re.M)


def default_reply(body: dict[str, Any]) -> str:
    """A seeded reply in the format the system prompt asks for, about the prompt's own objects."""
    msgs = body.get("messages") or []
    system = " ".join(m.get("content", "") for m in msgs if m.get("role") == "system")
    user = " ".join(m.get("content", "") for m in msgs if m.get("role") == "user")
    objs_block = user.split("Objects:", 1)[1].split("\n\n", 1)[0] if "Objects:" in user else ""
    objs = [(m.group("name").strip(), m.group("box")) for m in _OBJ_LINE.finditer(objs_block)] or [
        ("shape", "")
    ]
    rng = random.Random(hashlib.sha256(json.dumps(msgs, sort_keys=True).encode()).hexdigest())
    n = int(m.group(1)) if (m := re.search(r"\b(\d+) question-answer", system)) else 5

    def qa(i: int) -> str:
        name, box = objs[rng.randrange(len(objs))]
        if "<st>" in system and box:
            return f"Question: Where is <st>{name}<ed> {box}?\nAnswer: <st>{name}<ed> {box} is here ({i})."
        if rng.random() < 0.5:
            return f"Question: Is there a {name} in the picture? ({i})\nAnswer: Yes, there is a {name}."
        return f"Question: How many things are in view? ({i})\nAnswer: I can see {len(objs)} of them."

    if "Describe the image in detail" in system:
        names = ", ".join(sorted({o for o, _ in objs}))
        return f"The picture shows {names}. Everything is clearly visible against a plain background."
    if "Conversation 1" in system:
        k = int(m.group(1)) if (m := re.search(r"exactly (\d+) question-answer", system)) else 5
        return "\n".join(
            f"Conversation {c + 1} (topic: part {c + 1})\n" + "\n".join(qa(c * k + i) for i in range(k))
            for c in range(3)
        )
    return "\n".join(qa(i) for i in range(n))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr access logs
        return

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def do_POST(self) -> None:
        srv = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, b'{"error": {"message": "invalid JSON"}}')
            return
        key = self.headers.get("X-Vitune-Request-Key") or hashlib.sha256(raw).hexdigest()
        entry = srv._arrive(key)
        fault = entry["fault"]
        if fault == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            srv._finish(entry, 0, completed=False)
            return
        if fault == "429":
            self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": srv.retry_after})
            srv._finish(entry, 429)
            return
        if fault == "500":
            self._send(500, b'{"error": {"message": "internal error"}}')
            srv._finish(entry, 500)
            return
        with srv._slots:
            srv._enter()
            try:
                time.sleep(srv.slow_s if fault == "timeout" else srv.latency)
            finally:
                srv._leave()
        if fault == "badjson":
            self._send(200, b'{"id": "x", "choices": [{"message": {"content": "Ques')
            srv._finish(entry, 200, completed=False)
            return
        text = (
            "Sure! Here is some text with no structure at all."
            if fault == "malformed"
            else srv.reply_fn(body)
        )
        prompt_tokens = sum(len(m.get("content", "")) for m in body.get("messages", [])) // 4
        payload = {
            "id": f"chatcmpl-{entry['n']}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(text) // 4,
                "total_tokens": prompt_tokens + len(text) // 4,
            },
        }
        try:
            self._send(200, json.dumps(payload).encode())
        except OSError:  # the client went away (timed out or was killed)
            srv._finish(entry, 200, completed=False)
            return
        srv._finish(entry, 200)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    owner: FakeChatServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client killed or timed out mid-request: expected in tests, not worth a traceback
        super().handle_error(request, client_address)


class FakeChatServer:
    """Start with `start()` (or as a context manager); `url` is the base URL for `OpenAIBackend`."""

    def __init__(
        self,
        *,
        reply_fn: Callable[[dict[str, Any]], str] = default_reply,
        latency: float = 0.0,
        capacity: int | None = None,
        faults: list[str | None] | FaultFn | None = None,
        slow_s: float = 5.0,
        retry_after: str = "1",
        port: int = 0,
    ) -> None:
        self.reply_fn = reply_fn
        self.latency = latency
        self.capacity = capacity
        self.slow_s = slow_s
        self.retry_after = retry_after
        self._faults = faults
        self._slots = threading.BoundedSemaphore(capacity) if capacity else _NoLimit()
        self._lock = threading.Lock()
        self.log: list[dict[str, Any]] = []
        self._attempts: dict[str, int] = {}
        self.active = 0
        self.max_active = 0
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread: threading.Thread | None = None

    def _arrive(self, key: str) -> dict[str, Any]:
        with self._lock:
            n = len(self.log)
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            if callable(self._faults):
                fault = self._faults(n, key, attempt)
            elif self._faults and n < len(self._faults):
                fault = self._faults[n]
            else:
                fault = None
            entry = {
                "n": n,
                "key": key,
                "attempt": attempt,
                "fault": fault,
                "t0": time.monotonic(),
                "status": None,
            }
            self.log.append(entry)
            return entry

    def _finish(self, entry: dict[str, Any], status: int, *, completed: bool = True) -> None:
        with self._lock:
            entry["status"] = status
            entry["completed"] = completed
            entry["t1"] = time.monotonic()

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1

    # --- views for tests ---------------------------------------------------------------------

    def keys_served(self) -> list[str]:
        """Keys of requests answered with a complete 200 response."""
        with self._lock:
            return [e["key"] for e in self.log if e["status"] == 200 and e.get("completed")]

    def keys_seen(self) -> list[str]:
        with self._lock:
            return [e["key"] for e in self.log]

    def start(self) -> FakeChatServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _NoLimit:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--capacity", type=int, default=None)
    a = ap.parse_args(argv)
    srv = FakeChatServer(latency=a.latency, capacity=a.capacity, port=a.port).start()
    print(f"serving {srv.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
