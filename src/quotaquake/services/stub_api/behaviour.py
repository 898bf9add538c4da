"""What a POST route answers, independent of the web framework: ``StubBehaviour.answer(path, body)``.

Order per request: body -> 422 if missing, empty or invalid (no simulated latency) -> simulated
latency (awaits ``sleep``, default ``asyncio.sleep``) -> error injection (``error_status`` with
``x-quotaquake-injected: true``) -> the JSON answer.

Bodies are validated with pydantic-core's JSON parser in one step (``Model.model_validate_json``) and
answers are serialised once (``model_dump_json``): no ``json.loads`` + validate + ``jsonable_encoder``.
422 bodies have FastAPI's shape: ``{"detail": [{"type", "loc", "msg", "input"}, ...]}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ValidationError

from quotaquake.services.stub_api import scoring
from quotaquake.services.stub_api.faults import ErrorInjector, LatencyModel
from quotaquake.services.stub_api.metrics import StubMetrics
from quotaquake.services.stub_api.models import (
    BatchRequest,
    BatchResponse,
    CompareRequest,
    CompareResponse,
    ErrorResponse,
    Fingerprint,
)
from quotaquake.services.stub_api.settings import StubSettings

Sleep = Callable[[float], Awaitable[None]]
INJECTED_HEADER: Final = "x-quotaquake-injected"
MISSING_BODY: Final = b'{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}'


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, JSON body bytes, extra headers (lower-case names)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Operation:
    request_model: type[BaseModel]
    compute: Callable[[BaseModel], BaseModel]


def _identify(request: BaseModel) -> BaseModel:
    assert isinstance(request, Fingerprint)
    return scoring.identify(request)


def _compare(request: BaseModel) -> BaseModel:
    assert isinstance(request, CompareRequest)
    result: CompareResponse = scoring.compare(request.left, request.right)
    return result


def _batch(request: BaseModel) -> BaseModel:
    assert isinstance(request, BatchRequest)
    results = [scoring.identify(fingerprint) for fingerprint in request.fingerprints]
    return BatchResponse(count=len(results), results=results)


OPERATIONS: Final[dict[str, _Operation]] = {
    "/identify": _Operation(Fingerprint, _identify),
    "/compare": _Operation(CompareRequest, _compare),
    "/batch": _Operation(BatchRequest, _batch),
}
POST_ROUTES: Final = tuple(OPERATIONS)


class StubBehaviour:
    """Latency model, error injection and scoring for the POST routes of one app."""

    def __init__(self, settings: StubSettings, metrics: StubMetrics, sleep: Sleep = asyncio.sleep) -> None:
        self.latency = LatencyModel(settings.latency_median_ms, settings.latency_sigma, settings.seed)
        self.faults = ErrorInjector(settings.error_rate, settings.error_status, settings.seed)
        self.metrics = metrics
        self.sleep = sleep
        injected = ErrorResponse(error="injected fault", status=settings.error_status)
        self._injected = Answer(
            settings.error_status, injected.model_dump_json().encode(), ((INJECTED_HEADER, "true"),)
        )

    async def answer(self, path: str, body: bytes) -> Answer:
        """The answer to ``POST path`` with ``body``; ``path`` must be one of ``POST_ROUTES``."""
        operation = OPERATIONS[path]
        if not body:
            return Answer(422, MISSING_BODY)
        try:
            parsed = operation.request_model.model_validate_json(body)
        except ValidationError as exc:
            detail = exc.json(include_url=False, include_context=False).encode()
            return Answer(422, b'{"detail":' + detail + b"}")
        delay = self.latency.next_delay_s()
        if delay > 0:
            await self.sleep(delay)
        if self.faults.should_fail():
            self.metrics.injected_errors.labels(path).inc()
            return self._injected
        return Answer(200, operation.compute(parsed).model_dump_json().encode())
