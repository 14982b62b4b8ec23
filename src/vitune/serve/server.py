"""Running the API: `load_app` builds it from a checkpoint folder, `serve` runs it under uvicorn
(what `vitune serve` calls), `BackgroundServer` runs it on a thread (tests, notebooks).

`serve` refuses to bind an address other than loopback when no API key is required, unless told
`insecure=True` (`vitune serve --insecure`): a model server open to a network should not be open to
everyone on it by accident. On SIGINT / SIGTERM uvicorn stops accepting connections and lets the
requests in flight finish (up to `graceful_s`), then the worker finishes what is queued.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from vitune.models.llava import Generator
from vitune.serve.app import create_app
from vitune.serve.engine import Engine
from vitune.serve.limits import Limits


def load_app(
    model_dir: str | os.PathLike,
    *,
    model_name: str | None = None,
    device: str = "cpu",
    batch_size: int = 8,
    max_wait_ms: float = 10,
    max_tokens_cap: int = 512,
    image_root: str | os.PathLike | None = None,
    seed: int = 0,
    limits: Limits | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """The API for a saved Llava checkpoint (plain transformers), served as `model_name` (default:
    the folder's name), with the checkpoint's own conversation template; `seed` seeds the seeds drawn
    for sampled requests that send none. Local image files only under `image_root` (none without
    it); `api_key`: required of every request (`Authorization: Bearer <key>`)."""
    generator = Generator.from_dir(model_dir, device=device, batch_size=batch_size)
    engine = Engine(
        generator, max_tokens_cap=max_tokens_cap, batch_size=batch_size, max_wait_ms=max_wait_ms, seed=seed
    )
    name = model_name or Path(model_dir).resolve().name
    return create_app(engine, model_name=name, image_root=image_root, limits=limits, api_key=api_key)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str, api_key_required: bool, insecure: bool = False) -> None:
    """Refuse (ValueError) to serve a non-loopback address without an API key unless `insecure`."""
    if not is_loopback(host) and not api_key_required and not insecure:
        raise ValueError(
            f"refusing to listen on {host} without an API key: anyone who can reach it could use the "
            "model; pass --api-key-env VAR (the key in that environment variable), or --insecure"
        )


def _log_to_stderr() -> None:
    """vitune's server logs, the access log included, as lines on stderr (stdout stays for data)."""
    logger = logging.getLogger("vitune.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def serve(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    *,
    insecure: bool = False,
    graceful_s: float = 30.0,
) -> None:
    """Serve until interrupted (see the module doc). One process: the model is loaded once and
    batches share it."""
    check_bind(host, app.state.api_key_required, insecure)
    _log_to_stderr()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        workers=1,
        access_log=False,  # the app writes its own, with status, duration and request id
        timeout_graceful_shutdown=graceful_s,
    )


class BackgroundServer:
    """`app` served on 127.0.0.1 on a thread (port 0: a free one), as a context manager; `url` ends in /v1."""

    def __init__(self, app: FastAPI, port: int = 0, log_level: str = "warning") -> None:
        # Binding here, before uvicorn starts, gives a known port with no window for another process.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="vitune-serve-http", daemon=True
        )

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Graceful: requests in flight are answered first."""
        self._server.should_exit = True
        self._thread.join(30)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
