"""Kong 3.9 via Testcontainers: bring the stack up, send requests, judge them with the Kong model.

Needs a Docker engine; skipped where none runs (the machine this was written on has none, so these tests
were made right by construction: every expectation below is a Kong 3.9.3 fact from ``docs/kong-3.9.md``,
and the same checks pass on simulated Kong histories in ``tests/unit/test_verify_kong.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from quotaquake.load.recorder import HEADER_COLUMNS, NUMERIC_HEADER_COLUMNS
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import SCHEMA, write_part
from quotaquake.runfolder.models import (
    EngineRecord,
    Expectation,
    FaultKind,
    FaultWindow,
    InitialState,
    MonthlySeed,
    RunInfo,
    ServiceRole,
)
from quotaquake.stack import kong
from quotaquake.stack.docker.provider import DockerProvider, docker_available
from quotaquake.stack.state import Consumer, StackState
from quotaquake.verify.models.kong import reset_seconds

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")
FREE_PER_MINUTE = 100

pytestmark = [
    pytest.mark.docker,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not docker_available(),
        reason="needs a Docker engine (none runs on this machine); run where `docker info` works",
    ),
]


@pytest.fixture(scope="module")
def kong_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DockerProvider, StackState]]:
    root = tmp_path_factory.mktemp("kong")
    provider = DockerProvider(
        state_path=root / "stack.json",
        work_root=root,
        policy_path=REPO / "stack" / "policy.yaml",
        replicas=2,
        consumers_per_tier=1,
    )
    state = provider.up()
    try:
        yield provider, state
    finally:
        provider.down(state)


def wait_for_fresh_minute(margin_s: float = 20.0) -> None:
    """If fewer than ``margin_s`` seconds remain in this UTC minute, wait for the next one to begin."""
    remaining = 60.0 - (time.time() % 60.0)
    if remaining < margin_s:
        time.sleep(remaining + 0.2)


def send(
    gateway: str, consumer: Consumer, count: int, path: str = "/health", pause_s: float = 0.0
) -> list[dict[str, object]]:
    """``count`` sequential requests with the consumer's key, as history rows (the recorder's columns)."""
    rows: list[dict[str, object]] = []
    with httpx.Client(base_url=gateway, timeout=5.0) as client:
        for _ in range(count):
            time.sleep(pause_s)
            sent = time.time_ns()
            try:
                response: httpx.Response | None = client.get(path, headers={"apikey": consumer.key})
            except httpx.HTTPError:
                response = None
            rows.append(history_row(consumer, sent, (time.time_ns() - sent) / 1e6, response, path))
    return rows


def history_row(
    consumer: Consumer, sent_ns: int, latency_ms: float, response: httpx.Response | None, path: str
) -> dict[str, object]:
    row: dict[str, object] = {name: None for name in SCHEMA.names}
    row |= {"intended_ns": sent_ns, "sent_ns": sent_ns, "latency_ms": latency_ms, "consumer": consumer.id,
            "tier": consumer.tier, "endpoint": path, "method": "GET", "cost": POLICY.cost_of(path),
            "status": 0 if response is None else response.status_code, "worker": f"test-{os.getpid()}"}  # fmt: skip
    for column, names in HEADER_COLUMNS.items():  # what the load generator's recorder reads
        value = next((response.headers[n] for n in names if response is not None and n in response.headers), None)
        row[column] = float(value) if value is not None and column in NUMERIC_HEADER_COLUMNS else value
    return row


def write_run(
    run_dir: Path,
    rows: list[dict[str, object]],
    state: StackState,
    initial: InitialState,
    faults: list[FaultWindow] | None = None,
    seeds: list[MonthlySeed] | None = None,
) -> Path:
    folder = RunFolder(run_dir).create()
    write_part(folder.history_dir, "part-test-0.parquet", pa.Table.from_pylist(rows, schema=SCHEMA))
    started = datetime.fromtimestamp(min(int(str(r["sent_ns"])) for r in rows) / 1e9 - 0.5, tz=UTC)
    ended = datetime.now(UTC)
    folder.write_info(
        RunInfo(
            run_id=run_dir.name,
            scenario="docker-integration",
            started_at=started,
            ended_at=ended,
            provider="docker",
            replicas=state.replicas,
            model=state.model,
            kong=state.kong,
            policy=POLICY,
            initial_state=initial,
            load_exit_code=0,
        )
    )
    engine = EngineRecord(started_at=started, ended_at=ended, requests=len(rows), failures=0, monthly_seeds=seeds or [])
    folder.write_engine(engine)
    if faults is not None:
        folder.write_faults(faults)
    return run_dir


def verdicts(run_dir: Path) -> dict[str, str]:
    from quotaquake.verify.engine import verify_run

    return {v.check: v.status for v in verify_run(run_dir).verdicts}


def test_state_declares_kong_and_its_plugin(kong_stack: tuple[DockerProvider, StackState]) -> None:
    _, state = kong_stack
    assert state.provider == "docker" and state.model == "kong" and state.ready
    assert state.kong is not None and state.kong.policy == "redis" and state.kong.sync_rate_s == -1
    assert state.kong.redis_timeout_ms == POLICY.degradation.redis_timeout_ms
    assert {"redis", "postgres", "stub-api", "gateway-1", "gateway-2", "lb", "prometheus"} <= set(state.services)
    assert len(state.require_endpoints().replicas) == 2 and state.require_endpoints().prometheus


def test_a_fresh_consumer_gets_exactly_its_minute_quota_and_verifies(
    kong_stack: tuple[DockerProvider, StackState], tmp_path: Path
) -> None:
    # add_consumer returns once every replica shows the consumer's limits, and deletes what that cost
    provider, state = kong_stack
    consumer = provider.add_consumer(state, "free")
    wait_for_fresh_minute()
    rows = send(state.require_endpoints().gateway, consumer, FREE_PER_MINUTE + 30)
    statuses = [row["status"] for row in rows]
    if len({int(str(row["sent_ns"])) // 60_000_000_000 for row in rows}) == 1:  # one fixed window
        assert statuses.count(200) == FREE_PER_MINUTE and statuses.count(429) == 30  # handler.lua:100-110
    stopped = [row for row in rows if row["status"] == 429]
    assert all(row["retry_after"] is not None and row["rl_limit"] == FREE_PER_MINUTE for row in stopped)
    assert all(row["rl_remaining_month"] is not None for row in rows)  # rejections counted: month falls on
    result = verdicts(write_run(tmp_path / "fresh", rows, state, InitialState.RESET))
    assert result["quota-accuracy"] == result["headers"] == "pass", result


def test_a_second_run_right_after_a_reset_passes(kong_stack: tuple[DockerProvider, StackState], tmp_path: Path) -> None:
    provider, state = kong_stack
    consumer = state.consumers_of("free")[0]
    send(state.require_endpoints().gateway, consumer, FREE_PER_MINUTE + 5)  # spends this minute
    provider.reset_consumers(state)  # Kong's counters deleted by its key format
    rows = send(state.require_endpoints().gateway, consumer, 40)
    assert all(row["status"] == 200 for row in rows)
    result = verdicts(write_run(tmp_path / "after-reset", rows, state, InitialState.RESET))
    assert result["quota-accuracy"] == "pass", result


def test_month_seeded_in_kongs_key_stops_the_consumer(
    kong_stack: tuple[DockerProvider, StackState], tmp_path: Path
) -> None:
    provider, state = kong_stack
    consumer = provider.add_consumer(state, "free")
    redis_url = state.require_endpoints().redis
    assert redis_url is not None
    kong.seed_month_count(redis_url, kong.consumer_identifier(consumer), 50_000 - 5, time.time())
    rows = send(state.require_endpoints().gateway, consumer, 8)
    assert [row["status"] for row in rows] == [200] * 5 + [429] * 3
    # the month is the tightest window: RateLimit-Reset counts down a 30-day month (handler.lua:169-181)
    last_s = int(str(rows[-1]["sent_ns"])) // 1_000_000_000
    assert abs(float(str(rows[-1]["rl_reset"])) - reset_seconds("month", last_s)) <= 2
    seeds = [MonthlySeed(consumer=consumer.id, used=50_000 - 5)]
    run_dir = write_run(tmp_path / "month", rows, state, InitialState.RESET, seeds=seeds)
    assert verdicts(run_dir)["quota-accuracy"] == "pass"


def test_unknown_key_falls_back_to_the_anonymous_limit(kong_stack: tuple[DockerProvider, StackState]) -> None:
    _, state = kong_stack
    with httpx.Client(base_url=state.require_endpoints().gateway, timeout=5.0) as client:
        response = client.get("/health", headers={"apikey": "not-a-key", "X-Forwarded-For": "203.0.113.7"})
    assert response.status_code == 200
    assert float(response.headers["X-RateLimit-Limit-Minute"]) == POLICY.anonymous.per_minute


def test_a_redis_kill_is_an_unlimited_fail_open_as_declared(
    kong_stack: tuple[DockerProvider, StackState], tmp_path: Path
) -> None:
    provider, state = kong_stack
    consumer = provider.add_consumer(state, "free")
    gateway = state.require_endpoints().gateway
    rows = send(gateway, consumer, 10)
    redis = provider.handle(state, "redis")
    start = time.time()
    redis.kill()
    try:
        during = send(gateway, consumer, 30)
    finally:
        redis.restart()
    end = time.time()
    rows += during + send(gateway, consumer, 10, pause_s=0.3)  # 3 s after the restart: recovery observable
    assert all(row["status"] == 200 and row["rl_limit"] is None for row in during[5:])  # handler.lua:144-152
    window = FaultWindow(name="kill-redis", kind=FaultKind.OUTAGE, service="redis", role=ServiceRole.RATE_LIMIT_STORE,
                         expect=Expectation.FAIL_OPEN_UNLIMITED, start=start, end=end)  # fmt: skip
    result = verdicts(write_run(tmp_path / "redis-kill", rows, state, InitialState.RESET, faults=[window]))
    assert result["degradation"] == "pass" and result["quota-accuracy"] == "pass", result


def test_killed_replica_is_routed_around_and_restarts(kong_stack: tuple[DockerProvider, StackState]) -> None:
    provider, state = kong_stack
    handle = provider.handle(state, "gateway-2")
    handle.kill()
    assert not handle.is_running()
    try:
        with httpx.Client(base_url=state.require_endpoints().gateway, timeout=5.0) as client:
            answers = [client.get("/calibrate").status_code for _ in range(10)]
            health = client.get(kong.GATEWAY_HEALTH_PATH).status_code
        assert answers == [200] * 10 and health == 200
    finally:
        handle.restart()
    assert handle.is_running()
