"""From a request's identity and path to a verdict: authenticate, price, decide (Redis or degraded).

Order of a decision:
1. API key (``x-api-key``, else Kong's ``apikey``): unknown -> 401; registry unreachable for an uncached
   key -> 503 ``registry-unavailable`` (see ``registry.py``). No key -> anonymous, one bucket per client IP.
2. Cost of the path from the policy; unlimited tiers (no minute and no month limit) are admitted
   without touching Redis.
3. Shared decision in Redis (one Lua script). On a Redis error or a reply slower than
   ``redis_timeout_ms`` Redis is skipped for ``redis_retry_seconds``; meanwhile the policy's degradation
   applies: ``fail-open-local`` decides with this process's buckets (same rates; the monthly usage
   starts from the last value Redis reported), ``fail-closed`` answers 503. When Redis answers again the
   local buckets are dropped and shared limits resume.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from quotaquake.policy import ANONYMOUS_TIER, DegradationMode, Policy
from quotaquake.services.limiter.bucket import LocalBuckets, Outcome, Quota, retry_after_seconds
from quotaquake.services.limiter.defects import Defect
from quotaquake.services.limiter.keys import current_month, month_ttl_seconds, seconds_to_month_end
from quotaquake.services.limiter.metrics import LimiterMetrics
from quotaquake.services.limiter.registry import ConsumerRegistry, RegistryUnavailable
from quotaquake.services.limiter.resp import RedisUnavailable
from quotaquake.services.limiter.shared import SharedBuckets

LOG = logging.getLogger("quotaquake.limiter")

REDIS_UNAVAILABLE = "redis-unavailable"
REGISTRY_UNAVAILABLE = "registry-unavailable"
SLOW_DEFECT_SECONDS = (0.005, 0.008)  # "a few ms": well past the 2 ms target, whatever the noise


@dataclass(slots=True)
class Verdict:
    """The answer to one /authz request.

    ``status``: 200 allowed, 429 limited, 401 unknown key, 503 unavailable. ``outcome``/``quota`` are set
    for limited tiers (they produce the rate-limit headers); ``degraded`` names what was missing.
    """

    status: int
    consumer_id: str
    tier: str
    quota: Quota | None = None
    outcome: Outcome | None = None
    retry_after: int | None = None
    degraded: str | None = None


class Limiter:
    def __init__(
        self,
        policy: Policy,
        registry: ConsumerRegistry,
        shared: SharedBuckets,
        metrics: LimiterMetrics,
        defect: Defect | None = None,
    ) -> None:
        self.policy = policy
        self.registry = registry
        self.metrics = metrics
        self._shared = shared
        self._local = LocalBuckets()
        self._defect = defect
        self._quotas = {tier: Quota.of(policy, limits) for tier, limits in policy.tiers.items()}
        self._quotas[ANONYMOUS_TIER] = Quota.of(policy, policy.anonymous)
        self._costs: dict[str, float] = {}
        self._fail_closed = (
            policy.degradation.on_redis_unavailable == DegradationMode.FAIL_CLOSED or defect is Defect.FAIL_CLOSED
        )
        self._retry_s = policy.degradation.redis_retry_seconds
        self._skip_redis_until = 0.0
        self._degraded_since: float | None = None
        self._month_seen: dict[str, float] = {}
        self._month_second = -1
        self._month = ("", 0)
        shared.on_primary_change(self._primary_changed)

    def _primary_changed(self) -> None:
        """Another node became primary: try Redis again at the next decision instead of after the skip."""
        self._skip_redis_until = 0.0
        self.metrics.redis_switches.inc()

    @property
    def retry_after_enabled(self) -> bool:
        """False under the ``no-retry-after`` defect: 429 answers then lack Retry-After."""
        return self._defect is not Defect.NO_RETRY_AFTER

    async def close(self) -> None:
        self._shared.close()
        await self.registry.close()

    @property
    def redis_degraded(self) -> bool:
        return self._degraded_since is not None

    def cost_of(self, path: str) -> float:
        cost = self._costs.get(path)
        if cost is None:
            cost = self._costs[path] = self.policy.cost_of(path)
        return cost

    async def decide(self, api_key: str | None, client_ip: str, path: str) -> Verdict:
        if api_key:
            try:
                identity = self.registry.cached(api_key) or await self.registry.lookup(api_key)
            except RegistryUnavailable:
                return Verdict(503, "", "unknown", degraded=REGISTRY_UNAVAILABLE)
            if identity is None:
                return Verdict(401, "", "invalid")
            consumer_id, tier = identity.consumer_id, identity.tier
        else:
            consumer_id, tier = f"anon:{client_ip}", ANONYMOUS_TIER
        quota = self._quotas[tier]
        if quota.unlimited:
            return Verdict(200, consumer_id, tier)
        if self._defect is Defect.SLOW:
            await asyncio.sleep(random.uniform(*SLOW_DEFECT_SECONDS))
        return await self._limit(consumer_id, tier, quota, self.cost_of(path))

    async def _limit(self, consumer_id: str, tier: str, quota: Quota, cost: float) -> Verdict:
        wall = time.time()
        outcome = None
        degraded = None
        if time.monotonic() >= self._skip_redis_until:
            outcome = await self._shared_outcome(consumer_id, quota, cost, wall)
        if outcome is None:
            self.metrics.degraded(tier)
            if self._fail_closed:
                return Verdict(503, consumer_id, tier, degraded=REDIS_UNAVAILABLE)
            month_floor = self._month_seen.get(consumer_id, 0.0)
            outcome = self._local.decide(consumer_id, quota, cost, wall, month_floor)
            degraded = REDIS_UNAVAILABLE
        if outcome.allowed:
            return Verdict(200, consumer_id, tier, quota, outcome, degraded=degraded)
        retry = retry_after_seconds(quota, outcome, cost, seconds_to_month_end(wall))
        return Verdict(429, consumer_id, tier, quota, outcome, retry, degraded)

    async def _shared_outcome(self, consumer_id: str, quota: Quota, cost: float, wall: float) -> Outcome | None:
        try:
            outcome = await self._shared.decide(consumer_id, quota, cost, current_month(wall), month_ttl_seconds(wall))
        except RedisUnavailable as exc:
            self.metrics.redis_errors.inc()
            self._skip_redis_until = time.monotonic() + self._retry_s
            if self._degraded_since is None:
                self._degraded_since = time.monotonic()
                LOG.warning("redis unavailable (%s): degrading for %.1f s at a time", exc, self._retry_s)
            return None
        if self._degraded_since is not None:
            LOG.warning("redis is back after %.1f s: shared limits resume", time.monotonic() - self._degraded_since)
            self._degraded_since = None
            self._local.clear()
        if quota.per_month is not None:
            self._month_seen[consumer_id] = outcome.month_used
        return outcome
