"""Routes of the stub API through httpx's ASGI transport (in-process, no server).

Every route test runs twice: through the pure-ASGI fast path (the default) and through FastAPI's
router (``fast_path=False``), which must answer the same.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from quotaquake.services.stub_api import EXAMPLE_FINGERPRINT, StubSettings, create_app

NO_LATENCY = StubSettings(latency_median_ms=0)
OTHER = {**EXAMPLE_FINGERPRINT, "canvas_hash": "0123456789abcdef"}


class AsgiClient:
    """A synchronous face on ``httpx.AsyncClient`` + ``ASGITransport``, with its own event loop.

    (Starlette's TestClient now warns unless the ``httpx2`` package is installed.)
    """

    def __init__(self, app: FastAPI) -> None:
        self._loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://stub.test")

    def __enter__(self) -> AsgiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.post(url, **kwargs))


class RecordingSleep:
    """Stands in for ``asyncio.sleep``: records the requested delays (seconds) and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture(params=[True, False], ids=["fast-path", "fastapi-router"])
def client(request: pytest.FixtureRequest) -> Iterator[AsgiClient]:
    with AsgiClient(create_app(NO_LATENCY, fast_path=request.param)) as test_client:
        yield test_client


def metric(client: AsgiClient, name: str, **labels: str) -> float:
    """The value of one sample in /metrics, 0.0 if absent."""
    text = client.get("/metrics").text
    rendered = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(rendered)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_identify_answers_visitor_confidence_and_attributes(client: AsgiClient) -> None:
    response = client.post("/identify", json=EXAMPLE_FINGERPRINT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"visitor_id", "confidence", "matched_attributes"}
    assert re.fullmatch(r"fp_[0-9a-f]{20}", body["visitor_id"])
    assert body["matched_attributes"] == ["canvas_hash", "user_agent", "screen", "timezone"]
    assert body["confidence"] == pytest.approx(0.44)


def test_identify_is_stable_and_distinguishes_devices(client: AsgiClient) -> None:
    first = client.post("/identify", json=EXAMPLE_FINGERPRINT).json()["visitor_id"]
    again = client.post("/identify", json={**EXAMPLE_FINGERPRINT, "collector_version": "9"}).json()["visitor_id"]
    other = client.post("/identify", json=OTHER).json()["visitor_id"]
    assert first == again != other


def test_compare_scores_similarity(client: AsgiClient) -> None:
    same = client.post("/compare", json={"left": EXAMPLE_FINGERPRINT, "right": EXAMPLE_FINGERPRINT}).json()
    assert same["similarity"] == 1.0 and same["same_visitor"] is True
    differ = client.post("/compare", json={"left": EXAMPLE_FINGERPRINT, "right": OTHER}).json()
    assert differ["differing_attributes"] == ["canvas_hash"]
    assert differ["similarity"] == pytest.approx(round(0.24 / 0.44, 4))
    assert differ["same_visitor"] is False


def test_batch_answers_one_result_per_fingerprint_in_order(client: AsgiClient) -> None:
    response = client.post("/batch", json={"fingerprints": [EXAMPLE_FINGERPRINT, OTHER, EXAMPLE_FINGERPRINT]})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    ids = [result["visitor_id"] for result in body["results"]]
    assert ids[0] == ids[2] != ids[1]


@pytest.mark.parametrize("size", [0, 101])
def test_batch_size_outside_1_to_100_is_422(client: AsgiClient, size: int) -> None:
    response = client.post("/batch", json={"fingerprints": [EXAMPLE_FINGERPRINT] * size})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["fingerprints"]


@pytest.mark.parametrize("path", ["/identify", "/compare", "/batch"])
def test_missing_body_is_422_field_required(client: AsgiClient, path: str) -> None:
    response = client.post(path)
    assert response.status_code == 422
    assert response.json() == {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]}


