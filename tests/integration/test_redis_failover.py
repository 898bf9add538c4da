"""A replicated Redis (``--redis sentinel``) and a proxied one (``--redis proxied``) with real Redis,
Sentinels, Envoy and limiters: the failover and latency actions, what the limiters do meanwhile, and the
rollbacks that leave a healthy replicated set. The ``no-failover`` defect keeps the old primary."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from quotaquake.chaos import actions
from quotaquake.chaos.health import stack_problems
from quotaquake.chaos.targets import STATE_CONFIG_KEY
from quotaquake.faults.latency import active_delays
from quotaquake.services.limiter.keys import bucket_key
from quotaquake.services.limiter.shared import SharedBuckets
from quotaquake.stack.local import sentinel
from quotaquake.stack.registry import provider_for
from quotaquake.stack.state import Consumer, StackState, read_state
from quotaquake.stack.urls import with_password

pytestmark = pytest.mark.integration
FOLLOW_S = 1.35  # redis_retry_seconds + 2 x redis_timeout + slack (verify.checks.failover)
BUSY_MACHINE_S = 1.0  # the test's own requests on a shared 2-core machine


def configuration(state: StackState) -> dict[str, object]:
    return {STATE_CONFIG_KEY: state.state_file}


def fresh(state: StackState, tier: str = "pro") -> Consumer:
    return provider_for(state).add_consumer(state, tier)


def ask(state: StackState, consumer: Consumer, client: httpx.Client) -> tuple[int, str | None, str | None, float]:
    """One request through the LB: (status, degraded marker, replica, seconds it took)."""
    started = time.monotonic()
    answer = client.post(state.require_endpoints().gateway + "/identify", headers={"x-api-key": consumer.key}, json={})
    took = time.monotonic() - started
    headers = answer.headers
    return answer.status_code, headers.get("x-quotaquake-degraded"), headers.get("x-quotaquake-replica"), took


def shared_on_every_replica(state: StackState, consumer: Consumer, deadline_s: float) -> float | None:
    """Seconds until every gateway replica answered one shared (not degraded) decision; ``None`` if not."""
    started = time.monotonic()
    replicas = {f"gateway-{n}" for n in range(1, state.replicas + 1)}
    seen: set[str] = set()
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() - started < deadline_s:
            status, degraded, replica, _ = ask(state, consumer, client)
            if status in (200, 422, 429) and degraded is None and replica:
                seen.add(replica)
                if seen == replicas:
                    return time.monotonic() - started
            time.sleep(0.01)
    return None


def node_keys(state: StackState, node: str, consumer: Consumer) -> int:
    with redis.Redis.from_url(sentinel.data_nodes(read_state(Path(state.state_file)))[node]) as client:
        return int(client.exists(bucket_key(consumer.id)))


@pytest.fixture(scope="module")
def replicated(stack_factory: Callable[..., StackState]) -> StackState:
    return stack_factory(replicas=2, redis="sentinel")


def test_the_replicated_set_starts_healthy_and_the_limiters_decide_on_its_primary(replicated: StackState) -> None:
    state = read_state(Path(replicated.state_file))
    assert stack_problems(state) == []
    assert sorted(sentinel.data_nodes(state)) == ["redis-1", "redis-2"]
    assert sentinel.sentinel_config(state) == {"down-after-milliseconds": 1000, "failover-timeout": 3000, "quorum": 2}
    assert shared_on_every_replica(state, fresh(state), 5.0) is not None


def test_a_killed_primary_is_replaced_and_the_limiters_follow_within_their_retry(replicated: StackState) -> None:
    state = read_state(Path(replicated.state_file))
    before = sentinel.primary_node(state)
    consumer = fresh(state)
    out = actions.kill_redis_primary(configuration=configuration(state))
    assert out["primary"] == before and out["promoted"] not in (None, before)
    timeout_s = (float(out["down_after_ms"]) + float(out["failover_timeout_ms"])) / 1e3  # type: ignore[arg-type]
    assert 1.0 <= float(out["promotion_s"]) <= timeout_s  # type: ignore[arg-type]
    assert out["replicated_until"] is not None and len(out["offset_samples"]) >= 5  # type: ignore[arg-type]
    followed = shared_on_every_replica(state, consumer, FOLLOW_S + BUSY_MACHINE_S)
    assert followed is not None, "a limiter still degrades after the promotion"
    after = read_state(Path(state.state_file))
    assert sentinel.node_at(after, *sentinel.host_port(after.require_endpoints().redis or "")) == out["promoted"]
    restored = actions.restore_all(timeout_s=60, configuration=configuration(state))
    assert f"restarted {before}" in restored["actions"]  # type: ignore[operator]
    assert sentinel.set_problems(after) == []
    assert sentinel.replication(sentinel.data_nodes(after)[before])["role"] == "slave"


def test_a_stale_primary_is_demoted_and_never_written_to(replicated: StackState) -> None:
    state = read_state(Path(replicated.state_file))
    out = actions.pause_redis_primary(hold_s=3.0, configuration=configuration(state))
    stale, promoted = str(out["primary"]), str(out["promoted"])
    consumer = fresh(state)
    with httpx.Client(timeout=2.0) as client:
        answers = [ask(state, consumer, client) for _ in range(5)]
    assert all(degraded is None for _, degraded, _, _ in answers), answers
    assert sentinel.replication(sentinel.data_nodes(state)[stale])["role"] == "master"  # still stale
    assert (node_keys(state, stale, consumer), node_keys(state, promoted, consumer)) == (0, 1)
    healthy = actions.await_replicated_set(timeout_s=60, configuration=configuration(state))
    assert healthy["stale_primary_seen"] and healthy["demoted_at"] is not None
    assert healthy["primary"] == promoted and stack_problems(read_state(Path(state.state_file))) == []


def test_a_limiter_that_does_not_follow_keeps_degrading_after_the_promotion(
    stack_factory: Callable[..., StackState],
) -> None:
    state = stack_factory(replicas=1, redis="sentinel", defect="no-failover")
    consumer = fresh(state)
    assert shared_on_every_replica(state, consumer, 5.0) is not None
    out = actions.kill_redis_primary(configuration=configuration(state))
    assert out["promoted"] is not None
    time.sleep(FOLLOW_S + BUSY_MACHINE_S)
    with httpx.Client(timeout=2.0) as client:
        answers = [ask(state, consumer, client) for _ in range(5)]
    assert all(degraded == "redis-unavailable" for _, degraded, _, _ in answers), answers
    actions.restore_all(timeout_s=60, configuration=configuration(state))
    with httpx.Client(timeout=2.0) as client:  # the old node is a replica now: READONLY, still degraded
        assert ask(state, fresh(state), client)[1] == "redis-unavailable"


# --- latency through the proxy -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxied(stack_factory: Callable[..., StackState]) -> StackState:
    return stack_factory(replicas=1, redis="proxied")


def test_a_delay_at_the_timeout_degrades_and_below_it_is_waited_for(proxied: StackState) -> None:
    config = configuration(proxied)
    consumer = fresh(proxied)
    out = actions.delay_redis(50, configuration=config)
    assert out["runtime_key"] == "qq.redis.delay_50ms" and out["limiter_buckets"]
    time.sleep(0.2)
    with httpx.Client(timeout=2.0) as client:
        slow = [ask(proxied, consumer, client) for _ in range(20)]
        assert sum(degraded is not None for _, degraded, _, _ in slow) >= 15, slow
        actions.delay_redis(5, configuration=config)
        time.sleep(1.2)  # the limiter skips Redis for redis_retry_seconds after the last timeout
        waited = [ask(proxied, consumer, client) for _ in range(20)]
    assert all(degraded is None for _, degraded, _, _ in waited), waited
    assert sorted(took for *_, took in waited)[10] >= 0.005  # the median request waited the 5 ms delay
    restored = actions.restore_all(timeout_s=60, configuration=config)
    assert restored["redis_delay"]["delay_ms"] == 0  # type: ignore[index]
    assert active_delays(read_state(Path(proxied.state_file))) == []


def test_time_through_the_proxy_is_read_as_epoch_seconds(proxied: StackState) -> None:
    """Envoy answers TIME itself, in microseconds since the epoch: the racy defect's clock must still be now."""
    proxy = next(iter(proxied.require_endpoints().redis_proxies.values()))
    store = SharedBuckets(with_password(f"redis://{proxy}/0", "", sentinel.password_of(proxied)), 0.5, atomic=False)

    async def clock() -> float:
        from quotaquake.services.limiter.shared import _redis_time

        try:
            return _redis_time(await store._call(b"TIME"))
        finally:
            store.close()

    assert abs(asyncio.run(clock()) - time.time()) < 5.0


def test_a_dead_proxy_with_a_delay_on_is_restarted_without_it(proxied: StackState) -> None:
    """The rollback cannot ask a dead proxy which delay is on: it restarts it, and a restarted proxy delays
    nothing (its runtime keys start off). The window's end stays unrecorded rather than invented."""
    config = configuration(proxied)
    actions.delay_redis(50, configuration=config)
    proxy = read_state(Path(proxied.state_file)).services["redis-proxy"]
    assert proxy.pid is not None
    os.kill(proxy.pid, signal.SIGKILL)
    restored = actions.restore_all(timeout_s=60, configuration=config)
    assert "restarted redis-proxy" in restored["actions"]  # type: ignore[operator]
    assert "redis_delay" not in restored
    assert active_delays(read_state(Path(proxied.state_file))) == []
    assert stack_problems(read_state(Path(proxied.state_file))) == []
