"""Shared decisions on a replicated Redis behind Sentinel: find the primary, follow its promotions.

Only how a connection is opened differs from ``SharedBuckets`` (the hot path is the same pipelined
EVALSHA):

* the primary's address comes from the Sentinels: all of them are asked at once (``SENTINEL MASTER``,
  within the Redis timeout) and the newest view wins (the highest configuration epoch: a Sentinel that has
  not heard of a promotion yet still names the old primary). While every Sentinel sees that primary down
  no connection is tried (redis-py's ``discover_master`` does the same);
* every new connection sends ``AUTH`` and ``ROLE`` first (one write) and is refused unless the node says
  ``master``: a demoted primary, or a node restarted as a replica, is never written to;
* the address is forgotten, and asked again at the next connection, on every connection failure, timeout
  or ``READONLY`` reply: the limiter converges even if every Sentinel message is lost;
* the fast path: one ``SUBSCRIBE +switch-master`` connection per Sentinel. On a switch the address is
  replaced, the open connection failed (its waiters degrade now, the next decision connects to the new
  primary) and the limiter told (``on_primary_change``: it stops skipping Redis at once instead of after
  ``redis_retry_seconds``).

``follow=False`` is the seeded ``no-failover`` defect: the primary is asked for once and kept for good; no
ROLE check, no subscription. After a failover that limiter keeps writing to the old node: refused while it
is dead, accepted (and later lost) while it is a stale primary, READONLY once it is a replica.

Addresses are what the Sentinels announce (the data nodes themselves); ``routes`` maps each to the address
the limiter must use instead (its Envoy ``redis_proxy`` listener, where latency faults are injected).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from quotaquake.services.limiter.bucket import Outcome, Quota
from quotaquake.services.limiter.resp import RedisUnavailable, Reply, RespError, RespProtocol, connect, parse_replies
from quotaquake.services.limiter.shared import SharedBuckets

LOG = logging.getLogger("quotaquake.limiter")
Address = tuple[str, int]
SWITCH_CHANNEL = b"+switch-master"
SWITCH_REASON = "+switch-master"  # why a switch fails the old connection (its waiters' error text)
WATCH_RETRY_S = 0.5  # a lost subscription is opened again after this pause


def parse_address(text: str) -> Address:
    """``host:port`` -> (host, port); ``ValueError`` naming the text otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"'{text}' is not host:port")
    return host, int(port)


def parse_addresses(text: str) -> list[Address]:
    """``h1:p1,h2:p2`` -> addresses (empty entries ignored)."""
    return [parse_address(part) for part in text.split(",") if part.strip()]


def parse_routes(text: str) -> dict[Address, Address]:
    """``node=proxy,node=proxy`` (each ``host:port``) -> node address -> the address to connect to."""
    routes: dict[Address, Address] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        node, sep, proxy = part.partition("=")
        if not sep:
            raise ValueError(f"route '{part}' is not node=proxy")
        routes[parse_address(node)] = parse_address(proxy)
    return routes


def switch_target(payload: bytes, master: bytes) -> Address | None:
    """The new primary of a ``+switch-master`` message (``<name> <old-ip> <old-port> <new-ip> <new-port>``)
    about ``master``; ``None`` for another name or a malformed payload."""
    parts = payload.split()
    if len(parts) != 5 or parts[0] != master or not parts[4].isdigit():
        return None
    return parts[3].decode(), int(parts[4])


@dataclass(frozen=True)
class SentinelView:
    """One Sentinel's ``SENTINEL MASTER`` answer: the primary's address, the configuration epoch of that
    view, and whether it sees the primary down."""

    address: Address
    epoch: int
    down: bool

    @classmethod
    def of(cls, reply: Reply, sentinel: Address) -> SentinelView:
        if not isinstance(reply, list) or not all(isinstance(x, bytes) for x in reply):
            raise RedisUnavailable(f"sentinel {sentinel}: unexpected answer {reply!r}")
        items = [x for x in reply if isinstance(x, bytes)]
        fields = dict(zip(items[::2], items[1::2], strict=False))
        try:
            address = (fields[b"ip"].decode(), int(fields[b"port"]))
            epoch = int(fields.get(b"config-epoch", b"0"))
        except (KeyError, ValueError):
            raise RedisUnavailable(f"sentinel {sentinel}: no primary in {reply!r}") from None
        flags = fields.get(b"flags", b"")
        return cls(address, epoch, b"s_down" in flags or b"o_down" in flags)


