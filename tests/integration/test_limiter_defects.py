"""Each seeded limiter defect is observable through the gateway (one small stack per defect)."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from quotaquake.services.stub_api import EXAMPLE_FINGERPRINT
from quotaquake.stack.registry import handle_for, provider_for
from quotaquake.stack.state import StackState

pytestmark = [pytest.mark.integration, pytest.mark.slow]

StackFactory = Callable[..., StackState]


def statuses(gateway: str, key: str, count: int, concurrency: int = 1) -> list[httpx.Response]:
    def one(client: httpx.Client) -> httpx.Response:
        return client.post("/identify", headers={"x-api-key": key}, json=EXAMPLE_FINGERPRINT)

    with httpx.Client(base_url=gateway, timeout=5.0, limits=httpx.Limits(max_connections=concurrency)) as client:
        if concurrency == 1:
            return [one(client) for _ in range(count)]
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda _i: one(client), range(count)))


def test_racy_over_admits_concurrent_requests(stack_factory: StackFactory) -> None:
    state = stack_factory(defect="racy", replicas=1)
    responses = statuses(
        state.require_endpoints().gateway, provider_for(state).add_consumer(state, "free").key, 300, concurrency=16
    )
    assert sum(r.status_code == 200 for r in responses) > 152  # the atomic script admits 150 (+2 refill)


def test_no_retry_after_drops_the_header(stack_factory: StackFactory) -> None:
    state = stack_factory(defect="no-retry-after", replicas=1)
    responses = statuses(state.require_endpoints().gateway, provider_for(state).add_consumer(state, "free").key, 160)
    limited = [r for r in responses if r.status_code == 429]
    assert limited and all("retry-after" not in r.headers for r in limited)


def test_fail_closed_rejects_while_redis_is_down(stack_factory: StackFactory) -> None:
    state = stack_factory(defect="fail-closed", replicas=1)
    key = provider_for(state).add_consumer(state, "free").key
    redis = handle_for(state, "redis")
    redis.kill()
    endpoints = state.require_endpoints()
    try:
        responses = statuses(endpoints.gateway, key, 5)
        direct = httpx.post(f"{endpoints.limiters[0]}/authz/identify", headers={"x-api-key": key}, timeout=5)
    finally:
        redis.restart()
    assert [r.status_code for r in responses] == [503] * 5
    # Envoy turns an authorization server's 5xx into its status_on_error (503) and drops the headers, so
    # the degradation marker is visible at the limiter (and in its metrics), not at the client.
    assert direct.status_code == 503 and direct.headers["x-quotaquake-degraded"] == "redis-unavailable"


def test_slow_adds_milliseconds_per_decision(stack_factory: StackFactory) -> None:
    state = stack_factory(defect="slow", replicas=1)
    endpoints = state.require_endpoints()
    statuses(endpoints.gateway, provider_for(state).add_consumer(state, "free").key, 20)
    text = httpx.get(f"{endpoints.limiters[0]}/metrics", timeout=5).text
    total = float(re.search(r"^quotaquake_limiter_decision_seconds_sum (\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    count = float(re.search(r"^quotaquake_limiter_decision_seconds_count (\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    assert count >= 20 and total / count >= 0.003
