"""A minimal pipelining Redis client (RESP2) for the limiter's hot path.

Why not redis-py here: a decision is one EVALSHA whose reply is five short strings, and the limiter sends
thousands per second on one connection. redis-py's asyncio pipeline (without hiredis) spends tens of
microseconds per command in connection-pool checkout, per-reply coroutine awaits and observability hooks;
this client writes every command queued in one event-loop tick with a single ``transport.write`` and
resolves one future per reply from ``data_received`` (replies arrive in command order on one connection).
redis-py is still used for everything that is not per request (``keys.py``, tests).

Failure model: any connection error, protocol error or a batch not answered within ``timeout_s`` closes
the connection and fails every waiting future with ``RedisUnavailable``; the caller decides when to
reconnect.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TypeAlias


class RedisUnavailable(Exception):
    """Redis could not be reached, failed, or did not answer in time."""


class RespError(Exception):
    """An error reply from Redis (``-ERR ...``); a value, not raised by the client."""


Reply: TypeAlias = "bytes | int | list[Reply] | RespError | None"


class _Incomplete(Exception):
    pass


def encode_command(args: tuple[bytes, ...] | list[bytes]) -> bytes:
    """RESP encoding of one command (array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def parse_reply(buf: bytes | bytearray, pos: int) -> tuple[Reply, int]:
    """Parse one reply starting at ``pos``; returns it and the position after it.

    Raises ``_Incomplete`` when ``buf`` does not yet hold the whole reply.
    """
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    after = end + 2
    if kind == 0x24:  # '$' bulk string
        size = int(line)
        if size < 0:
            return None, after
        if len(buf) < after + size + 2:
            raise _Incomplete
        return bytes(buf[after : after + size]), after + size + 2
    if kind == 0x2A:  # '*' array
        count = int(line)
        if count < 0:
            return None, after
        items: list[Reply] = []
        for _ in range(count):
            item, after = parse_reply(buf, after)
            items.append(item)
        return items, after
    if kind == 0x3A:  # ':' integer
        return int(line), after
    if kind == 0x2B:  # '+' simple string
        return line, after
    if kind == 0x2D:  # '-' error
        return RespError(line.decode("utf-8", "replace")), after
    raise ValueError(f"unexpected RESP type byte {kind!r}")


def parse_replies(buf: bytes | bytearray) -> tuple[list[Reply], int]:
    """Every complete reply at the start of ``buf`` and the number of bytes they take (pub/sub readers)."""
    replies: list[Reply] = []
    pos = 0
    try:
        while pos < len(buf):
            reply, pos_after = parse_reply(buf, pos)
            replies.append(reply)
            pos = pos_after
    except _Incomplete:
        pass
    return replies, pos


class RespProtocol(asyncio.Protocol):
    """One Redis connection: commands out in batches, replies matched to futures in FIFO order."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._waiters: deque[asyncio.Future[Reply]] = deque()
        self._buf = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def send(self, commands: list[bytes], waiters: list[asyncio.Future[Reply]]) -> None:
        """Write all ``commands`` at once; ``waiters[i]`` receives the reply to ``commands[i]``."""
        if self.closed or self._transport is None:
            raise RedisUnavailable("connection closed")
        self._waiters.extend(waiters)
        self._transport.write(b"".join(commands))

    async def request(self, commands: list[tuple[bytes, ...]], timeout_s: float) -> list[Reply]:
        """Send ``commands`` in one write and wait up to ``timeout_s`` for every reply; on a timeout the
        connection is failed and ``RedisUnavailable`` raised."""
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[Reply]] = [loop.create_future() for _ in commands]
        self.send([encode_command(c) for c in commands], waiters)
        try:
            async with asyncio.timeout(timeout_s):
                return list(await asyncio.gather(*waiters))
        except TimeoutError:
            self.fail(f"no reply within {timeout_s * 1000:.0f} ms")
            raise RedisUnavailable(f"no reply within {timeout_s * 1000:.0f} ms") from None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        pos = 0
        try:
            while self._waiters:
                reply, pos = parse_reply(self._buf, pos)
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(reply)
        except _Incomplete:
            pass
        except ValueError as exc:
            self.fail(f"protocol error: {exc}")
            return
        del self._buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(f"connection lost: {exc}" if exc else "connection closed by server")

    def fail(self, reason: str) -> None:
        """Close the connection and fail every waiting future with ``RedisUnavailable(reason)``."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RedisUnavailable(reason))


async def connect(host: str, port: int, timeout_s: float, password: str | None = None) -> RespProtocol:
    """Open a connection (and ``AUTH`` with ``password`` when given) within ``timeout_s`` seconds, or raise
    ``RedisUnavailable``."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            _, protocol = await loop.create_connection(RespProtocol, host, port)
            if password:
                await _authenticate(protocol, password)
    except (OSError, TimeoutError) as exc:
        raise RedisUnavailable(f"cannot connect to redis at {host}:{port}: {exc!r}") from None
    return protocol


async def _authenticate(protocol: RespProtocol, password: str) -> None:
    """Send ``AUTH password`` first on the connection; ``RedisUnavailable`` (connection closed) if refused."""
    reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
    protocol.send([encode_command([b"AUTH", password.encode()])], [reply])
    answer = await reply
    if answer != b"OK":
        protocol.fail("authentication refused")
        raise RedisUnavailable(f"redis refused the password: {answer!r}")
