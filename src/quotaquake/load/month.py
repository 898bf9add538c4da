"""Monthly quota exhaustion: seed chosen consumers' monthly counters near their limit before a run."""

from __future__ import annotations

import logging

from quotaquake.errors import UsageError
from quotaquake.load.runtime import ScenarioRuntime
from quotaquake.load.traffic import chosen_consumers
from quotaquake.policy import ANONYMOUS_TIER
from quotaquake.runfolder.models import MonthlySeed
from quotaquake.services.limiter.keys import seed_month_usage

log = logging.getLogger(__name__)


def month_seeds(runtime: ScenarioRuntime) -> list[MonthlySeed]:
    """Usage to seed: ``per_month - headroom`` (not below 0) for each chosen consumer of a tier with a
    monthly limit; tiers without one (enterprise, partner) and the pseudo-tiers are left alone."""
    seeds = []
    for tier in runtime.options.tiers:
        limits = runtime.policy.tiers.get(tier) if tier != ANONYMOUS_TIER else None
        if limits is None or limits.per_month is None:
            continue
        used = max(0.0, limits.per_month - runtime.options.month_headroom)
        seeds += [MonthlySeed(consumer=c.id, used=used) for c in chosen_consumers(tier, runtime.state, runtime.options)]
    return seeds


def seed_month_quota(runtime: ScenarioRuntime) -> list[MonthlySeed]:
    """Write ``month_seeds`` to the limiter's Redis; returns them for ``run.json``."""
    redis_url = runtime.state.require_endpoints().redis
    if not redis_url:
        raise UsageError(f"{runtime.options.state}: stack has no Redis endpoint; cannot seed monthly usage")
    seeds = month_seeds(runtime)
    for seed in seeds:
        seed_month_usage(redis_url, seed.consumer, seed.used)
    log.info("quota-month: seeded %d consumers near their monthly limit", len(seeds))
    return seeds
