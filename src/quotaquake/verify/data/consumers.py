"""Per-consumer quota parameters from the run's policy: tier, token bucket shape, monthly room."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quotaquake.policy import Limits, refill_per_second
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.models.token_bucket import UNLIMITED

F64 = npt.NDArray[np.float64]
INVALID_TIER = "invalid"


@dataclass(frozen=True)
class ConsumerQuotas:
    """Arrays indexed by consumer category code. ``capacity`` is NaN for consumers not judged.

    ``capacity``/``rate``: token bucket (cost units, units/s; ``UNLIMITED`` capacity and rate 0 when the
    minute limit is unlimited); ``per_minute``: the tier's limit (NaN if unlimited); ``month_room``:
    per_month minus the seeded usage (``UNLIMITED`` if unlimited).
    """

    names: list[str]
    tiers: list[str]
    capacity: F64
    rate: F64
    per_minute: F64
    month_room: F64
    unknown_tiers: dict[str, str]

    def judged(self, code: int) -> bool:
        return not bool(np.isnan(self.capacity[code]))

    def per_minute_or_unlimited(self) -> F64:
        """``per_minute`` with unlimited tiers as ``UNLIMITED`` and unjudged consumers NaN."""
        limits = np.where(np.isnan(self.per_minute), UNLIMITED, self.per_minute)
        return np.where(np.isnan(self.capacity), np.nan, limits)


def consumer_quotas(run: RunData) -> ConsumerQuotas:
    """Look up every consumer's tier (from its first row) in the run's policy."""
    history = run.history
    names = [str(c) for c in history["consumer"].cat.categories]
    tiers = _tier_of_consumers(run, len(names))
    seeds = {seed.consumer: seed.used for seed in run.monthly_seeds}
    n = len(names)
    capacity, rate, per_minute = np.full(n, np.nan), np.zeros(n), np.full(n, np.nan)
    month_room = np.full(n, UNLIMITED)
    unknown: dict[str, str] = {}
    for code, (name, tier) in enumerate(zip(names, tiers, strict=True)):
        if tier == INVALID_TIER or tier == "":
            continue
        try:
            limits = run.info.policy.limits_for(tier)
        except KeyError:
            unknown[name] = tier
            continue
        capacity[code], rate[code], per_minute[code] = _bucket(run, limits)
        if limits.per_month is not None:
            month_room[code] = limits.per_month - seeds.get(name, 0.0)
    return ConsumerQuotas(names, tiers, capacity, rate, per_minute, month_room, unknown)


def _bucket(run: RunData, limits: Limits) -> tuple[float, float, float]:
    capacity = run.info.policy.capacity(limits)
    refill = refill_per_second(limits)
    if capacity is None or refill is None:
        return UNLIMITED, 0.0, float("nan")
    return capacity, refill, float(limits.per_minute or 0.0)


def _tier_of_consumers(run: RunData, n_consumers: int) -> list[str]:
    first = run.groups.first_rows()
    tier_codes = np.asarray(run.history["tier"].cat.codes)
    tier_names = [str(t) for t in run.history["tier"].cat.categories]
    tiers = [""] * n_consumers
    for code in range(min(len(first), n_consumers)):
        if first[code] >= 0:
            tier_code = int(tier_codes[first[code]])
            tiers[code] = tier_names[tier_code] if tier_code >= 0 else ""
    return tiers
