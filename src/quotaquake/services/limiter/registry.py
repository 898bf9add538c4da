"""The consumer registry (Postgres tables ``consumers`` and ``api_keys``) behind an in-process cache.

- At start every key is loaded (polled until Postgres answers; ``/ready`` is 503 until then), then
  reloaded every ``refresh_s`` seconds; a reload replaces the cache, so revoked keys disappear.
- A key missing from the cache is queried once (``lookup_timeout_s``); concurrent misses of one key share
  the query. An unknown key is remembered for ``negative_ttl_s`` (401 without a query).
- Postgres down: known consumers keep working from the cache (it is never dropped on failure).
  An unknown key cannot be judged then: the limiter answers 503 with
  ``x-quotaquake-degraded: registry-unavailable`` rather than 401 -- telling a consumer provisioned a
  moment ago that its key is invalid would be a false statement, and anonymous treatment would let a
  typo'd key through at the anonymous rate. After a failed query no query is made for
  ``outage_backoff_s`` seconds, so a dead Postgres costs nothing per request.
- A registry row naming a tier that the policy does not define is skipped with a warning (key -> 401).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import asyncpg

LOG = logging.getLogger("quotaquake.limiter.registry")

ALL_KEYS = "SELECT k.key, c.id, c.tier FROM api_keys k JOIN consumers c ON c.id = k.consumer_id"
ONE_KEY = ALL_KEYS + " WHERE k.key = $1"
FIRST_LOAD_POLL_SECONDS = 0.5


class RegistryUnavailable(Exception):
    """Postgres could not answer a lookup for an uncached key."""


@dataclass(frozen=True, slots=True)
class Identity:
    consumer_id: str
    tier: str


class ConsumerRegistry:
    def __init__(
        self,
        dsn: str,
        tiers: frozenset[str],
        *,
        refresh_s: float,
        lookup_timeout_s: float = 0.25,
        negative_ttl_s: float = 1.0,
        outage_backoff_s: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._tiers = tiers
        self._refresh_s = refresh_s
        self._lookup_timeout_s = lookup_timeout_s
        self._negative_ttl_s = negative_ttl_s
        self._outage_backoff_s = outage_backoff_s
        self._keys: dict[str, Identity] = {}
        self._unknown_until: dict[str, float] = {}
        self._outage_until = 0.0
        self._inflight: dict[str, asyncio.Task[Identity | None]] = {}
        self._pool: asyncpg.Pool | None = None
        self.loaded = False

    def cached(self, key: str) -> Identity | None:
        """The identity of a cached key, without I/O."""
        return self._keys.get(key)

    async def lookup(self, key: str) -> Identity | None:
        """Identity of ``key``, ``None`` if the registry does not know it; ``RegistryUnavailable`` if unsure."""
        found = self._keys.get(key)
        if found is not None:
            return found
        now = time.monotonic()
        if self._unknown_until.get(key, 0.0) > now:
            return None
        if self._outage_until > now:
            raise RegistryUnavailable("postgres unreachable (backing off)")
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._query_one(key))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _query_one(self, key: str) -> Identity | None:
        try:
            pool = await self._get_pool()
            rows = await pool.fetch(ONE_KEY, key, timeout=self._lookup_timeout_s)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._outage_until = time.monotonic() + self._outage_backoff_s
            LOG.warning("registry lookup failed (%r); unknown keys get 503 for %.1f s", exc, self._outage_backoff_s)
            raise RegistryUnavailable(str(exc)) from None
        self._store(rows)
        found = self._keys.get(key)
        if found is None:
            self._unknown_until[key] = time.monotonic() + self._negative_ttl_s
        return found

    async def run(self) -> None:
        """Load all keys (polling until Postgres answers), then reload every ``refresh_s``; runs forever."""
        while True:
            try:
                await self.reload()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                LOG.warning("registry reload failed (%r); serving %d cached keys", exc, len(self._keys))
            await asyncio.sleep(self._refresh_s if self.loaded else FIRST_LOAD_POLL_SECONDS)

    async def reload(self) -> None:
        """Replace the cache with every key in the registry."""
        pool = await self._get_pool()
        rows = await pool.fetch(ALL_KEYS, timeout=max(self._lookup_timeout_s, 5.0))
        fresh: dict[str, Identity] = {}
        self._store(rows, into=fresh)
        self._keys = fresh
        self._unknown_until = {k: t for k, t in self._unknown_until.items() if k not in fresh}
        if not self.loaded:
            LOG.info("registry loaded: %d keys", len(fresh))
        self.loaded = True

    def _store(self, rows: list[asyncpg.Record], into: dict[str, Identity] | None = None) -> None:
        target = self._keys if into is None else into
        for key, consumer_id, tier in rows:
            if tier not in self._tiers:
                LOG.warning("consumer %s has tier %r not in the policy; its key is refused", consumer_id, tier)
                continue
            target[key] = Identity(consumer_id, tier)

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=0, max_size=2, timeout=max(self._lookup_timeout_s, 2.0)
            )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
