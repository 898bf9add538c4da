"""The stub fingerprint API as a FastAPI app: ``create_app(settings)``.

Routes: POST /identify, POST /compare, POST /batch, GET /health, GET /metrics (Prometheus text).
POST answers come from ``StubBehaviour`` (latency, error injection, scoring; see ``behaviour.py``),
served by ``FastPathMiddleware`` by default for speed (see ``fastpath.py``); /health and /metrics never
sleep and never fail by injection. A missing or empty POST body is 422 (``{"detail": [...]}``).
"""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import FastAPI, Request, Response

from quotaquake.services.stub_api.behaviour import POST_ROUTES, Sleep, StubBehaviour
from quotaquake.services.stub_api.fastpath import FastPathMiddleware
from quotaquake.services.stub_api.metrics import MetricsMiddleware, StubMetrics, multiprocess_dir_from_env
from quotaquake.services.stub_api.models import BatchResponse, CompareResponse, HealthResponse, IdentifyResponse
from quotaquake.services.stub_api.settings import SETTINGS_ENV_VAR, StubSettings

API_ROUTES = (*POST_ROUTES, "/health", "/metrics")
JSON = "application/json"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def create_app(
    settings: StubSettings | None = None,
    *,
    metrics: StubMetrics | None = None,
    sleep: Sleep = asyncio.sleep,
    fast_path: bool = True,
) -> FastAPI:
    """A fresh app with its own latency/error streams and metrics registry.

    ``sleep`` is injectable for tests; ``fast_path=False`` serves POSTs through FastAPI's router.
    """
    settings = settings or StubSettings()
    metrics = metrics or StubMetrics(multiprocess_dir_from_env())
    behaviour = StubBehaviour(settings, metrics, sleep)
    app = FastAPI(title="quotaquake stub fingerprint API", version="1.0", redoc_url=None)
    app.state.settings = settings
    app.state.metrics = metrics
    _add_post_routes(app, behaviour)
    _add_service_routes(app, metrics)
    if fast_path:
        app.add_middleware(FastPathMiddleware, behaviour=behaviour)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=API_ROUTES)
    return app


def _add_post_routes(app: FastAPI, behaviour: StubBehaviour) -> None:
    async def post(request: Request) -> Response:
        answer = await behaviour.answer(request.scope["path"], await request.body())
        return Response(answer.body, status_code=answer.status, headers=dict(answer.headers), media_type=JSON)

    app.post("/identify", response_model=IdentifyResponse, summary="Identify a visitor")(post)
    app.post("/compare", response_model=CompareResponse, summary="Compare two fingerprints")(post)
    app.post("/batch", response_model=BatchResponse, summary="Identify up to 100 visitors")(post)


def _add_service_routes(app: FastAPI, metrics: StubMetrics) -> None:
    started = time.monotonic()

    @app.get("/health", response_model=HealthResponse)
    async def health() -> Response:
        body = HealthResponse(status="ok", service="stub-api", uptime_s=round(time.monotonic() - started, 3))
        return Response(body.model_dump_json().encode(), media_type=JSON)

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(metrics.exposition(), media_type=PROMETHEUS_TEXT)


def app_from_env() -> FastAPI:
    """Factory for worker processes: settings from ``$QUOTAQUAKE_STUB_API_SETTINGS`` (JSON).

    With several workers each one seeds its streams from ``(seed, pid)``: the delay distribution is
    the configured one, but the exact sequence is not reproducible (which worker serves a request is
    not either).
    """
    settings = StubSettings.model_validate_json(os.environ[SETTINGS_ENV_VAR])
    if settings.workers > 1:
        settings = settings.model_copy(update={"seed": settings.seed * 1_000_003 + os.getpid()})
    return create_app(settings)
