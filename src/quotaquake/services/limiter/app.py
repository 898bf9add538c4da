"""The limiter's HTTP face: a raw ASGI app (no framework) for Envoy's ext_authz HTTP service mode.

Routes: ``<METHOD> /authz<original path>`` (the decision), ``GET /ready`` (200 once the consumer registry
is loaded, else 503), ``GET /metrics`` (Prometheus text). Status codes and headers follow the
"Limiter <-> Envoy contract" table of docs/ARCHITECTURE.md; ``headers.py`` builds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from quotaquake.policy import ClientIpSource
from quotaquake.services.limiter.decider import Limiter
from quotaquake.services.limiter.headers import response_for

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LOG = logging.getLogger("quotaquake.limiter")
AUTHZ_PREFIX = "/authz"
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class LimiterApp:
    """ASGI application wrapping one ``Limiter``; starts the registry loader on lifespan startup."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self._trust_xff = limiter.policy.anonymous.client_ip is ClientIpSource.XFF
        self._registry_task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith(AUTHZ_PREFIX):
                await self._authz(scope, path[len(AUTHZ_PREFIX) :] or "/", send)
            elif path == "/ready":
                ready = self.limiter.registry.loaded
                await _respond(send, 200 if ready else 503, _TEXT, b"ready\n" if ready else b"loading registry\n")
            elif path == "/metrics":
                body = self.limiter.metrics.exposition()
                await _respond(send, 200, [(b"content-type", CONTENT_TYPE_LATEST.encode())], body)
            else:
                await _respond(send, 404, _TEXT, b"not found\n")
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _authz(self, scope: Scope, path: str, send: Send) -> None:
        started = time.perf_counter()
        api_key = fallback_key = forwarded = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value
            elif name == b"apikey":
                fallback_key = value
            elif name == b"x-forwarded-for":
                forwarded = value
        key = (api_key or fallback_key or b"").decode("latin-1").strip() or None
        verdict = await self.limiter.decide(key, self._client_ip(scope, forwarded), path.split("?", 1)[0])
        status, headers, body = response_for(verdict, self.limiter.retry_after_enabled)
        await _respond(send, status, headers, body)
        metrics = self.limiter.metrics
        metrics.decision(verdict.tier, _RESULTS[status])
        metrics.decision_seconds.observe(time.perf_counter() - started)

    def _client_ip(self, scope: Scope, forwarded: bytes | None) -> str:
        if self._trust_xff and forwarded:
            return forwarded.split(b",", 1)[0].strip().decode("latin-1")
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._registry_task = asyncio.create_task(self.limiter.registry.run())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _shutdown(self) -> None:
        if self._registry_task is not None:
            self._registry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._registry_task
        await self.limiter.close()


_RESULTS = {200: "allowed", 429: "limited", 401: "unauthorized", 503: "unavailable"}


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
