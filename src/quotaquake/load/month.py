"""Monthly quota exhaustion: seed chosen consumers' monthly counters near their limit before a run.

The counter is written where the target's limiter reads it:

* the embedded limiter: ``qq:{<consumer>}:month:YYYY-MM`` (``services.limiter.keys.seed_month_usage``);
* Kong 3.9 (``model: kong``): Kong's own key for the consumer-scoped plugin,
  ``ratelimit:<zero uuid>:<zero uuid>:<Kong consumer id>:<month start ms>:month`` (``stack.kong``;
  ``kong/plugins/rate-limiting/policies/init.lua:16,50-73``) with the 30-day TTL Kong's first INCR would
  set. Kong counts whole requests, so the seed is ``floor(per_month - headroom)``. Setting the value (not
  adding to it) also replaces whatever earlier runs left in this month: the run starts at exactly the seed.

A target whose Redis is not reachable from here (an external Kong) cannot be seeded: the scenario refuses.
"""

from __future__ import annotations

import logging
import math
import time

from quotaquake.errors import UsageError
from quotaquake.load.runtime import ScenarioRuntime
from quotaquake.load.traffic import chosen_consumers
from quotaquake.policy import ANONYMOUS_TIER
from quotaquake.runfolder.models import MonthlySeed
from quotaquake.services.limiter.keys import seed_month_usage
from quotaquake.stack import kong
from quotaquake.stack.state import Consumer

log = logging.getLogger(__name__)


def month_seeds(runtime: ScenarioRuntime) -> list[MonthlySeed]:
    """Usage to seed: ``per_month - headroom`` (not below 0; whole requests for Kong) for each chosen
    consumer of a tier with a monthly limit; tiers without one (enterprise, partner) and the pseudo-tiers
    are left alone. Kong's limit is the one its spec declares for the tier."""
    seeds = []
    for tier in runtime.options.tiers:
        per_month = _month_limit(runtime, tier)
        if per_month is None:
            continue
        used = max(0.0, per_month - runtime.options.month_headroom)
        if runtime.state.model == "kong":
            used = float(math.floor(used))
        seeds += [MonthlySeed(consumer=c.id, used=used) for c in chosen_consumers(tier, runtime.state, runtime.options)]
    return seeds


def _month_limit(runtime: ScenarioRuntime, tier: str) -> float | None:
    if tier == ANONYMOUS_TIER:
        return None
    spec = runtime.state.kong
    if runtime.state.model == "kong" and spec is not None:
        month = (spec.limits_of(tier) or {}).get("month")
        return None if month is None else float(month)
    limits = runtime.policy.tiers.get(tier)
    return None if limits is None or limits.per_month is None else float(limits.per_month)


def seed_month_quota(runtime: ScenarioRuntime) -> list[MonthlySeed]:
    """Write ``month_seeds`` where the target's limiter reads them; returns them for ``engine.json``."""
    redis_url = runtime.state.require_endpoints().redis
    if not redis_url:
        raise UsageError(
            f"{runtime.options.state}: stack has no Redis endpoint; cannot seed monthly usage "
            "(an external target's Redis is not reachable from quotaquake)"
        )
    seeds = month_seeds(runtime)
    now_s = time.time()
    for seed in seeds:
        if runtime.state.model == "kong":
            identifier = kong.consumer_identifier(Consumer(id=seed.consumer, tier="", key=""))
            kong.seed_month_count(redis_url, identifier, int(seed.used), now_s)
        else:
            seed_month_usage(redis_url, seed.consumer, seed.used)
    log.info("quota-month: seeded %d consumers near their monthly limit", len(seeds))
    return seeds
