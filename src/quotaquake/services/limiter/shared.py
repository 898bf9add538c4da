"""Decisions on shared state in Redis: one atomic Lua script per decision, micro-batched per event-loop tick.

Batching: every decision requested during one event-loop iteration is queued; a ``call_soon`` callback
writes them all with one ``write`` (a pipeline of EVALSHA), and each request awaits only its own reply.
Under load that turns hundreds of round trips per second into a few dozen writes, with no added delay for
a lone request.

Timeouts: a batch whose last reply has not arrived ``timeout_s`` after the write fails the connection
(every waiter gets ``RedisUnavailable``); the caller then degrades and reconnects later.

``atomic=False`` is the seeded ``racy`` defect: read the state (TIME, HMGET, GET), decide in Python, then
write it back in a second round trip. Concurrent decisions for one consumer (in one batch, or on other
replicas) read the same state and over-admit: a real read-then-write race.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from importlib import resources
from urllib.parse import unquote, urlsplit

from quotaquake.services.limiter.bucket import Outcome, Quota, decide, refilled
from quotaquake.services.limiter.keys import bucket_key, month_key
from quotaquake.services.limiter.resp import RedisUnavailable, Reply, RespError, RespProtocol, connect, encode_command

# The racy defect's window between read and write: one extra round trip of a limiter whose store is a
# network hop away (~2 ms). Without it the race exists but needs sub-millisecond overlaps to show.
RACY_WINDOW_S = 0.002

LUA_SOURCE = resources.files("quotaquake.services.limiter").joinpath("decide.lua").read_bytes()
LUA_SHA = hashlib.sha1(LUA_SOURCE).hexdigest().encode()


def _num(value: float | None) -> bytes:
    return b"" if value is None else repr(float(value)).encode()


def _script_args(quota: Quota, cost: float) -> tuple[bytes, ...]:
    """ARGV[1..4] of decide.lua: cost, capacity, refill per second, per month."""
    return (_num(cost), _num(quota.capacity), _num(quota.refill_per_second), _num(quota.per_month))


def _float(value: Reply) -> float | None:
    return float(value) if isinstance(value, bytes) and value else None


def outcome_of(reply: Reply) -> Outcome:
    """Turn the script's reply ``[allowed, bucket_short, month_short, tokens, used]`` into an ``Outcome``."""
    if isinstance(reply, RespError):
        raise RedisUnavailable(f"script error: {reply}")
    if not isinstance(reply, list) or len(reply) != 5:
        raise RedisUnavailable(f"unexpected script reply {reply!r}")
    allowed, bucket_short, month_short, tokens, used = reply
    return Outcome(allowed == 1, _float(tokens), _float(used) or 0.0, bucket_short == 1, month_short == 1)


def _redis_time(reply: Reply) -> float:
    """Epoch seconds from a TIME reply: Redis answers ``[seconds, microseconds within the second]``; an Envoy
    ``redis_proxy`` answers TIME itself with ``[seconds, microseconds since the epoch]`` (its
    command_splitter_impl.cc), told apart by the second number being a whole epoch in microseconds."""
    if not isinstance(reply, list) or len(reply) != 2 or not all(isinstance(p, bytes) for p in reply):
        raise RedisUnavailable(f"unexpected TIME reply {reply!r}")
    seconds, micros = reply
    assert isinstance(seconds, bytes) and isinstance(micros, bytes)
    if int(micros) >= 1_000_000:
        return int(micros) / 1e6
    return int(seconds) + int(micros) / 1e6


def parse_redis_url(url: str) -> tuple[str, int]:
    """Host and port of ``redis://[:password@]host:port/db`` (db 0 only: the script uses the default database)."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError("not a redis:// URL with a host")
    return parts.hostname, parts.port or 6379


def redis_password(url: str) -> str | None:
    """The password of ``redis://:password@host:port/0`` (percent-decoded), ``None`` without one."""
    password = urlsplit(url).password
    return unquote(password) if password else None


