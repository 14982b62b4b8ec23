"""`GET /metrics`: the server's counters in Prometheus' text format (`prometheus_client`).

Each app has its own registry (tests and notebooks run several servers in one process). Route
labels are the server's own routes, anything else is `other`, so hostile paths cannot grow the
label set without bound.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

ROUTES = ("/v1/chat/completions", "/v1/models", "/health", "/metrics", "/vitune/stats")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Requests by route and status, latency, batch sizes, queue length and time to first token."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "vitune_requests", "HTTP requests answered, by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "vitune_request_seconds",
            "Time from a request's arrival to its last byte, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "vitune_batch_size", "Requests per worker batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.first_token = Histogram(
            "vitune_time_to_first_token_seconds",
            "Streamed requests: time from arrival to the first text chunk",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue = Gauge("vitune_queue_length", "Requests waiting for the worker", registry=r)
        self.admitted = Gauge(
            "vitune_requests_in_flight", "Chat requests being prepared or waiting for the worker", registry=r
        )

    def track_queue(self, pending: Callable[[], int]) -> None:
        self.queue.set_function(pending)

    def observe(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else "other"
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
