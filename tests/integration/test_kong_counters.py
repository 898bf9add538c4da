"""Kong's counters in a real Redis: the quota-month seed and the provider's reset use Kong's key format
(``ratelimit:<route>:<service>:<identifier>:<window start ms>:<period>``, policies/init.lua:16,50-73)."""

from __future__ import annotations

import time

import pytest
import redis

from quotaquake.stack import kong
from quotaquake.stack.quota_reset import delete_kong_counters
from quotaquake.stack.state import Consumer, StackState


@pytest.mark.integration
def test_month_seed_is_an_integer_counter_with_kongs_ttl_and_reset_deletes_it(stack: StackState) -> None:
    url = stack.require_endpoints().redis
    assert url is not None
    identifier = kong.consumer_identifier(Consumer(id=f"free-seed-{time.time_ns()}", tier="free", key="k"))
    key = kong.seed_month_count(url, identifier, 49_950, time.time())
    client = redis.Redis.from_url(url)
    try:
        assert key.startswith(f"ratelimit:{kong.EMPTY_UUID}:{kong.EMPTY_UUID}:{identifier}:") and key.endswith(":month")
        # Kong's EVAL INCRs it and reads the count before (policies/init.lua:407-415): it must be an integer
        assert client.incr(key) == 49_951
        assert 2_591_990 < client.ttl(key) <= 2_592_000  # the TTL Kong's first INCR sets (expiration.lua:6)
        other = kong.counter_key("someone-else", "minute", kong.window_start_ms("minute", time.time()))
        client.set(other, 3, ex=60)
        assert delete_kong_counters(url, [identifier]) == 1  # the provider's reset, by Kong's key format
        assert client.exists(key) == 0 and client.exists(other) == 1
        client.delete(other)  # the stack's Redis is shared by the session's tests
    finally:
        client.close()