class SharedBuckets:
    """Decide against Redis; raises ``RedisUnavailable`` on any failure or timeout."""

    def __init__(self, url: str, timeout_s: float, *, atomic: bool = True) -> None:
        self._host, self._port = parse_redis_url(url)
        self._password = redis_password(url)
        self._timeout_s = timeout_s
        self._atomic = atomic
        self._conn: RespProtocol | None = None
        self._connecting: asyncio.Future[RespProtocol] | None = None
        self._queue: list[bytes] = []
        self._queued_futures: list[asyncio.Future[Reply]] = []
        self._flush_scheduled = False
        self._encoded: dict[tuple[Quota, float], tuple[bytes, ...]] = {}
        self._primary_changed: Callable[[], None] = _nothing

    def on_primary_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the store learns that another node became primary (a Sentinel-following
        subclass; this one has a single node and never calls it)."""
        self._primary_changed = callback

    async def decide(
        self, consumer: str, quota: Quota, cost: float, month: str, month_ttl: int, now: float | None = None
    ) -> Outcome:
        """One decision for ``consumer``; ``now`` (epoch seconds) overrides Redis TIME (tests)."""
        bkey, mkey = bucket_key(consumer).encode(), month_key(consumer, month).encode()
        if not self._atomic:
            return await self._decide_racy(bkey, mkey, quota, cost, month_ttl, now)
        args = self._encoded.get((quota, cost))
        if args is None:
            args = self._encoded[(quota, cost)] = _script_args(quota, cost)
        tail = (b"%d" % month_ttl, _num(now))
        reply = await self._call(b"EVALSHA", LUA_SHA, b"2", bkey, mkey, *args, *tail)
        if isinstance(reply, RespError) and str(reply).startswith("NOSCRIPT"):
            reply = await self._call(b"EVAL", LUA_SOURCE, b"2", bkey, mkey, *args, *tail)
        return outcome_of(reply)

    async def _decide_racy(
        self, bkey: bytes, mkey: bytes, quota: Quota, cost: float, month_ttl: int, now: float | None
    ) -> Outcome:
        clock, state, used_raw = await asyncio.gather(
            self._call(b"TIME"), self._call(b"HMGET", bkey, b"tokens", b"ts"), self._call(b"GET", mkey)
        )
        if now is None:
            now = _redis_time(clock)
        held, stamp = (_float(state[0]), _float(state[1])) if isinstance(state, list) else (None, None)
        outcome = decide(quota, cost, refilled(quota, held, stamp, now), _float(used_raw) or 0.0)
        await asyncio.sleep(RACY_WINDOW_S)  # the read-modify-write gap of a limiter one network hop away
        if outcome.allowed and cost > 0:
            writes = []
            if outcome.tokens is not None:
                writes.append(self._call(b"HSET", bkey, b"tokens", _num(outcome.tokens), b"ts", _num(now)))
                writes.append(self._call(b"PEXPIRE", bkey, b"%d" % (60_000 * 10)))
            if quota.per_month is not None:
                writes.append(self._call(b"SET", mkey, _num(outcome.month_used), b"EX", b"%d" % month_ttl))
            await asyncio.gather(*writes)
        return outcome

    async def ping(self) -> None:
        """Raise ``RedisUnavailable`` unless Redis answers PING in time."""
        reply = await self._call(b"PING")
        if reply != b"PONG":
            raise RedisUnavailable(f"unexpected PING reply {reply!r}")

    async def _call(self, *args: bytes) -> Reply:
        conn = await self._connection()
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._queue.append(encode_command(args))
        self._queued_futures.append(future)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, conn)
        return await future

    def _flush(self, conn: RespProtocol) -> None:
        commands, waiters = self._queue, self._queued_futures
        self._queue, self._queued_futures, self._flush_scheduled = [], [], False
        try:
            conn.send(commands, waiters)
        except RedisUnavailable as exc:
            for waiter in waiters:
                waiter.set_exception(RedisUnavailable(str(exc)))
            return
        last = waiters[-1]
        handle = asyncio.get_running_loop().call_later(self._timeout_s, _expire, conn, last, self._timeout_s)
        last.add_done_callback(lambda _future: handle.cancel())

    async def _connection(self) -> RespProtocol:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _open(self) -> RespProtocol:
        conn = await connect(self._host, self._port, self._timeout_s, self._password)
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.fail("limiter shutting down")
            self._conn = None


def _nothing() -> None:
    return None


def _expire(conn: RespProtocol, last: asyncio.Future[Reply], timeout_s: float) -> None:
    if not last.done():
        conn.fail(f"no reply within {timeout_s * 1000:.0f} ms")
