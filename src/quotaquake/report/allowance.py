"""Admitted vs allowed over time: the history's admissions against the quota model's ceiling, per tier
and per consumer. For display: it draws the model, it never judges (over-admission marks on the charts
come from the quota-accuracy verdict's evidence).

For one consumer, ``admitted`` A(t) is what was admitted up to t among the rows the quota check judges
(an admitted status, not marked degraded, not sent inside a fault window; rows of limiter-bypass routes
and cost-0 endpoints do not count). Units: cost units for the token bucket, requests for fixed windows.

Token bucket (capacity C = burst_factor x per_minute, refill r = per_minute / 60 per second, from
``run.json``'s policy). The ceiling is the arrival curve of the bucket::

    U(t) = min over s in [e, t] of  A(s-) + C + r (t - s)

the most a correct limiter could have admitted by t given what it admitted before every earlier moment s
(e: the end of the last fault window before t, when the bucket starts full again, as in the check's
replay; the run's start otherwise). A limiter conforms iff A never exceeds U. Since U(t) <= A(t-) + C, the
admissions always lie within the band [U - C, U]: the distance below the top is the tokens left; under
sustained overload the line rides the top edge; above it is over-admission (before the check's timing
tolerance r x w, ``w_ms`` in its evidence).

Fixed window (Kong): per_minute requests per UTC minute: U(t) = A(m-) + per_minute, m the start of t's
minute; band [A(m-), U].

Unlimited consumers (enterprise, partner) have no ceiling. A tier's curves are the sums of its consumers'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quotaquake.verify.checks.quota_token_bucket import limited_cost
from quotaquake.verify.data.consumers import ConsumerQuotas, consumer_quotas
from quotaquake.verify.data.outcomes import ADMITTED, outcome_classes
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.models.token_bucket import UNLIMITED

F64 = npt.NDArray[np.float64]
MINUTE_S = 60.0


@dataclass(frozen=True)
class Allowance:
    """Admitted vs allowed of one tier or consumer at the grid times (cumulative, see module docstring)."""

    name: str  # tier or consumer
    tier: str
    consumers: int
    admitted: F64
    ceiling: F64 | None  # None: unlimited (no band)
    floor: F64 | None  # lower edge of the band
    depth: float | None = None  # one consumer's band depth: bucket capacity C, or per_minute (fixed window)
    rate: float | None = None  # one consumer's refill per second (token bucket)

    @property
    def headroom(self) -> float | None:
        """Least ``ceiling - admitted`` over the grid (negative: above the ceiling); None if unlimited."""
        return None if self.ceiling is None else float(np.min(self.ceiling - self.admitted))


@dataclass(frozen=True)
class Allowances:
    model: str
    unit: str
    grid_s: F64  # epoch seconds
    tiers: list[Allowance]
    consumers: list[Allowance]  # the worst: named offenders first, then the least headroom


def admitted_vs_allowed(run: RunData, grid_s: F64, offenders: Sequence[str], n_consumers: int = 4) -> Allowances:
    """Per-tier curves (tiers in policy order, then the others) and ``n_consumers`` worst consumers'."""
    replay = _Replay(run, grid_s)
    tiers: dict[str, _TierSum] = {}
    headroom: dict[str, float] = {}
    for code in replay.judged_codes():
        allowance = replay.consumer(code)
        tiers.setdefault(allowance.tier, _TierSum(allowance.tier, len(grid_s))).add(allowance)
        if allowance.headroom is not None:
            headroom[allowance.name] = allowance.headroom
    order = [*run.info.policy.tiers, "anonymous"]
    ranked = sorted(tiers, key=lambda t: (order.index(t) if t in order else len(order), t))
    worst = [name for name in offenders if name in replay.codes][:n_consumers]
    for name in sorted(headroom, key=lambda c: headroom[c]):
        if len(worst) >= n_consumers:
            break
        if name not in worst:
            worst.append(name)
    return Allowances(
        model=run.info.model,
        unit="requests" if replay.fixed_window else "cost units",
        grid_s=grid_s,
        tiers=[tiers[name].total() for name in ranked],
        consumers=[replay.consumer(replay.codes[name]) for name in worst],
    )


class _TierSum:
    """A tier's curves: its consumers' summed as they come (memory: one grid per curve, not per consumer)."""

    def __init__(self, tier: str, n: int) -> None:
        self.tier, self.consumers, self.unlimited = tier, 0, False
        self.admitted, self.ceiling, self.floor = np.zeros(n), np.zeros(n), np.zeros(n)
        self.depth: float | None = None
        self.rate: float | None = None

    def add(self, member: Allowance) -> None:
        self.consumers += 1
        self.admitted += member.admitted
        if member.ceiling is None or member.floor is None:
            self.unlimited = True
            return
        self.ceiling += member.ceiling
        self.floor += member.floor
        self.depth, self.rate = member.depth, member.rate

    def total(self) -> Allowance:
        if self.unlimited:
            return Allowance(self.tier, self.tier, self.consumers, self.admitted, None, None)
        return Allowance(
            self.tier, self.tier, self.consumers, self.admitted, self.ceiling, self.floor, self.depth, self.rate
        )


