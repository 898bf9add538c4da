"""The tier policy through the full local stack (LB -> Envoy replica -> limiter -> Redis -> stub API).

Issue 3's "Done when": bursts per tier, endpoint costs, 401, exempt /health, the monthly cut-off, and
Redis killed / restarted (on a separate 2-replica stack so the shared one stays intact).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from quotaquake.policy import load_policy
from quotaquake.services.limiter.keys import seed_month_usage
from quotaquake.services.stub_api import EXAMPLE_FINGERPRINT
from quotaquake.stack.processes import poll_until
from quotaquake.stack.registry import handle_for
from quotaquake.stack.state import Consumer, StackState

pytestmark = pytest.mark.integration

BURST = 200
REFILL_TOLERANCE = 2  # tokens refilled while the burst runs (free tier: 1.67 tokens/s)
BODIES: dict[str, dict[str, object]] = {
    "/identify": EXAMPLE_FINGERPRINT,
    "/compare": {"left": EXAMPLE_FINGERPRINT, "right": EXAMPLE_FINGERPRINT},
}


def burst(gateway: str, key: str | None, path: str = "/identify", count: int = BURST) -> list[httpx.Response]:
    """``count`` back-to-back requests on one keep-alive connection (a burst of about a second)."""
    headers = {"x-api-key": key} if key else {}
    with httpx.Client(base_url=gateway, timeout=5.0) as client:
        if path == "/health":
            return [client.get(path, headers=headers) for _ in range(count)]
        return [client.post(path, headers=headers, json=BODIES[path]) for _ in range(count)]


def admitted(responses: list[httpx.Response]) -> int:
    return sum(r.status_code == 200 for r in responses)


def assert_limited_correctly(responses: list[httpx.Response], expected: int) -> None:
    assert abs(admitted(responses) - expected) <= REFILL_TOLERANCE, [r.status_code for r in responses]
    assert {r.status_code for r in responses} <= {200, 429}
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
    remaining = [int(r.headers["x-ratelimit-remaining"]) for r in responses if r.status_code == 200]
    assert all(later <= earlier for earlier, later in itertools.pairwise(remaining)), remaining


def test_free_burst_admits_the_bucket_capacity(stack: StackState, fresh_consumer: Callable[[str], Consumer]) -> None:
    responses = burst(stack.require_endpoints().gateway, fresh_consumer("free").key)
    assert_limited_correctly(responses, expected=150)
    assert responses[0].headers["x-ratelimit-limit"] == "100"


def test_compare_costs_two_tokens(stack: StackState, fresh_consumer: Callable[[str], Consumer]) -> None:
    responses = burst(stack.require_endpoints().gateway, fresh_consumer("free").key, "/compare", count=100)
    assert_limited_correctly(responses, expected=75)


def test_pro_burst_is_all_admitted(stack: StackState, fresh_consumer: Callable[[str], Consumer]) -> None:
    responses = burst(stack.require_endpoints().gateway, fresh_consumer("pro").key)
    assert admitted(responses) == BURST


@pytest.mark.parametrize("tier", ["enterprise", "partner"])
def test_unlimited_tiers_are_never_limited(
    stack: StackState, fresh_consumer: Callable[[str], Consumer], tier: str
) -> None:
    responses = burst(stack.require_endpoints().gateway, fresh_consumer(tier).key, count=300)
    assert admitted(responses) == 300
    assert "x-ratelimit-remaining" not in responses[-1].headers


def test_invalid_key_is_401(stack: StackState) -> None:
    response = burst(stack.require_endpoints().gateway, "qq_not-a-key", count=1)[0]
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid authentication credentials"}


def test_health_is_never_limited(stack: StackState, fresh_consumer: Callable[[str], Consumer]) -> None:
    consumer = fresh_consumer("free")
    gateway = stack.require_endpoints().gateway
    assert admitted(burst(gateway, consumer.key)) < BURST  # the minute bucket is exhausted
    assert admitted(burst(gateway, consumer.key, "/health", count=50)) == 50


def test_monthly_quota_cuts_off(stack: StackState, fresh_consumer: Callable[[str], Consumer]) -> None:
    endpoints = stack.require_endpoints()
    assert endpoints.redis is not None and stack.policy_file is not None
    per_month = load_policy_month("free", stack.policy_file)
    consumer = fresh_consumer("free")
    seed_month_usage(endpoints.redis, consumer.id, per_month - 3)
    responses = burst(endpoints.gateway, consumer.key, count=6)
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429, 429]
    assert responses[2].headers["x-ratelimit-remaining-month"] == "0"
    assert int(responses[3].headers["retry-after"]) > 60  # waits for the next month, not the minute


def load_policy_month(tier: str, policy_file: str) -> int:
    limit = load_policy(Path(policy_file)).tiers[tier].per_month
    assert limit is not None
    return limit


def degraded_share(responses: list[httpx.Response]) -> float:
    return sum("x-quotaquake-degraded" in r.headers for r in responses) / len(responses)


@pytest.mark.slow
def test_redis_outage_degrades_to_local_buckets_and_recovers(stack_factory: Callable[..., StackState]) -> None:
    """Redis killed: per-replica fallback (2 replicas admit up to 2 buckets), marked degraded;
    Redis back: one shared bucket again."""
    from quotaquake.stack.registry import provider_for

    state = stack_factory(replicas=2)
    gateway = state.require_endpoints().gateway
    redis = handle_for(state, "redis")
    redis.kill()
    try:
        started = time.monotonic()
        during = burst(gateway, provider_for(state).add_consumer(state, "free").key, count=400)
        refill = 2 * (time.monotonic() - started) * 100 / 60  # both replicas' buckets refill meanwhile
        assert degraded_share(during) == 1.0
        assert 150 + REFILL_TOLERANCE < admitted(during) <= 2 * 150 + math.ceil(refill) + REFILL_TOLERANCE
    finally:
        redis.restart()
    probe = provider_for(state).add_consumer(state, "pro").key
    assert poll_until(lambda: degraded_share(burst(gateway, probe, count=4)) == 0.0, 15.0), "still degraded"
    after = burst(gateway, provider_for(state).add_consumer(state, "free").key)
    assert degraded_share(after) == 0.0
    assert_limited_correctly(after, expected=150)
