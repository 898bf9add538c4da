"""The decision arithmetic: a token bucket with cost plus a monthly counter, in pure Python.

``decide.lua`` does exactly the same arithmetic atomically inside Redis; this module is the reference
model for table-driven unit tests with an injected clock, the per-process fallback buckets used while
Redis is unavailable, and the computation of the response headers from a decision.

Units: tokens and usage are cost units (a request to an endpoint of cost 2.0 takes 2 tokens and adds 2 to
the month); times are seconds (floats, epoch seconds for ``now``). A bucket starts full
(``capacity = burst_factor * per_minute``) and refills continuously at ``per_minute / 60`` tokens per
second, never above capacity. A request is admitted when the bucket holds at least ``cost`` tokens AND
``month_used + cost <= per_month``; a rejected request consumes nothing. Cost 0 is always admitted and
changes nothing (exempt endpoints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from quotaquake.policy import Limits, Policy, refill_per_second


@dataclass(frozen=True, slots=True)
class Quota:
    """The limits of one tier in the units the arithmetic needs; ``None`` means unlimited."""

    per_minute: float | None
    capacity: float | None
    refill_per_second: float | None
    per_month: float | None

    @property
    def unlimited(self) -> bool:
        return self.capacity is None and self.per_month is None

    @classmethod
    def of(cls, policy: Policy, limits: Limits) -> Quota:
        per_month = None if limits.per_month is None else float(limits.per_month)
        return cls(limits.per_minute, policy.capacity(limits), refill_per_second(limits), per_month)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One decision: admitted or not, and the state right after it.

    ``tokens``: tokens left after the decision (``None`` when the minute limit is unlimited);
    ``month_used``: cost units used this month after the decision; ``bucket_short``/``month_short``:
    which limit refused a rejected request (both may be true; both false when admitted).
    """

    allowed: bool
    tokens: float | None
    month_used: float
    bucket_short: bool = False
    month_short: bool = False


def refilled(quota: Quota, tokens: float | None, stamp: float | None, now: float) -> float | None:
    """Tokens at ``now`` of a bucket that held ``tokens`` at ``stamp``; a missing state is a full bucket.

    A clock that went backwards (``now < stamp``) adds nothing.
    """
    if quota.capacity is None or quota.refill_per_second is None:
        return None
    if tokens is None or stamp is None:
        return quota.capacity
    elapsed = max(0.0, now - stamp)
    return min(quota.capacity, tokens + elapsed * quota.refill_per_second)


def decide(quota: Quota, cost: float, tokens: float | None, month_used: float) -> Outcome:
    """Admit or reject ``cost`` given the refilled ``tokens`` and this month's usage."""
    bucket_short = tokens is not None and tokens < cost
    month_short = quota.per_month is not None and month_used + cost > quota.per_month
    if cost <= 0:
        return Outcome(True, tokens, month_used)
    if bucket_short or month_short:
        return Outcome(False, tokens, month_used, bucket_short, month_short)
    after = None if tokens is None else tokens - cost
    used = month_used + cost if quota.per_month is not None else month_used
    return Outcome(True, after, used)


def reset_seconds(quota: Quota, tokens: float | None) -> int:
    """Whole seconds (rounded up) until the bucket is full again; 0 when full or unlimited."""
    if tokens is None or quota.capacity is None or not quota.refill_per_second:
        return 0
    return max(0, math.ceil((quota.capacity - tokens) / quota.refill_per_second))


def retry_after_seconds(quota: Quota, outcome: Outcome, cost: float, to_month_end: float) -> int:
    """Whole seconds (rounded up, at least 1) until retrying the rejected request can succeed.

    Bucket short: time to refill the missing tokens (if ``cost`` exceeds the capacity it never fits: the
    time to a full bucket is returned). Month short: time until the next UTC month (``to_month_end``).
    """
    wait = 0.0
    if outcome.bucket_short and outcome.tokens is not None and quota.refill_per_second:
        needed = min(cost, quota.capacity or cost) - outcome.tokens
        wait = max(wait, needed / quota.refill_per_second)
    if outcome.month_short:
        wait = max(wait, to_month_end)
    return max(1, math.ceil(wait))


@dataclass(slots=True)
class BucketState:
    tokens: float | None
    stamp: float
    month_used: float


class LocalBuckets:
    """Per-process buckets (the fallback while Redis is unavailable): same arithmetic, local state.

    ``month_floor`` seeds a consumer's monthly usage with the last value seen from Redis, so a consumer
    over its month stays over it while degraded. State lives only in this process: with N limiter replicas
    up to N buckets' worth is admitted while degraded (declared by the policy's ``fail-open-local``).
    """

    def __init__(self) -> None:
        self._states: dict[str, BucketState] = {}

    def decide(self, consumer: str, quota: Quota, cost: float, now: float, month_floor: float = 0.0) -> Outcome:
        state = self._states.get(consumer)
        if state is None:
            state = BucketState(None, now, month_floor)
            self._states[consumer] = state
        tokens = refilled(quota, state.tokens, state.stamp, now)
        outcome = decide(quota, cost, tokens, max(state.month_used, month_floor))
        if outcome.allowed and cost > 0:
            state.tokens, state.stamp, state.month_used = outcome.tokens, now, outcome.month_used
        return outcome

    def clear(self) -> None:
        """Forget every local bucket (called when Redis is back: shared state is authoritative again)."""
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)