class _Replay:
    """A run's counted admissions, laid out consumer by consumer, and each consumer's limits."""

    def __init__(self, run: RunData, grid_s: F64) -> None:
        history = run.history
        self.grid_s = grid_s
        self.fixed_window = run.info.model in ("fixed-window", "kong")  # Kong counts requests per UTC window
        self.quotas: ConsumerQuotas = consumer_quotas(run)
        self.codes = {name: code for code, name in enumerate(self.quotas.names)}
        admitted = (outcome_classes(np.asarray(history["status"])) == ADMITTED) & ~(run.degraded | run.in_fault)
        if self.fixed_window:
            weights = admitted.astype(np.float64)
        else:
            weights = np.where(admitted, np.asarray(limited_cost(history), dtype=np.float64), 0.0)
        self.groups = run.groups
        self.sent_blocks = self.groups.scatter(np.asarray(history["sent_ns"], dtype=np.int64))
        self.weight_blocks = self.groups.scatter(np.maximum(weights, 0.0))
        self.resets_s = np.asarray(run.fault_ends_ns, dtype=np.float64) / 1e9

    def judged_codes(self) -> list[int]:
        return [c for c in range(self.groups.count) if self.quotas.judged(c)]

    def events(self, code: int) -> tuple[F64, F64]:
        """Send times (epoch s) and weights of the consumer's counted admissions."""
        lo, hi = int(self.groups.starts[code]), int(self.groups.starts[code + 1])
        weights = self.weight_blocks[lo:hi]
        counted = weights > 0
        return self.sent_blocks[lo:hi][counted] / 1e9, weights[counted]

    def consumer(self, code: int) -> Allowance:
        times, weights = self.events(code)
        grid = self.grid_s
        admitted = _cumulative(times, weights, grid, inclusive=True)
        name, tier = self.quotas.names[code], self.quotas.tiers[code]
        capacity, rate = float(self.quotas.capacity[code]), float(self.quotas.rate[code])
        if capacity >= UNLIMITED:
            return Allowance(name, tier, 1, admitted, None, None)
        if self.fixed_window:
            per_minute = float(self.quotas.per_minute[code])
            floor = _cumulative(times, weights, np.floor(grid / MINUTE_S) * MINUTE_S, inclusive=False)
            return Allowance(name, tier, 1, admitted, floor + per_minute, floor, per_minute)
        ceiling = bucket_ceiling(times, weights, grid, capacity, rate, self.resets_s)
        return Allowance(name, tier, 1, admitted, ceiling, ceiling - capacity, capacity, rate)


def bucket_ceiling(times: F64, weights: F64, grid: F64, capacity: float, rate: float, resets: F64) -> F64:
    """U(t) of the module docstring at every ``grid`` time: ``times`` (sorted, s) and ``weights`` are the
    admissions, ``resets`` (sorted, s) the moments the bucket starts full again."""
    total = np.cumsum(weights)
    before_reset = _cumulative(times, weights, resets, inclusive=False)
    # candidates s: each reset and each admission, valued A(s-) - r s; the running minimum restarts at resets
    cand_t = np.concatenate((resets, times))
    cand_v = np.concatenate((before_reset - rate * resets, total - weights - rate * times))
    is_reset = np.concatenate((np.ones(len(resets), dtype=bool), np.zeros(len(times), dtype=bool)))
    order = np.argsort(cand_t, kind="stable")  # a reset sorts before an admission at the same time
    cand_t, cand_v, is_reset = cand_t[order], cand_v[order], is_reset[order]
    running = np.empty_like(cand_v)
    bounds = [*np.flatnonzero(is_reset).tolist(), len(cand_v)]
    for lo, hi in zip([0, *bounds[:-1]], bounds, strict=True):
        running[lo:hi] = np.minimum.accumulate(cand_v[lo:hi]) if hi > lo else running[lo:hi]
    last = np.searchsorted(cand_t, grid, side="right") - 1
    prior = np.where(last >= 0, running[np.maximum(last, 0)] if len(running) else np.inf, np.inf)
    own = _cumulative(times, weights, grid, inclusive=False) - rate * grid  # s = t itself
    return capacity + rate * grid + np.minimum(prior, own)


def _cumulative(times: F64, weights: F64, at: F64, *, inclusive: bool) -> F64:
    """Sum of ``weights`` of ``times`` <= ``at`` (``inclusive``) or < ``at``."""
    if len(times) == 0:
        return np.zeros(len(at))
    total = np.cumsum(weights)
    index = np.searchsorted(times, at, side="right" if inclusive else "left")
    return np.where(index > 0, total[np.maximum(index - 1, 0)], 0.0)
