"""The limiter's Sentinel-following store without servers: parsing, choosing the newest view, switching,
forgetting the primary after failures, and the seeded ``no-failover`` defect ignoring all of it."""

from __future__ import annotations

import asyncio

import pytest

from quotaquake.services.limiter.resp import RedisUnavailable, RespProtocol, encode_command, parse_replies
from quotaquake.services.limiter.sentinel import (
    SentinelSharedBuckets,
    SentinelView,
    parse_addresses,
    parse_routes,
    switch_target,
)
from quotaquake.services.limiter.shared import _redis_time

URL = "redis://:pw@127.0.0.1:7001/0"
SENTINELS = [("127.0.0.1", 26001), ("127.0.0.1", 26002), ("127.0.0.1", 26003)]


def store(follow: bool = True) -> SentinelSharedBuckets:
    return SentinelSharedBuckets(URL, 0.05, sentinels=SENTINELS, master="qq", follow=follow)


def test_addresses_and_routes_parse() -> None:
    assert parse_addresses("127.0.0.1:1, 127.0.0.1:2,") == [("127.0.0.1", 1), ("127.0.0.1", 2)]
    assert parse_routes("127.0.0.1:1=127.0.0.1:9") == {("127.0.0.1", 1): ("127.0.0.1", 9)}
    with pytest.raises(ValueError, match="'nohost' is not host:port"):
        parse_addresses("nohost")
    with pytest.raises(ValueError, match="is not node=proxy"):
        parse_routes("127.0.0.1:1")


def test_switch_messages_name_the_new_primary_of_our_master_only() -> None:
    assert switch_target(b"qq 127.0.0.1 7001 127.0.0.1 7002", b"qq") == ("127.0.0.1", 7002)
    assert switch_target(b"other 127.0.0.1 7001 127.0.0.1 7002", b"qq") is None
    assert switch_target(b"qq 127.0.0.1", b"qq") is None


def view_reply(port: int, epoch: int, flags: bytes = b"master") -> list[object]:
    return [b"name", b"qq", b"ip", b"127.0.0.1", b"port", b"%d" % port, b"flags", flags, b"config-epoch", b"%d" % epoch]


def test_a_sentinel_view_is_its_primary_epoch_and_down_flags() -> None:
    assert SentinelView.of(view_reply(7001, 3), SENTINELS[0]) == SentinelView(("127.0.0.1", 7001), 3, False)  # type: ignore[arg-type]
    assert SentinelView.of(view_reply(7001, 3, b"master,s_down,o_down"), SENTINELS[0]).down  # type: ignore[arg-type]
    with pytest.raises(RedisUnavailable):
        SentinelView.of([b"name", b"qq"], SENTINELS[0])


def test_time_through_envoy_is_epoch_microseconds() -> None:
    assert _redis_time([b"1795773660", b"598670"]) == pytest.approx(1795773660.598670)
    assert _redis_time([b"1795773654", b"1795773654765284"]) == pytest.approx(1795773654.765284)  # Envoy's TIME


def resolved(views: list[SentinelView | Exception]) -> tuple[str, int]:
    buckets = store()
    answers = iter(views)

    async def ask(sentinel: tuple[str, int]) -> SentinelView:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    buckets._ask = ask  # type: ignore[method-assign]
    return asyncio.run(buckets.resolve())


def test_the_newest_view_wins_over_the_majority() -> None:
    old, new = ("127.0.0.1", 7001), ("127.0.0.1", 7002)
    views = [SentinelView(old, 0, False), SentinelView(new, 1, False), SentinelView(old, 0, False)]
    assert resolved(views) == new  # two Sentinels have not heard of the promotion yet


def test_no_connection_is_tried_while_every_sentinel_sees_the_primary_down() -> None:
    down = SentinelView(("127.0.0.1", 7001), 0, True)
    with pytest.raises(RedisUnavailable, match="awaiting a promotion"):
        resolved([down, down, RedisUnavailable("no answer")])
    with pytest.raises(RedisUnavailable, match="no Sentinel named the primary"):
        resolved([RedisUnavailable("a"), RedisUnavailable("b"), RedisUnavailable("c")])


def test_a_switch_moves_to_the_new_primary_fails_the_old_connection_and_tells_the_limiter() -> None:
    buckets = store()
    calls: list[str] = []
    buckets.on_primary_change(lambda: calls.append("switched"))
    conn = RespProtocol()
    buckets._conn, buckets._addr = conn, ("127.0.0.1", 7001)
    buckets.switched(("127.0.0.1", 7002))
    assert (buckets.primary, conn.closed, calls, buckets.switches) == (("127.0.0.1", 7002), True, ["switched"], 1)
    buckets.switched(("127.0.0.1", 7002))  # the other Sentinels announce the same switch
    assert calls == ["switched"] and buckets.switches == 1
    buckets._after_failure("+switch-master to 127.0.0.1:7002")  # its waiters' failure keeps the new address
    assert buckets.primary == ("127.0.0.1", 7002)


def test_a_failed_connection_or_readonly_forgets_the_primary() -> None:
    buckets = store()
    buckets._addr = ("127.0.0.1", 7001)
    conn = RespProtocol()
    buckets._conn = conn
    buckets._after_failure("script error: READONLY You can't write against a read only replica.")
    assert conn.closed and buckets.primary is None
    buckets._addr = ("127.0.0.1", 7001)
    buckets._after_failure("no reply within 50 ms")  # the connection is gone already
    assert buckets.primary is None


def test_the_no_failover_defect_keeps_the_old_primary_whatever_happens() -> None:
    buckets = store(follow=False)
    calls: list[str] = []
    buckets.on_primary_change(lambda: calls.append("switched"))
    buckets._addr = ("127.0.0.1", 7001)
    buckets.switched(("127.0.0.1", 7002))
    buckets._after_failure("script error: READONLY You can't write against a read only replica.")
    assert buckets.primary == ("127.0.0.1", 7001) and calls == []


def test_pubsub_messages_reach_the_switch() -> None:
    buckets = store()
    buckets._addr = ("127.0.0.1", 7001)
    stream = encode_command([b"message", b"+switch-master", b"qq 127.0.0.1 7001 127.0.0.1 7002"])
    replies, used = parse_replies(stream + b"*3\r\n$7\r\nmess")  # a second message still incomplete
    assert used == len(stream) and len(replies) == 1
    buckets._on_message(replies[0])
    assert buckets.primary == ("127.0.0.1", 7002)
