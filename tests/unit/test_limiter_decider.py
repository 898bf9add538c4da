"""The decider's branches with fakes for Redis and the registry: auth, degradation, defects, headers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from quotaquake.policy import DegradationMode, Policy, load_policy
from quotaquake.services.limiter.app import LimiterApp
from quotaquake.services.limiter.bucket import Outcome, Quota, decide, refilled
from quotaquake.services.limiter.decider import REDIS_UNAVAILABLE, REGISTRY_UNAVAILABLE, Limiter
from quotaquake.services.limiter.defects import Defect
from quotaquake.services.limiter.headers import response_for
from quotaquake.services.limiter.metrics import LimiterMetrics
from quotaquake.services.limiter.registry import Identity, RegistryUnavailable
from quotaquake.services.limiter.resp import RedisUnavailable

POLICY = load_policy(Path(__file__).resolve().parents[2] / "stack" / "policy.yaml")
KEYS = {"free-key": Identity("free-1", "free"), "ent-key": Identity("ent-1", "enterprise")}


class FakeRegistry:
    loaded = True

    def __init__(self, down: bool = False) -> None:
        self.down = down

    def cached(self, key: str) -> Identity | None:
        return None

    async def lookup(self, key: str) -> Identity | None:
        if self.down:
            raise RegistryUnavailable("down")
        return KEYS.get(key)

    async def run(self) -> None:
        await asyncio.sleep(3600)

    async def close(self) -> None:
        pass


class FakeShared:
    """Python-model buckets standing in for Redis; ``up=False`` makes every call fail."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0
        self.state: dict[str, tuple[float | None, float]] = {}

    def on_primary_change(self, callback: object) -> None:
        self.primary_change = callback

    async def decide(self, consumer: str, quota: Quota, cost: float, month: str, month_ttl: int) -> Outcome:
        self.calls += 1
        if not self.up:
            raise RedisUnavailable("down")
        tokens, used = self.state.get(consumer, (None, 0.0))
        outcome = decide(quota, cost, refilled(quota, tokens, 0.0 if tokens is not None else None, 0.0), used)
        if outcome.allowed:
            self.state[consumer] = (outcome.tokens, outcome.month_used)
        return outcome

    def close(self) -> None:
        pass


def make(policy: Policy = POLICY, defect: Defect | None = None, registry_down: bool = False):
    shared = FakeShared()
    limiter = Limiter(policy, FakeRegistry(registry_down), shared, LimiterMetrics(), defect)  # type: ignore[arg-type]
    return limiter, shared


def run(coro):
    return asyncio.run(coro)


def test_free_key_gets_consumer_and_rate_limit_headers() -> None:
    limiter, _ = make()
    verdict = run(limiter.decide("free-key", "1.1.1.1", "/identify"))
    status, headers, _ = response_for(verdict)
    names = dict(headers)
    assert status == 200
    assert names[b"x-consumer-id"] == b"free-1" and names[b"x-consumer-tier"] == b"free"
    assert names[b"x-ratelimit-limit"] == b"100" and names[b"x-ratelimit-remaining"] == b"149"
    assert names[b"ratelimit-policy"] == b'"minute";q=100;w=60;burst=150'
    assert names[b"x-ratelimit-remaining-month"] == b"49999"
    assert b"x-quotaquake-degraded" not in names


def test_burst_of_a_fresh_free_key_admits_the_capacity_then_429_with_retry_after() -> None:
    limiter, _ = make()
    verdicts = [run(limiter.decide("free-key", "ip", "/identify")) for _ in range(160)]
    assert sum(v.status == 200 for v in verdicts) == 150
    rejected = verdicts[150]
    assert rejected.status == 429
    assert dict(response_for(rejected)[1])[b"retry-after"] == b"1"


def test_compare_costs_two() -> None:
    limiter, _ = make()
    assert sum(run(limiter.decide("free-key", "ip", "/compare")).status == 200 for _ in range(100)) == 75


def test_unknown_key_is_401_and_unlimited_tier_skips_redis() -> None:
    limiter, shared = make()
    assert run(limiter.decide("nope", "ip", "/identify")).status == 401
    verdict = run(limiter.decide("ent-key", "ip", "/identify"))
    status, headers, _ = response_for(verdict)
    assert status == 200 and shared.calls == 0
    assert not any(name.startswith(b"x-ratelimit") for name, _ in headers)


