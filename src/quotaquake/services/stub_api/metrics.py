"""Prometheus metrics of the stub API and the pure-ASGI middleware that records them.

Metrics live in a registry owned by one app (no import-time globals). With several worker processes
(``--workers N > 1``) each worker writes to ``$PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates
all workers, so counters do not jump between workers' values from one scrape to the next.

- ``quotaquake_stub_requests_total{route,method,status}``: answered requests.
- ``quotaquake_stub_request_duration_seconds{route}``: time in the app, including simulated latency.
- ``quotaquake_stub_injected_errors_total{route}``: answers replaced by the injected error status.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV_VAR: Final = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE: Final = "unmatched"  # label for paths outside the API, to bound label cardinality
# Seconds. Fine below 10 ms where the default latency model lives; coarse up to the 1 s tail.
DURATION_BUCKETS: Final = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class StubMetrics:
    """The stub API's metrics in their own registry; ``exposition()`` renders the Prometheus text."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self._multiprocess_dir = multiprocess_dir
        self.requests = Counter(
            "quotaquake_stub_requests_total",
            "Requests answered by the stub API.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "quotaquake_stub_request_duration_seconds",
            "Seconds from request start until the response is sent, including simulated latency.",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.injected_errors = Counter(
            "quotaquake_stub_injected_errors_total",
            "Answers replaced by the injected error status.",
            ["route"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """Prometheus text format: this process's registry, or every worker's in multiprocess mode."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(aggregate)


def multiprocess_dir_from_env() -> str | None:
    """The multiprocess directory if the server set one up for several workers, else None."""
    return os.environ.get(MULTIPROC_ENV_VAR) or None


class MetricsMiddleware:
    """Counts and times every HTTP request; a plain ASGI wrapper (much cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, metrics: StubMetrics, routes: Iterable[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before answering, the server answers 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            path = scope["path"]
            route = path if path in self.routes else UNMATCHED_ROUTE
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.duration.labels(route).observe(time.perf_counter() - started)
