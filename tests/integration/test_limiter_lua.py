"""decide.lua on a real redis-server (started here in a tmp dir, always stopped): the same table as the
Python model, the key helpers, the racy defect's over-admission, and timeouts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from quotaquake.services.limiter.bucket import Quota
from quotaquake.services.limiter.keys import (
    bucket_key,
    current_month,
    month_key,
    reset_consumer,
    seed_month_usage,
)
from quotaquake.services.limiter.resp import RedisUnavailable
from quotaquake.services.limiter.shared import SharedBuckets
from quotaquake.stack.processes import free_port, poll_until
from tests.unit.test_limiter_bucket import CASES, SMALL, assert_matches

pytestmark = pytest.mark.integration

BASE = 1_800_000_000.0  # injected epoch seconds: integral, so refill arithmetic is exact
MONTH = "2027-01"
TTL = 3600


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    folder: Path = tmp_path_factory.mktemp("redis")
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=0.5)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    try:
        assert poll_until(answers, 10.0), "redis-server did not start"
        yield url, proc
    finally:
        client.close()
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.mark.parametrize("name", list(CASES))
def test_lua_follows_the_table(redis_server: tuple[str, subprocess.Popen[bytes]], name: str) -> None:
    url, _ = redis_server
    quota, steps = CASES[name]
    consumer = f"table-{name}"
    reset_consumer(url, consumer)

    async def replay() -> None:
        shared = SharedBuckets(url, 1.0)
        try:
            for index, step in enumerate(steps):
                outcome = await shared.decide(consumer, quota, step.cost, MONTH, TTL, now=BASE + step.at)
                assert_matches(outcome, step, f"{name} step {index}")
        finally:
            shared.close()

    run(replay())


def test_state_lives_under_the_exported_keys(redis_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, _ = redis_server
    reset_consumer(url, "keys")

    async def one() -> None:
        shared = SharedBuckets(url, 1.0)
        try:
            await shared.decide("keys", SMALL, 2.0, current_month(), TTL)  # Redis TIME
        finally:
            shared.close()

    run(one())
    client = redis.Redis.from_url(url)
    try:
        assert float(client.hget(bucket_key("keys"), "tokens") or -1) == pytest.approx(7.0, abs=0.01)
        assert float(client.get(month_key("keys", current_month())) or -1) == 2.0
        assert 0 < client.pttl(bucket_key("keys")) <= 21_000  # time to refill 2 tokens at 0.1/s, + 1 s
    finally:
        client.close()
    reset_consumer(url, "keys")
    client = redis.Redis.from_url(url)
    try:
        assert client.exists(bucket_key("keys"), month_key("keys", current_month())) == 0
    finally:
        client.close()


def test_seeded_month_usage_cuts_off(redis_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, _ = redis_server
    reset_consumer(url, "seeded")
    seed_month_usage(url, "seeded", 99.0)
    quota = Quota(per_minute=6.0, capacity=9.0, refill_per_second=0.1, per_month=100.0)

    async def two() -> list[bool]:
        shared = SharedBuckets(url, 1.0)
        try:
            return [(await shared.decide("seeded", quota, 1.0, current_month(), TTL)).allowed for _ in range(2)]
        finally:
            shared.close()

    assert run(two()) == [True, False]


def concurrent_admissions(url: str, consumer: str, atomic: bool, requests: int) -> int:
    async def burst() -> int:
        shared = SharedBuckets(url, 1.0, atomic=atomic)
        try:
            outcomes = await asyncio.gather(
                *(shared.decide(consumer, SMALL, 1.0, MONTH, TTL, now=BASE) for _ in range(requests))
            )
            return sum(o.allowed for o in outcomes)
        finally:
            shared.close()

    reset_consumer(url, consumer)
    return run(burst())


def test_atomic_script_never_over_admits_concurrent_requests(redis_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    assert concurrent_admissions(redis_server[0], "atomic", atomic=True, requests=30) == 9


def test_racy_defect_over_admits_concurrent_requests(redis_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    assert concurrent_admissions(redis_server[0], "racy", atomic=False, requests=30) > 9


def test_a_hung_redis_times_out(redis_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = redis_server

    async def hung() -> float:
        shared = SharedBuckets(url, 0.05)
        try:
            await shared.ping()
            os.kill(proc.pid, signal.SIGSTOP)
            started = time.perf_counter()
            with pytest.raises(RedisUnavailable):
                await shared.decide("hung", SMALL, 1.0, MONTH, TTL)
            return time.perf_counter() - started
        finally:
            os.kill(proc.pid, signal.SIGCONT)
            shared.close()

    assert run(hung()) < 0.5