def test_keyless_requests_are_limited_per_client_ip() -> None:
    limiter, _ = make()
    first = [run(limiter.decide(None, "10.0.0.1", "/identify")).status for _ in range(31)]
    other = run(limiter.decide(None, "10.0.0.2", "/identify"))
    assert first.count(200) == 30 and first[-1] == 429
    assert other.status == 200 and other.consumer_id == "anon:10.0.0.2"


def test_registry_outage_answers_503_for_an_uncached_key() -> None:
    limiter, _ = make(registry_down=True)
    verdict = run(limiter.decide("free-key", "ip", "/identify"))
    assert verdict.status == 503 and verdict.degraded == REGISTRY_UNAVAILABLE


def test_redis_down_fails_open_to_local_buckets_then_resumes_shared() -> None:
    limiter, shared = make()
    shared.up = False
    verdict = run(limiter.decide("free-key", "ip", "/identify"))
    assert verdict.status == 200 and verdict.degraded == REDIS_UNAVAILABLE
    assert dict(response_for(verdict)[1])[b"x-quotaquake-degraded"] == b"redis-unavailable"
    calls = shared.calls
    run(limiter.decide("free-key", "ip", "/identify"))
    assert shared.calls == calls, "redis must be skipped during redis_retry_seconds"
    shared.up = True
    limiter._skip_redis_until = 0.0  # the retry period has passed
    verdict = run(limiter.decide("free-key", "ip", "/identify"))
    assert verdict.degraded is None and not limiter.redis_degraded


def test_policy_fail_closed_answers_503() -> None:
    policy = POLICY.model_copy(
        update={
            "degradation": POLICY.degradation.model_copy(update={"on_redis_unavailable": DegradationMode.FAIL_CLOSED})
        }
    )
    limiter, shared = make(policy=policy)
    shared.up = False
    assert run(limiter.decide("free-key", "ip", "/identify")).status == 503


def test_fail_closed_defect_answers_503_although_policy_fails_open() -> None:
    limiter, shared = make(defect=Defect.FAIL_CLOSED)
    shared.up = False
    verdict = run(limiter.decide("free-key", "ip", "/identify"))
    assert verdict.status == 503 and dict(response_for(verdict)[1])[b"x-quotaquake-degraded"]


def test_no_retry_after_defect_drops_the_header() -> None:
    limiter, _ = make(defect=Defect.NO_RETRY_AFTER)
    verdicts = [run(limiter.decide("free-key", "ip", "/identify")) for _ in range(151)]
    status, headers, _ = response_for(verdicts[-1], limiter.retry_after_enabled)
    assert status == 429 and b"retry-after" not in dict(headers)


def test_slow_defect_adds_milliseconds() -> None:
    import time

    limiter, _ = make(defect=Defect.SLOW)
    started = time.perf_counter()
    run(limiter.decide("free-key", "ip", "/identify"))
    assert time.perf_counter() - started >= 0.003


def asgi_call(app: LimiterApp, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[bytes, bytes]]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": path, "headers": headers, "client": ("127.0.0.1", 1)}
    run(app(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"])


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/authz/identify", [(b"x-api-key", b"free-key")], 200),
        ("/authz/identify", [(b"apikey", b"free-key")], 200),
        ("/authz/identify", [(b"x-api-key", b"bad")], 401),
        ("/authz/health", [(b"x-forwarded-for", b"9.9.9.9, 10.0.0.1")], 200),
        ("/ready", [], 200),
        ("/nothing", [], 404),
    ],
)
def test_asgi_routes(path: str, headers: list[tuple[bytes, bytes]], status: int) -> None:
    limiter, _ = make()
    assert asgi_call(LimiterApp(limiter), path, headers)[0] == status


def test_metrics_count_decisions_by_tier_and_result() -> None:
    limiter, _ = make()
    app = LimiterApp(limiter)
    asgi_call(app, "/authz/identify", [(b"x-api-key", b"free-key")])
    asgi_call(app, "/authz/identify", [(b"x-api-key", b"bad")])
    text = limiter.metrics.exposition().decode()
    assert 'quotaquake_limiter_decisions_total{result="allowed",tier="free"} 1.0' in text
    assert 'quotaquake_limiter_decisions_total{result="unauthorized",tier="invalid"} 1.0' in text
    assert "quotaquake_limiter_decision_seconds_count 2.0" in text
