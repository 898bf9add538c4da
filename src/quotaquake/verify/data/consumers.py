"""Per-consumer quota parameters from the run's policy (tier, token bucket shape, monthly room) and what
the run established about each consumer's quota state when its first request was sent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quotaquake.policy import Limits, refill_per_second
from quotaquake.runfolder.models import InitialState
from quotaquake.verify.data.rundata import RunData, fault_bounds_ns
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
    month_limit: F64 | None = None  # per_month (``UNLIMITED`` if none); NaN for consumers not judged
    seeds: F64 | None = None  # usage seeded before the first request (NaN: not seeded)

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
    month_room, month_limit, seeded = np.full(n, UNLIMITED), np.full(n, UNLIMITED), np.full(n, np.nan)
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
        if name in seeds:
            seeded[code] = seeds[name]
        if limits.per_month is not None:
            month_room[code] = limits.per_month - seeds.get(name, 0.0)
            month_limit[code] = float(limits.per_month)
    return ConsumerQuotas(names, tiers, capacity, rate, per_minute, month_room, unknown, month_limit, seeded)


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


@dataclass(frozen=True)
class InitialStates:
    """What is known of each consumer's state at its first request (arrays indexed by consumer code).

    ``bucket_known``: the bucket was full (the run reset the consumer before it started); else its level
    is anywhere in [0, C]. ``month_lo``/``month_hi``: the month usage lies in [lo, hi] (cost units;
    ``UNLIMITED`` hi: unknown). A reset puts it at 0, a seed (``engine.json``'s ``monthly_seeds``, set at
    the engine's test start) at the seeded value; a fault window that started before the consumer's first
    request may have wiped a seeded counter (Redis restarted empty), so it is then in [0, seed].
    ``labels``: a short description per consumer for the evidence.
    """

    bucket_known: npt.NDArray[np.bool_]
    month_lo: F64
    month_hi: F64
    labels: list[str]


def initial_states(run: RunData, quotas: ConsumerQuotas) -> InitialStates:
    """The initial state of every consumer from ``run.json`` (``initial_state``, ``initial_state_at``),
    the seeds and the fault windows."""
    n = len(quotas.names)
    first = run.groups.first_rows()
    sent = np.asarray(run.history["sent_ns"])
    first_sent = np.where(first >= 0, sent[np.maximum(first, 0)] if len(sent) else 0, np.iinfo(np.int64).max)
    reset_ns = _reset_ns(run)
    fault_starts = [fault_bounds_ns(w)[0] for w in run.faults]
    seeds = quotas.seeds if quotas.seeds is not None else np.full(n, np.nan)
    known = np.zeros(n, dtype=np.bool_)
    month_lo, month_hi = np.zeros(n), np.full(n, UNLIMITED)
    labels = []
    for code in range(n):
        reset = reset_ns is not None and reset_ns <= int(first_sent[code])
        fault_before = any(start < int(first_sent[code]) for start in fault_starts)
        seed = float(seeds[code])
        known[code] = reset
        if not np.isnan(seed):
            month_lo[code], month_hi[code] = (0.0 if fault_before else seed), seed
        elif reset:
            month_hi[code] = 0.0
        labels.append(_label(reset, seed, fault_before))
    return InitialStates(known, month_lo, month_hi, labels)


def _reset_ns(run: RunData) -> int | None:
    """When the run reset its consumers (epoch ns; the run's start if not recorded), or ``None``."""
    if run.info.initial_state != InitialState.RESET:
        return None
    at = run.info.initial_state_at or run.info.started_at
    return int(at.timestamp() * 1e9)


def _label(reset: bool, seed: float, fault_before: bool) -> str:
    bucket = "reset: full bucket" if reset else "unknown: bucket in [0, capacity]"
    if np.isnan(seed):
        month = "month 0" if reset else "month usage >= 0"
    else:
        month = f"month seeded at {seed:g}" + (" (or 0: a fault came before its first request)" if fault_before else "")
    return f"{bucket}, {month}"