class SentinelSharedBuckets(SharedBuckets):
    """``SharedBuckets`` whose connection goes to the primary the Sentinels name (module docstring)."""

    def __init__(
        self,
        url: str,
        timeout_s: float,
        *,
        sentinels: Sequence[Address],
        master: str,
        routes: Mapping[Address, Address] | None = None,
        follow: bool = True,
        atomic: bool = True,
    ) -> None:
        super().__init__(url, timeout_s, atomic=atomic)
        if not sentinels:
            raise ValueError("no Sentinel address")
        self._sentinels = list(sentinels)
        self._master = master.encode()
        self._routes = dict(routes or {})
        self._follow = follow
        self._addr: Address | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self.switches = 0  # +switch-master messages that changed the address

    @property
    def primary(self) -> Address | None:
        """The address in use (``None``: to be asked at the next connection)."""
        return self._addr

    async def decide(
        self, consumer: str, quota: Quota, cost: float, month: str, month_ttl: int, now: float | None = None
    ) -> Outcome:
        try:
            return await super().decide(consumer, quota, cost, month, month_ttl, now)
        except RedisUnavailable as exc:
            self._after_failure(str(exc))
            raise

    def _after_failure(self, reason: str) -> None:
        """Forget the address after a failure of the connection (it is closed) or a ``READONLY`` reply;
        not after the switch itself failed the old connection (the new address is already set)."""
        if not self._follow or SWITCH_REASON in reason:
            return
        if "READONLY" in reason and self._conn is not None:
            self._conn.fail(f"the node answers {reason}")
        if self._conn is None or self._conn.closed:
            self._conn = None
            self._addr = None

    async def _open(self) -> RespProtocol:
        self._start_watchers()
        if self._addr is None:
            self._addr = await self.resolve()
        node = self._addr
        host, port = self._routes.get(node, node)
        try:
            conn = await connect(host, port, self._timeout_s)
            role = await self._handshake(conn)
        except RedisUnavailable:
            if self._follow:
                self._addr = None
            raise
        if self._follow and role != b"master":
            conn.fail(f"{node[0]}:{node[1]} is a {role!r}, not the primary")
            self._addr = None
            raise RedisUnavailable(f"{node[0]}:{node[1]} answers ROLE {role!r}, not master")
        self._conn = conn
        return conn

    async def _handshake(self, conn: RespProtocol) -> bytes:
        """``AUTH`` (when the URL has a password) and ``ROLE`` in one write; the role the node states."""
        commands: list[tuple[bytes, ...]] = [(b"ROLE",)]
        if self._password:
            commands.insert(0, (b"AUTH", self._password.encode()))
        replies = await conn.request(commands, self._timeout_s)
        if self._password and replies[0] != b"OK":
            conn.fail("authentication refused")
            raise RedisUnavailable(f"redis refused the password: {replies[0]!r}")
        role = replies[-1]
        if isinstance(role, list) and len(role) == 1 and isinstance(role[0], list):
            role = role[0]  # an Envoy redis_proxy wraps the node's ROLE reply in one more array
        if isinstance(role, RespError) or not isinstance(role, list) or not role or not isinstance(role[0], bytes):
            conn.fail("no role")
            raise RedisUnavailable(f"unexpected ROLE reply {role!r}")
        return role[0]

    async def resolve(self) -> Address:
        """The primary of the newest view among the Sentinels that answer (all asked at once, each within the
        timeout): the highest configuration epoch (a promotion raises it) wins. When every answering
        Sentinel sees that primary down (``s_down``/``o_down``: a promotion is under way) no connection is
        tried: ``RedisUnavailable`` at once."""
        answers = await asyncio.gather(*(self._ask(s) for s in self._sentinels), return_exceptions=True)
        views = [a for a in answers if isinstance(a, SentinelView)]
        if not views:
            raise RedisUnavailable(f"no Sentinel named the primary of '{self._master.decode()}'")
        newest = max(views, key=lambda v: v.epoch)
        if all(v.down for v in views if v.address == newest.address):
            raise RedisUnavailable(f"the Sentinels see the primary {newest.address} down: awaiting a promotion")
        return newest.address

    async def _ask(self, sentinel: Address) -> SentinelView:
        conn = await connect(*sentinel, self._timeout_s)
        try:
            commands: list[tuple[bytes, ...]] = [(b"SENTINEL", b"MASTER", self._master)]
            if self._password:
                commands.insert(0, (b"AUTH", self._password.encode()))
            reply = (await conn.request(commands, self._timeout_s))[-1]
        finally:
            conn.fail("asked")
        return SentinelView.of(reply, sentinel)

    # -- the +switch-master fast path ---------------------------------------------------------------
    def _start_watchers(self) -> None:
        if self._follow and not self._watchers:
            self._watchers = [asyncio.ensure_future(self._watch(s)) for s in self._sentinels]

    async def _watch(self, sentinel: Address) -> None:
        """Keep one subscription to ``+switch-master`` on ``sentinel`` open, reopening it after failures."""
        while True:
            try:
                await self._subscription(sentinel)
            except (OSError, TimeoutError, ConnectionError, ValueError) as exc:
                LOG.debug("sentinel %s:%d subscription lost: %r", *sentinel, exc)
            await asyncio.sleep(WATCH_RETRY_S)

    async def _subscription(self, sentinel: Address) -> None:
        async with asyncio.timeout(self._timeout_s * 4):
            reader, writer = await asyncio.open_connection(*sentinel)
        try:
            commands = [b"*2\r\n$9\r\nSUBSCRIBE\r\n$14\r\n+switch-master\r\n"]
            if self._password:
                password = self._password.encode()
                commands.insert(0, b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password), password))
            writer.write(b"".join(commands))
            buffer = bytearray()
            while data := await reader.read(65536):
                buffer += data
                replies, used = parse_replies(buffer)
                del buffer[:used]
                for reply in replies:
                    self._on_message(reply)
        finally:
            writer.close()

    def _on_message(self, reply: Reply) -> None:
        if isinstance(reply, RespError):
            raise ConnectionError(f"sentinel refused: {reply}")
        if not isinstance(reply, list) or len(reply) != 3 or reply[:2] != [b"message", SWITCH_CHANNEL]:
            return
        payload = reply[2]
        target = switch_target(payload, self._master) if isinstance(payload, bytes) else None
        if target is not None:
            self.switched(target)

    def switched(self, target: Address) -> None:
        """The Sentinels promoted ``target``: use it from the next connection on (module docstring)."""
        if not self._follow or target == self._addr:
            return
        LOG.warning("+switch-master: the primary is now %s:%d", *target)
        self._addr = target
        self.switches += 1
        if self._conn is not None:
            self._conn.fail(f"{SWITCH_REASON} to {target[0]}:{target[1]}")
            self._conn = None
        self._primary_changed()

    def close(self) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        self._watchers = []
        with contextlib.suppress(Exception):
            super().close()
