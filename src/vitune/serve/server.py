"""Running the API: `load_app` builds it from a checkpoint folder, `serve` runs it under uvicorn
(what `vitune serve` calls), `BackgroundServer` runs it on a thread (tests, notebooks).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from vitune.eval.generate import Generator
from vitune.serve.app import create_app
from vitune.serve.engine import Engine


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
) -> FastAPI:
    """The API for a saved Llava checkpoint (plain transformers), served as `model_name` (default:
    the folder's name), with the checkpoint's own conversation template; `seed` seeds the seeds drawn
    for sampled requests that send none."""
    generator = Generator.from_dir(model_dir, device=device, batch_size=batch_size)
    engine = Engine(
        generator, max_tokens_cap=max_tokens_cap, batch_size=batch_size, max_wait_ms=max_wait_ms, seed=seed
    )
    name = model_name or Path(model_dir).resolve().name
    return create_app(engine, model_name=name, image_root=image_root)


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve until interrupted. One process: the model is loaded once and batches share it."""
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)


class BackgroundServer:
    """`app` served on 127.0.0.1 on a thread (port 0: a free one), as a context manager; `url` ends in /v1."""

    def __init__(self, app: FastAPI, port: int = 0, log_level: str = "warning") -> None:
        # Binding here, before uvicorn starts, gives a known port with no window for another process.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
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
        self._server.should_exit = True
        self._thread.join(30)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
