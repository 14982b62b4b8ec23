"""Micro-batching: requests from many HTTP handlers answered together on one worker thread.

A handler `submit`s an item and gets a `concurrent.futures.Future`. The worker takes the first
waiting item, then collects more for up to `max_wait_s` or until `batch_size` are in hand, and calls
`handle(items)` once for all of them. One thread runs every batch because the model is not
thread-safe (and a second concurrent generate would only compete for the same cores).

`handle` returns one result per item, in order; an item's result that is an exception is raised
to that item's caller only, so one bad request does not fail its batch-mates. If `handle` itself
raises, every item of the batch gets that error. Items whose caller went away (cancelled future)
are dropped before the batch runs. `stop` is graceful: what was submitted before it still runs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)
_STOP = object()


class MicroBatcher:
    """Collects submitted items into batches for `handle`, run on a single worker thread."""

    def __init__(
        self,
        handle: Callable[[list[Any]], Sequence[Any]],
        *,
        batch_size: int = 8,
        max_wait_s: float = 0.01,
        keep_sizes: int = 1000,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self.handle = handle
        self.on_batch = on_batch  # called with each batch's size (metrics)
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # What tests and operators read (`/vitune/stats`): recent batch sizes and totals.
        self.batch_sizes: deque[int] = deque(maxlen=keep_sizes)
        self.n_items = 0
        self.n_batches = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="vitune-serve-worker", daemon=True)
                self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the batch in progress, fail what is still queued, and end the worker."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the worker thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def pending(self) -> int:
        """Items waiting for a batch (approximate while the worker is collecting)."""
        return self._queue.qsize()

    def submit(self, item: Any) -> Future:
        if self._thread is None:
            raise RuntimeError("the batcher is not running (call start())")
        fut: Future = Future()
        self._queue.put((item, fut))
        return fut

    def _collect(self, first: Any) -> tuple[list[Any], bool]:
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.batch_size:
            left = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)
        return batch, False

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stopping = self._collect(first)
            live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            if live:
                self._run(live)
        # Whatever arrived after the stop signal is failed, so no caller waits forever.
        while True:
            try:
                rest = self._queue.get_nowait()
            except queue.Empty:
                return
            if rest is not _STOP and rest[1].set_running_or_notify_cancel():
                rest[1].set_exception(RuntimeError("the server is shutting down"))

    def _run(self, batch: list[tuple[Any, Future]]) -> None:
        self.batch_sizes.append(len(batch))
        self.n_items += len(batch)
        self.n_batches += 1
        if self.on_batch is not None:
            self.on_batch(len(batch))
        try:
            results = list(self.handle([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"handle returned {len(results)} results for {len(batch)} items")
        except Exception as e:
            log.exception("batch of %d failed", len(batch))
            for _, fut in batch:
                fut.set_exception(e)
            return
        for (_, fut), res in zip(batch, results, strict=True):
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.n_items,
            "batches": self.n_batches,
            "batch_sizes": list(self.batch_sizes),
            "batch_size": self.batch_size,
            "max_wait_ms": self.max_wait_s * 1000.0,
        }