@pytest.mark.parametrize(
    ("content", "location"),
    [
        (b"{not json", []),
        (b'{"user_agent": 5}', ["user_agent"]),
        (b'{"timezone": "UTC"}', ["user_agent"]),
        (b'{"user_agent": "x", "canvas_hash": "not-hex"}', ["canvas_hash"]),
        (b'{"user_agent": "x", "screen": {"width": 0, "height": 10}}', ["screen", "width"]),
    ],
)
def test_invalid_body_is_422_naming_the_field(client: AsgiClient, content: bytes, location: list[str]) -> None:
    response = client.post("/identify", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == location


def test_health_is_200_json(client: AsgiClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["service"] == "stub-api"


def test_wrong_method_and_unknown_path(client: AsgiClient) -> None:
    assert client.get("/identify").status_code == 405
    assert client.post("/nope", json={}).status_code == 404


def test_metrics_count_requests_by_route_and_status(client: AsgiClient) -> None:
    client.post("/identify", json=EXAMPLE_FINGERPRINT)
    client.post("/identify", json=EXAMPLE_FINGERPRINT)
    client.post("/identify")
    client.get("/nope")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    identify = {"route": "/identify", "method": "POST"}
    assert metric(client, "quotaquake_stub_requests_total", **identify, status="200") == 2.0
    assert metric(client, "quotaquake_stub_requests_total", **identify, status="422") == 1.0
    assert metric(client, "quotaquake_stub_requests_total", route="unmatched", method="GET", status="404") == 1.0
    assert metric(client, "quotaquake_stub_request_duration_seconds_count", route="/identify") == 3.0
    assert metric(client, "quotaquake_stub_request_duration_seconds_bucket", route="/identify", le="+Inf") == 3.0


@pytest.mark.parametrize("fast_path", [True, False])
def test_error_rate_one_answers_error_status_on_api_routes_only(fast_path: bool) -> None:
    settings = StubSettings(latency_median_ms=0, error_rate=1.0, error_status=503)
    with AsgiClient(create_app(settings, fast_path=fast_path)) as client:
        for path, body in [("/identify", EXAMPLE_FINGERPRINT), ("/batch", {"fingerprints": [EXAMPLE_FINGERPRINT]})]:
            response = client.post(path, json=body)
            assert response.status_code == 503
            assert response.headers["x-quotaquake-injected"] == "true"
            assert response.json() == {"error": "injected fault", "status": 503}
        assert client.post("/identify").status_code == 422  # validation comes before injection
        assert client.get("/health").status_code == 200
        assert metric(client, "quotaquake_stub_injected_errors_total", route="/identify") == 1.0
        assert metric(client, "quotaquake_stub_requests_total", route="/identify", method="POST", status="503") == 1.0


def test_error_rate_zero_never_injects() -> None:
    with AsgiClient(create_app(StubSettings(latency_median_ms=0, error_rate=0.0))) as client:
        statuses = {client.post("/identify", json=EXAMPLE_FINGERPRINT).status_code for _ in range(50)}
    assert statuses == {200}


@pytest.mark.parametrize("fast_path", [True, False])
def test_latency_model_sleeps_per_valid_post_request(fast_path: bool) -> None:
    sleep = RecordingSleep()
    settings = StubSettings(latency_median_ms=5.0, latency_sigma=0.0)
    with AsgiClient(create_app(settings, sleep=sleep, fast_path=fast_path)) as client:
        client.post("/identify", json=EXAMPLE_FINGERPRINT)
        client.post("/compare", json={"left": EXAMPLE_FINGERPRINT, "right": OTHER})
        client.post("/identify")  # 422: no simulated latency
        client.get("/health")
    assert sleep.delays == [0.005, 0.005]


def test_seeded_latency_sequence_is_reproducible() -> None:
    def delays(seed: int) -> list[float]:
        sleep = RecordingSleep()
        with AsgiClient(create_app(StubSettings(seed=seed), sleep=sleep)) as client:
            for _ in range(5):
                client.post("/identify", json=EXAMPLE_FINGERPRINT)
        return sleep.delays

    assert delays(4) == delays(4) != delays(5)
    assert len(delays(4)) == 5


def test_real_sleep_delays_the_answer() -> None:
    # 30 ms constant latency with the real asyncio.sleep: the answer cannot arrive sooner.
    import time

    with AsgiClient(create_app(StubSettings(latency_median_ms=30.0, latency_sigma=0.0))) as client:
        started = time.perf_counter()
        assert client.post("/identify", json=EXAMPLE_FINGERPRINT).status_code == 200
        assert time.perf_counter() - started >= 0.03


def test_openapi_documents_the_routes(client: AsgiClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/identify", "/compare", "/batch", "/health", "/metrics"} <= set(paths)
    assert "IdentifyResponse" in str(paths["/identify"]["post"]["responses"]["200"])
