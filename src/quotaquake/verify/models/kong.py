"""Kong 3.9 (OSS) ``rate-limiting`` plugin as a pure, Jepsen-style checker of one consumer's requests.

Kong's semantics (tag 3.9.3, commit a643428b; paths under github.com/Kong/kong; details and worked examples
in ``docs/kong-3.9.md``):

* Fixed windows aligned to the UTC calendar (``kong/tools/timestamp.lua:46-69``). The window of a request is
  taken from the node's cached clock ``ngx.time()`` when its access phase starts
  (``kong/plugins/rate-limiting/handler.lua:127``), an instant in [sent, response] of that request.
* ``redis`` with ``sync_rate = -1`` ("redis-sync"): per configured period the request runs ``INCR`` on the
  window's key and gets the count *before* it (``policies/init.lua:406-415``), before the limit check; it is
  admitted iff that count is below the limit in every period (``handler.lua:100-110``). Rejected requests
  are therefore counted, and the limit is exact whatever the number of nodes: tolerance zero.
* ``local`` and ``cluster``: read the count, check, and increment in a 0-delay timer after the decision
  (``handler.lua:211-215``; a lua-resty-timer-ng timer, ``kong/globalpatches.lua:87-115``), so 429s are not
  counted and concurrent requests race; ``local`` counts per node (shared dict).
* ``redis`` with ``sync_rate > 0`` ("redis-async"): each worker caches the count it read, adds its own
  admissions, and pushes its deltas every ``sync_rate`` seconds (``policies/init.lua:168-299,387-397``).
* Headers per period: ``Remaining = max(0, limit - count_before - 1)``; on a 429 only the period that stopped
  the request is decremented, so a period showing ``r > 0`` on a 429 had ``count_before = limit - r``
  (``handler.lua:160-186``). Rate-limit store down: with ``fault_tolerant`` the request is proxied with no
  rate-limit headers (``handler.lua:144-152``), else HTTP 500.

What the checker decides. Inputs are one consumer's requests (every request of that consumer in the run,
sorted by send time). A request is counted by Kong at an unknown instant in [sent, sent + latency]; a request
without a response (status 0) may or may not have been counted, at any instant up to
``JudgeOptions.lost_request_horizon_ms`` after it was sent. Each judgement is one of:

* ``fail``: some flag is *certain*, i.e. holds under every timing, every initial count and every reading of
  the indeterminate requests. Each flag is proven with the reading most favourable to Kong for that flag.
* ``pass``: ONE consistent reading of the whole history was found and checked (redis-sync: a linearization
  of every window's counter; lagged policies: one reading that keeps every window within the tolerance
  bound and justifies every 429), and no part of the history was left undecided.
* ``unknown``: neither; ``reasons`` say why (search budget, a pre-run count that only an assumption could
  supply, a counter that may expire inside its window, headers hidden while the store may have failed, ...).

Units: times are integer nanoseconds since the Unix epoch (UTC); latencies are milliseconds; counts and
limits are requests (Kong has no per-request cost: every increment is 1, ``handler.lua:209,212``).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import combinations, pairwise
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Status = Literal["pass", "fail", "unknown"]

NS_PER_MS: Final = 1_000_000
NS_PER_S: Final = 1_000_000_000
PERIODS: Final = ("second", "minute", "hour", "day", "month", "year")
#: Counter TTL per period (``kong/plugins/rate-limiting/expiration.lua:1-8``); also the window size that
#: ``RateLimit-Reset`` assumes (``handler.lua:181``): a "month" is 30 days, a "year" 365 days.
EXPIRATION_S: Final[Mapping[str, int]] = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "month": 2_592_000,
    "year": 31_536_000,
}
EMPTY_UUID: Final = "00000000-0000-0000-0000-000000000000"

FLAG_OVER_ADMITTED: Final = 1  # admitted although no consistent state had room
FLAG_IN_OVER_WINDOW: Final = 2  # admitted in a window that certainly admitted too many (which ones: unknowable)
FLAG_FALSE_REJECTION: Final = 4  # rejected although every consistent state had room
FLAG_HEADER_VIOLATION: Final = 8  # rate-limit headers no consistent count explains
FLAG_UNDECIDED: Final = 16  # a reason the verdict is unknown

_FIXED_WINDOW_NS: Final[Mapping[str, int]] = {
    "second": NS_PER_S,
    "minute": 60 * NS_PER_S,
    "hour": 3600 * NS_PER_S,
    "day": 86400 * NS_PER_S,
}
_IGNORED, _ADMITTED, _REJECTED, _FREE = 0, 1, 2, 3
_KONG_ERROR_STATUSES: Final = (500, 502, 503, 504)
_BIG: Final = 1 << 60  # "no bound" for counts and ranks
_FAR: Final = 1 << 80  # "never" for instants in ns (Python ints, beyond any int64 timestamp)


class Variant(StrEnum):
    """The four behaviours of the plugin that the model distinguishes."""

    REDIS_SYNC = "redis-sync"
    REDIS_ASYNC = "redis-async"
    LOCAL = "local"
    CLUSTER = "cluster"


# --------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class KongRateLimiting:
    """The plugin configuration the history is judged against (``kong/plugins/rate-limiting/schema.lua``).

    ``limits``: requests per window for each configured period, e.g. ``{"minute": 100, "month": 50000}``.
    ``policy``: ``redis`` | ``local`` | ``cluster`` (Kong's own default is ``local``, schema.lua:61-68).
    ``sync_rate_s``: -1 (synchronous) or >= 0.02 s, redis only (schema.lua:25-33).
    ``replicas``: Kong nodes behind the load balancer; ``workers_per_replica``: nginx workers per node
    (redis-async caches per worker). ``increment_lag_ms`` (local/cluster): how long after a response its
    increment may still be invisible to other requests; the increment runs in a lua-resty-timer-ng timer
    (100 ms wheel) and, for cluster, a Postgres upsert, so Kong's source gives no bound: this is an
    assumption, reported in every window summary through the capacity it yields.
    """

    limits: Mapping[str, int]
    policy: str = "redis"
    sync_rate_s: float = -1.0
    replicas: int = 1
    workers_per_replica: int = 1
    fault_tolerant: bool = True
    hide_client_headers: bool = False
    error_code: int = 429
    increment_lag_ms: float = 1000.0

    def __post_init__(self) -> None:
        _validate_limits(self.limits)
        if self.policy not in ("redis", "local", "cluster"):
            raise ValueError(f"unknown policy {self.policy!r}")
        if self.policy != "redis" and self.sync_rate_s != -1:
            raise ValueError("sync_rate can only be used with the redis policy (schema.lua:25-27)")
        if self.policy == "redis" and self.sync_rate_s != -1 and self.sync_rate_s < 0.02:
            raise ValueError("sync_rate must be greater than 0.02, or -1 to disable (schema.lua:29-33)")
        if self.replicas < 1 or self.workers_per_replica < 1 or self.increment_lag_ms < 0:
            raise ValueError("replicas and workers_per_replica must be >= 1, increment_lag_ms >= 0")

    @property
    def variant(self) -> Variant:
        if self.policy == "redis":
            return Variant.REDIS_SYNC if self.sync_rate_s == -1 else Variant.REDIS_ASYNC
        return Variant.LOCAL if self.policy == "local" else Variant.CLUSTER

    @property
    def periods(self) -> tuple[str, ...]:
        """Configured periods, shortest window first."""
        return tuple(p for p in PERIODS if p in self.limits)


def _validate_limits(limits: Mapping[str, int]) -> None:
    if not limits:
        raise ValueError("at least one period limit is required (schema.lua:199)")
    for period, limit in limits.items():
        if period not in EXPIRATION_S:
            raise ValueError(f"unknown period {period!r}")
        if int(limit) != limit or limit <= 0:
            raise ValueError(f"limit of {period} must be a positive integer, got {limit!r}")
    ordered = [limits[p] for p in PERIODS if p in limits]
    if any(later < earlier for earlier, later in pairwise(ordered)):
        raise ValueError("a longer period cannot have a lower limit (schema.lua:10-23)")


@dataclass(frozen=True)
class ConsumerRequests:
    """One consumer's requests (one identifier's counters), sorted by send time.

    ``sent_ns``: send instant, ns since the epoch (UTC). ``status``: HTTP status, 0 when no response came.
    ``latency_ms``: send -> response (for status 0: how long the client waited, or NaN).
    ``remaining``: per period, the ``X-RateLimit-Remaining-<Period>`` value of each response (NaN where
    absent); leave a period out when the recorder did not capture it at all.
    ``known_start``: per period, True when the run established that the window holding the consumer's first
    request started at 0 (a consumer provisioned fresh for the run). Windows that begin after the first
    request always start at 0; the others start at an unknown count >= 0.
    ``seeded``: per period, ``(window_start_ns, count)``: the run set that window's counter to exactly
    ``count`` before the first request (e.g. the quota-month scenario writing Kong's month key), so it starts
    there, known.
    """

    sent_ns: I64
    status: I64
    latency_ms: F64
    remaining: Mapping[str, F64] = field(default_factory=dict)
    known_start: Mapping[str, bool] = field(default_factory=dict)
    seeded: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.sent_ns)
        lengths = [len(self.status), len(self.latency_ms), *(len(v) for v in self.remaining.values())]
        if any(length != n for length in lengths):
            raise ValueError("all per-request arrays must have the same length")
        if n > 1 and bool(np.any(np.diff(np.asarray(self.sent_ns, dtype=np.int64)) < 0)):
            raise ValueError("requests must be sorted by sent_ns")


@dataclass(frozen=True)
class JudgeOptions:
    """How much timing uncertainty to allow and how hard to search.

    ``clock_skew_ms``: bound on |Kong node clock - load generator clock|; widens the instant that picks a
    request's window to [sent - skew, response + skew] (ordering between requests is causal and needs none).
    ``lost_request_horizon_ms``: a request without response may be counted up to this long after its send.
    ``store_fault_free``: the caller asserts Redis/Postgres never failed, so a request without headers was not
    a fault-tolerant pass-through (only matters with ``hide_client_headers``).
    ``unreached_statuses``: statuses produced before rate-limiting runs (key-auth, priority 1250 > 910).
    ``max_enumerated_straddlers`` and ``search_budget`` bound the witness search (window schedules tried).
    """

    clock_skew_ms: float = 0.0
    lost_request_horizon_ms: float = 60_000.0
    store_fault_free: bool = False
    unreached_statuses: frozenset[int] = frozenset({401})
    max_enumerated_straddlers: int = 8
    search_budget: int = 20_000


# -------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class WindowSummary:
    """One window of one period.

    ``start_count_min``/``start_count_max``: what the evidence says about the count at the window start
    (known windows: 0/0; ``inf`` when nothing bounds it). ``capacity``: the most admissions the model allows
    in the window (redis-sync: ``limit - start_count_min``; lagged policies: the tolerance bound).
    ``min_excess_admissions`` and ``min_false_rejections`` are certain lower bounds.
    """

    period: str
    start_ns: int
    end_ns: int
    limit: int
    start_known: bool
    start_count_min: int
    start_count_max: float
    capacity: float
    admitted_certain: int
    admitted_possible: int
    rejected_certain: int
    min_excess_admissions: int
    min_false_rejections: int
    header_violations: int
    status: Status
    reason: str


@dataclass(frozen=True)
class ConsumerVerdict:
    """The judgement of one consumer.

    ``flags``: per request, a bit set of ``FLAG_*``. ``witness``: per period, the count before each request
    in the consistent reading that proved ``pass`` (redis-sync only; -1 where not counted), else empty.
    """

    status: Status
    reasons: tuple[str, ...]
    flags: npt.NDArray[np.uint8]
    windows: tuple[WindowSummary, ...]
    witness: Mapping[str, I64]


# ------------------------------------------------------------------------------------ Kong formulas


def window_start_ns(period: str, t_ns: I64) -> I64:
    """Start (ns, UTC) of the window of ``period`` holding each instant (``kong/tools/timestamp.lua:46-69``).

    second/minute/hour/day are fixed sizes; month starts on the 1st 00:00 UTC and year on 1 January.
    """
    t = np.asarray(t_ns, dtype=np.int64)
    if period in _FIXED_WINDOW_NS:
        step = _FIXED_WINDOW_NS[period]
        return np.asarray((t // step) * step, dtype=np.int64)
    unit = "M" if period == "month" else "Y"
    return np.asarray(t.astype("datetime64[ns]").astype(f"datetime64[{unit}]").astype("datetime64[ns]"), np.int64)


def window_end_ns(period: str, start_ns: I64) -> I64:
    """End (exclusive, ns) of the windows starting at ``start_ns``."""
    start = np.asarray(start_ns, dtype=np.int64)
    if period in _FIXED_WINDOW_NS:
        return np.asarray(start + _FIXED_WINDOW_NS[period], dtype=np.int64)
    step = np.timedelta64(1, "M") if period == "month" else np.timedelta64(1, "Y")
    following = start.astype("datetime64[ns]").astype(f"datetime64[{'M' if period == 'month' else 'Y'}]") + step
    return np.asarray(following.astype("datetime64[ns]"), dtype=np.int64)


def reset_seconds(period: str, now_s: int) -> int:
    """``RateLimit-Reset`` (and ``Retry-After``) for ``period`` at Kong clock ``now_s`` (handler.lua:181).

    ``max(1, EXPIRATION[period] - seconds elapsed in the period)``: for month/year the window size is the
    fixed 30/365 days of ``expiration.lua``, so it overstates short months and bottoms out at 1 on day 31.
    """
    start_ns = int(window_start_ns(period, np.array([now_s * NS_PER_S], dtype=np.int64))[0])
    return max(1, EXPIRATION_S[period] - (now_s - start_ns // NS_PER_S))


def redis_key(
    identifier: str, period: str, now_s: int, route_id: str | None = None, service_id: str | None = None
) -> str:
    """The counter key (``policies/init.lua:50-73``): ids of the plugin's scope, zero UUIDs when unscoped."""
    start_ms = int(window_start_ns(period, np.array([now_s * NS_PER_S], dtype=np.int64))[0]) // NS_PER_MS
    return f"ratelimit:{route_id or EMPTY_UUID}:{service_id or EMPTY_UUID}:{identifier}:{start_ms}:{period}"


@dataclass(frozen=True)
class KongDecision:
    """What Kong answers for one request: admitted or not, and the exact response headers it sets."""

    admitted: bool
    headers: Mapping[str, str]


def kong_decision(
    limits: Mapping[str, int], counts_before: Mapping[str, int], now_s: int, *, hide_client_headers: bool = False
) -> KongDecision:
    """Replay of ``handler.lua:89-205`` for one request whose counters stood at ``counts_before``.

    Which exhausted period is "the" stop period depends on Lua's ``pairs`` order (handler.lua:108-110), but
    header values do not: the stop period shows ``max(0, limit - count - 1) = 0`` and any other exhausted
    period ``max(0, limit - count) = 0``. ``RateLimit-*`` describe the period with the least remaining,
    ties to the longer window (169-176); ``Retry-After`` repeats ``RateLimit-Reset`` on 429s only (196).
    """
    _validate_limits(limits)
    rows = [(p, int(limits[p]), int(limits[p]) - int(counts_before[p])) for p in PERIODS if p in limits]
    exhausted = [p for p, _, room in rows if room <= 0]
    stop = max(exhausted, key=EXPIRATION_S.__getitem__) if exhausted else None
    if hide_client_headers:
        return KongDecision(stop is None, {})
    headers: dict[str, str] = {}
    best: tuple[int, int, str, int] | None = None
    for period, limit, room in rows:
        shown = max(0, room - 1 if stop in (None, period) else room)
        headers[f"X-RateLimit-Limit-{period.capitalize()}"] = str(limit)
        headers[f"X-RateLimit-Remaining-{period.capitalize()}"] = str(shown)
        if best is None or (shown, -EXPIRATION_S[period]) < (best[0], -best[1]):
            best = (shown, EXPIRATION_S[period], period, limit)
    assert best is not None
    reset = reset_seconds(best[2], now_s)
    headers.update({"RateLimit-Limit": str(best[3]), "RateLimit-Remaining": str(best[0])})
    headers["RateLimit-Reset"] = str(reset)
    if stop is not None:
        headers["Retry-After"] = str(reset)
    return KongDecision(stop is None, headers)


# ------------------------------------------------------------------------------ per-request readings


@dataclass(frozen=True)
class _Timing:
    """``sent``: send (ns); ``done``: latest instant Kong may count the request; ``earliest``/``latest``:
    bounds of the Kong clock reading that picks its window (clock skew included)."""

    sent: I64
    done: I64
    earliest: I64
    latest: I64


def _timing(requests: ConsumerRequests, options: JudgeOptions) -> _Timing:
    sent = np.asarray(requests.sent_ns, dtype=np.int64)
    latency = np.asarray(requests.latency_ms, dtype=np.float64)
    answered = (np.asarray(requests.status) != 0) & np.isfinite(latency) & (latency >= 0)
    waited = np.where(np.isfinite(latency) & (latency >= 0), latency, 0.0)
    window_ms = np.where(answered, latency, np.maximum(waited, options.lost_request_horizon_ms))
    done = sent + np.ceil(np.where(np.isfinite(window_ms), window_ms, 0.0) * NS_PER_MS).astype(np.int64)
    skew = math.ceil(options.clock_skew_ms * NS_PER_MS)
    return _Timing(sent, done, sent - skew, done + skew)


@dataclass(frozen=True)
class _Classes:
    """``kind``: ignored / admitted (passed the check with usage) / rejected / free (may or may not be
    counted, no limit decision observed). ``linked``: free requests counted in every period or none."""

    kind: npt.NDArray[np.int8]
    linked: Bools
    header_bad: Bools
    notes: tuple[str, ...]


def _classify(requests: ConsumerRequests, config: KongRateLimiting, options: JudgeOptions) -> _Classes:
    status = np.asarray(requests.status, dtype=np.int64)
    unreached = np.isin(status, sorted(options.unreached_statuses))
    lost = (status == 0) & ~unreached
    rejected = (status == config.error_code) & ~unreached & ~lost
    passed = ~(unreached | lost | rejected)
    kind = np.full(len(status), _ADMITTED, dtype=np.int8)
    kind[unreached], kind[lost], kind[rejected] = _IGNORED, _FREE, _REJECTED
    recorded = [p for p in config.periods if p in requests.remaining]
    if config.hide_client_headers or not recorded:
        bad, notes = _classify_headerless(status, passed, kind, config, options)
    else:
        bad, notes = _classify_with_headers(requests, recorded, status, passed, rejected, kind, config)
    return _Classes(kind, lost, bad, notes)


def _classify_headerless(
    status: I64, passed: Bools, kind: npt.NDArray[np.int8], config: KongRateLimiting, options: JudgeOptions
) -> tuple[Bools, tuple[str, ...]]:
    """Without headers a fault-tolerant pass-through (handler.lua:144-152) looks like any admission."""
    if config.fault_tolerant and not options.store_fault_free and bool(passed.any()):
        kind[passed] = _FREE
        note = (
            "admissions cannot be judged: no rate-limit headers to tell a limited admission from a "
            "fault_tolerant pass-through (handler.lua:144-152); set store_fault_free if the store never failed"
        )
        return np.zeros(len(status), dtype=np.bool_), (note,)
    kind[passed & (status == 500)] = _FREE  # the plugin's own 500 (kong/init.lua:405-410) or the upstream's
    return np.zeros(len(status), dtype=np.bool_), ()


def _classify_with_headers(
    requests: ConsumerRequests,
    recorded: Sequence[str],
    status: I64,
    passed: Bools,
    rejected: Bools,
    kind: npt.NDArray[np.int8],
    config: KongRateLimiting,
) -> tuple[Bools, tuple[str, ...]]:
    """Every response that went through the check carries one header per period (handler.lua:160-205)."""
    finite = np.array([np.isfinite(np.asarray(requests.remaining[p], dtype=np.float64)) for p in recorded])
    any_header, all_headers = finite.any(axis=0), finite.all(axis=0)
    missing = passed & ~any_header
    kind[missing] = _FREE  # store failure (pass-through or the plugin's 500) or a Kong-generated 5xx
    bad = (passed | rejected) & any_header & ~all_headers
    bad |= rejected & ~any_header
    if not config.fault_tolerant:
        bad |= missing & ~np.isin(status, _KONG_ERROR_STATUSES)
    return np.asarray(bad, dtype=np.bool_), ()


@dataclass(frozen=True)
class _Observed:
    """What one period's header says. ``exact``: the count Kong saw before the request (redis-sync: the
    window's count; other policies: the deciding node's or worker's view). ``at_least``: a 429 this period
    certainly stopped or had exhausted (header 0, or the only period). ``floating``: a 429 that need not."""

    exact: F64
    at_least: Bools
    zero_shown: Bools
    bad: Bools


def _observe(requests: ConsumerRequests, config: KongRateLimiting, classes: _Classes, period: str) -> _Observed:
    limit = int(config.limits[period])
    n = len(classes.kind)
    shown = np.asarray(requests.remaining.get(period, np.full(n, np.nan)), dtype=np.float64)
    admitted, rejected = classes.kind == _ADMITTED, classes.kind == _REJECTED
    has = np.isfinite(shown) & (admitted | rejected)
    slack = 1 if config.variant is Variant.REDIS_ASYNC else 0  # a worker's view can be -1 (policies/init.lua:435)
    bad = has & ((shown != np.round(shown)) | (shown < 0))
    bad |= admitted & has & (shown > limit - 1 + slack)
    bad |= rejected & has & (shown > limit + slack)
    usable = has & ~bad
    exact = np.full(n, np.nan)
    exact[admitted & usable] = limit - 1 - shown[admitted & usable]
    seen_stopped = rejected & usable & (shown > 0)
    exact[seen_stopped] = limit - shown[seen_stopped]
    zero_shown = rejected & usable & (shown == 0)
    single = len(config.periods) == 1
    at_least = zero_shown | (rejected & ~has & single)
    return _Observed(exact, at_least, zero_shown, bad)


def _no_stop_period(requests: ConsumerRequests, config: KongRateLimiting, classes: _Classes) -> Bools:
    """A 429 whose headers show no period at 0: the stop period always shows 0 (handler.lua:164-167)."""
    n = len(classes.kind)
    if config.hide_client_headers or any(p not in requests.remaining for p in config.periods):
        return np.zeros(n, dtype=np.bool_)
    shown = np.array([np.asarray(requests.remaining[p], dtype=np.float64) for p in config.periods])
    complete = np.isfinite(shown).all(axis=0)
    return np.asarray((classes.kind == _REJECTED) & complete & ~(shown == 0).any(axis=0), dtype=np.bool_)


# ------------------------------------------------------------------------------------- period views


@dataclass(frozen=True)
class _PeriodView:
    """The windows of one period and which requests may belong to each.

    ``known``: windows whose start count the run established, ``start_counts`` that count (0 unless seeded).
    ``lo``/``hi``: first and last possible window index of each request (-1: ignored). ``kind`` is the
    request kind for this period: a request whose window cannot be pinned to two adjacent windows, or that
    may fall in the tail of a month/year counter that can expire early, is demoted to free and unjudged.
    ``pair_*``: (request, window) membership pairs sorted by window; ``offsets`` slices them per window.
    """

    period: str
    limit: int
    starts: I64
    ends: I64
    known: Bools
    start_counts: I64
    lo: I64
    hi: I64
    kind: npt.NDArray[np.int8]
    unjudged: Bools
    pair_req: I64
    pair_certain: Bools
    offsets: I64

    def members(self, w: int) -> tuple[I64, Bools]:
        lo, hi = int(self.offsets[w]), int(self.offsets[w + 1])
        return self.pair_req[lo:hi], self.pair_certain[lo:hi]


def _period_view(
    period: str,
    limit: int,
    timing: _Timing,
    classes: _Classes,
    known_fresh: bool,
    seeded: tuple[int, int] | None = None,
) -> _PeriodView:
    active = classes.kind != _IGNORED
    lo_start = window_start_ns(period, timing.earliest)
    hi_start = window_start_ns(period, timing.latest)
    starts = np.unique(np.concatenate([lo_start[active], hi_start[active]]))
    ends = window_end_ns(period, starts)
    lo = np.where(active, np.searchsorted(starts, lo_start), -1).astype(np.int64)
    hi = np.where(active, np.searchsorted(starts, hi_start), -1).astype(np.int64)
    multi = active & (hi_start > window_end_ns(period, lo_start))
    tail = active & _in_counter_tail(period, starts, ends, lo, hi, timing.latest)
    kind = classes.kind.copy()
    demoted = ((kind == _ADMITTED) | (kind == _REJECTED)) & (multi | tail)
    kind[demoted] = _FREE
    first_sent = int(timing.sent[active].min()) if bool(active.any()) else 0
    known = np.asarray(np.full(len(starts), known_fresh) | (starts > first_sent), dtype=np.bool_)
    start_counts = np.zeros(len(starts), dtype=np.int64)
    if seeded is not None:
        at = np.flatnonzero(starts == seeded[0])
        known[at], start_counts[at] = True, seeded[1]
    pair_req, pair_win, certain = _membership_pairs(lo, hi, active)
    offsets = np.searchsorted(pair_win, np.arange(len(starts) + 1)).astype(np.int64)
    return _PeriodView(
        period, limit, starts, ends, known, start_counts, lo, hi, kind, demoted, pair_req, certain, offsets
    )


def _in_counter_tail(period: str, starts: I64, ends: I64, lo: I64, hi: I64, latest: I64) -> Bools:
    """May the request fall after ``start + TTL`` of a window longer than its TTL? The key's TTL starts at
    its first INCR (policies/init.lua:410-412), so a 31-day month's counter can vanish on day 31."""
    tail_start = starts + EXPIRATION_S[period] * NS_PER_S
    has_tail = tail_start < ends
    if not bool(has_tail.any()):
        return np.zeros(len(lo), dtype=np.bool_)
    first, last = np.maximum(lo, 0), np.maximum(hi, 0)
    in_last = has_tail[last] & (latest >= tail_start[last])
    in_first = has_tail[first] & (np.minimum(latest, ends[first] - 1) >= tail_start[first])
    return np.asarray((lo >= 0) & (in_last | in_first), dtype=np.bool_)


def _membership_pairs(lo: I64, hi: I64, active: Bools) -> tuple[I64, I64, Bools]:
    idx = np.flatnonzero(active)
    counts = (hi[idx] - lo[idx] + 1).astype(np.int64)
    req = np.repeat(idx, counts).astype(np.int64)
    step = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    win = np.repeat(lo[idx], counts) + step
    certain = np.repeat(counts == 1, counts)
    order = np.lexsort((req, win))
    return req[order], win[order].astype(np.int64), np.asarray(certain[order], dtype=np.bool_)


# ------------------------------------------------------------------------------------- window facts


@dataclass(frozen=True)
class _WindowFacts:
    """Bounds for one window. ``lb``: counted requests certainly counted before each member (in this
    window); ``ub``: others possibly counted before it. ``c0_*``: the count at the window start."""

    members: I64
    certain: Bools
    lb: I64
    ub: I64
    c0_min: int
    c0_max: float
    header_c0_max: float
    inconsistent: bool


def _certainly_before(sent_members: I64, done_counted: I64, lag_ns: int) -> I64:
    """Per member, counted requests whose counting certainly preceded it: response (+ lag) before its send."""
    ends = np.sort(done_counted + lag_ns)
    return np.searchsorted(ends, sent_members, side="left").astype(np.int64)


def _possibly_before(done_members: I64, sent_counted: I64, self_counted: Bools) -> I64:
    """Per member, other counted requests that may have been counted before it: sent before its response."""
    starts = np.sort(sent_counted)
    return (np.searchsorted(starts, done_members, side="right") - self_counted.astype(np.int64)).astype(np.int64)


def _sync_facts(view: _PeriodView, observed: _Observed, timing: _Timing, w: int) -> _WindowFacts:
    """redis-sync: every admitted and rejected request is counted (policies/init.lua:406-415)."""
    members, certain = view.members(w)
    kind, sent, done = view.kind[members], timing.sent[members], timing.done[members]
    counted = (kind == _ADMITTED) | (kind == _REJECTED)
    possible = counted | (kind == _FREE)
    lb = _certainly_before(sent, done[counted & certain], 0)
    ub = _possibly_before(done, sent[possible], possible)
    if bool(view.known[w]):
        c0 = int(view.start_counts[w])
        return _WindowFacts(members, certain, lb, ub, c0, float(c0), float(c0), False)
    exact = observed.exact[members]
    pinned = certain & counted & np.isfinite(exact)
    header_lo = max(0.0, float(np.max(exact[pinned] - ub[pinned], initial=0.0)))
    header_hi = float(np.min(exact[pinned] - lb[pinned], initial=math.inf))
    admitted = certain & (kind == _ADMITTED) & (header_lo + lb < view.limit)  # not itself certainly over
    admitted_hi = float(np.min((view.limit - 1 - lb[admitted]).astype(np.float64), initial=math.inf))
    stopped = certain & (kind == _REJECTED) & observed.at_least[members]
    stopped_lo = float(np.max((view.limit - ub[stopped]).astype(np.float64), initial=0.0))
    c0_max = min(header_hi, admitted_hi)
    inconsistent = max(header_lo, stopped_lo) > c0_max
    return _WindowFacts(members, certain, lb, ub, int(header_lo), c0_max, header_hi, inconsistent)


def _lagged_facts(view: _PeriodView, timing: _Timing, w: int, config: KongRateLimiting) -> _WindowFacts:
    """local / cluster / redis-async: only admissions are (eventually) counted; redis-async also counts a
    rejected cache-miss until the next sync, and a racing cache refill can count a request twice."""
    members, certain = view.members(w)
    kind, sent, done = view.kind[members], timing.sent[members], timing.done[members]
    asynchronous = config.variant is Variant.REDIS_ASYNC
    possible = (kind == _ADMITTED) | (kind == _FREE) | ((kind == _REJECTED) & asynchronous)
    lag = round(config.increment_lag_ms * NS_PER_MS)
    lb = _certainly_before(sent, done[certain & (kind == _ADMITTED)], lag)
    ub = _possibly_before(done, sent[possible], possible) * (2 if asynchronous else 1)
    c0 = int(view.start_counts[w]) if bool(view.known[w]) else 0
    c0_max = float(c0) if bool(view.known[w]) else math.inf
    return _WindowFacts(members, certain, lb, ub, c0, c0_max, math.inf, False)


# ------------------------------------------------------------------------------- window chain bound


def _chain_excess(certain_load: I64, straddlers: I64, capacity: F64) -> tuple[I64, I64]:
    """Least certain excess per window when requests straddling windows w/w+1 may go to either.

    Greedy: fill window w with its straddlers while it has room, push the rest to w+1. Keeping a straddler
    early never hurts a later window, so this minimises every window's load: the excess is certain.
    Returns (excess per window, number of straddlers kept in their earlier window).
    """
    excess = np.zeros(len(certain_load), dtype=np.int64)
    kept = np.zeros(len(certain_load), dtype=np.int64)
    carry = 0
    for w in range(len(certain_load)):
        load = int(certain_load[w]) + carry
        excess[w] = max(0, math.ceil(load - capacity[w]))
        room = max(0, math.floor(capacity[w] - load))
        kept[w] = min(room, int(straddlers[w]))
        carry = int(straddlers[w]) - int(kept[w])
    return excess, kept


def _straddler_counts(view: _PeriodView, mask: Bools) -> tuple[I64, I64]:
    """Per window: requests of ``mask`` certainly in it, and those that may be in it or the next one."""
    size = len(view.starts)
    certain = mask & (view.lo == view.hi) & (view.lo >= 0)
    straddling = mask & (view.hi == view.lo + 1)
    return (
        np.bincount(view.lo[certain], minlength=size).astype(np.int64),
        np.bincount(view.lo[straddling], minlength=size).astype(np.int64),
    )


# ------------------------------------------------------------------------------------------ findings


@dataclass
class _Tally:
    """Per-window certain findings: admissions beyond ``capacity`` (requests), stopped 429s beyond what the
    count can reach, and windows whose decisions and headers fit no start count."""

    excess: I64
    false_rejections: I64
    capacity: F64
    inconsistent: Bools


def _new_tally(size: int) -> _Tally:
    zeros = np.zeros(size, dtype=np.int64)
    return _Tally(zeros.copy(), zeros.copy(), np.full(size, math.inf), np.zeros(size, dtype=np.bool_))


def _monotone_violations(values: F64, usable: Bools, sent: I64, done: I64) -> Bools:
    """Within one window a later request saw a larger count: flag j when a request certainly counted
    before it (response before j's send) shows a count >= j's."""
    bad = np.zeros(len(values), dtype=np.bool_)
    idx = np.flatnonzero(usable)
    if len(idx) < 2:
        return bad
    order = idx[np.argsort(done[idx], kind="stable")]
    prefix = np.maximum.accumulate(values[order])
    pos = np.searchsorted(done[order], sent[idx], side="left")
    before = np.where(pos > 0, prefix[np.maximum(pos - 1, 0)], -math.inf)
    bad[idx] = before >= values[idx]
    return bad


def _sync_period_rules(
    view: _PeriodView, observed: _Observed, facts: Sequence[_WindowFacts], timing: _Timing, flags: npt.NDArray[np.uint8]
) -> tuple[F64, _Tally]:
    """Certain per-request findings of one period; returns each 429's largest possible count here.

    Over-admissions are settled first: an admission that is itself certainly over cannot serve as evidence
    that an earlier 429 had room."""
    n, limit = len(view.kind), view.limit
    least = np.full(n, math.inf)
    for fact in facts:
        admitted = view.kind[fact.members] == _ADMITTED
        np.minimum.at(least, fact.members[admitted], fact.c0_min + fact.lb[admitted])
    over = (view.kind == _ADMITTED) & (least >= limit)
    flags[over] |= FLAG_OVER_ADMITTED
    room = np.full(n, -math.inf)
    fits, zero_ok = np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_)
    for fact in facts:
        _sync_window_bounds(view, observed, fact, timing, over, room, fits, zero_ok, flags)
    exact = np.isfinite(observed.exact) & ((view.kind == _ADMITTED) | (view.kind == _REJECTED))
    flags[(exact & ~fits) | (observed.zero_shown & (view.kind == _REJECTED) & ~zero_ok)] |= FLAG_HEADER_VIOLATION
    room[view.unjudged | (view.kind != _REJECTED)] = math.inf
    return room, _sync_window_tally(view, observed, facts)


def _sync_window_bounds(
    view: _PeriodView,
    observed: _Observed,
    fact: _WindowFacts,
    timing: _Timing,
    over: Bools,
    room: F64,
    fits: Bools,
    zero_ok: Bools,
    flags: npt.NDArray[np.uint8],
) -> None:
    """Largest possible count of each 429 (counts only rise in a window, so an admission sent after a 429's
    response proves it had room: <= limit - 2), and whether each header value fits [least, most]."""
    members, certain, limit = fact.members, fact.certain, view.limit
    kind, sent, done = view.kind[members], timing.sent[members], timing.done[members]
    admitted, rejected = kind == _ADMITTED, kind == _REJECTED
    most = fact.c0_max + fact.ub
    evidence = certain & admitted & ~over[members]
    later_admission = int(np.max(sent[evidence], initial=np.iinfo(np.int64).min))
    counts_only_rise = certain & rejected & (later_admission > done)
    most = np.where(counts_only_rise, np.minimum(most, limit - 2), most)
    np.maximum.at(room, members[rejected], most[rejected])
    exact = observed.exact[members]
    has = np.isfinite(exact) & (admitted | rejected)
    inside = (exact >= fact.c0_min + fact.lb) & (exact <= most)
    np.logical_or.at(fits, members[has], inside[has])
    np.logical_or.at(zero_ok, members[rejected], (most >= limit)[rejected])
    flags[members[_monotone_violations(exact, has & certain, sent, done)]] |= FLAG_HEADER_VIOLATION


def _sync_window_tally(view: _PeriodView, observed: _Observed, facts: Sequence[_WindowFacts]) -> _Tally:
    """Window-level certain excess: admissions over ``limit - c0_min`` (chain over straddlers), and more
    stopped 429s than values >= limit that the window's possible count can reach."""
    tally = _new_tally(len(facts))
    tally.capacity = np.array([max(0.0, view.limit - f.c0_min) for f in facts], dtype=np.float64)
    certain_admitted, straddling = _straddler_counts(view, view.kind == _ADMITTED)
    tally.excess, _ = _chain_excess(certain_admitted, straddling, tally.capacity)
    for w, fact in enumerate(facts):
        kind = view.kind[fact.members]
        possible = int(np.count_nonzero(kind != _IGNORED))
        stopped = fact.certain & (kind == _REJECTED) & observed.at_least[fact.members]
        values_at_limit = max(0.0, fact.c0_max + possible - view.limit)
        excess = int(np.count_nonzero(stopped)) - values_at_limit
        tally.false_rejections[w] = max(0, math.ceil(excess)) if math.isfinite(excess) else 0
        tally.inconsistent[w] = fact.inconsistent
    return tally


def _lagged_period_rules(
    view: _PeriodView,
    observed: _Observed,
    facts: Sequence[_WindowFacts],
    timing: _Timing,
    config: KongRateLimiting,
    flags: npt.NDArray[np.uint8],
) -> tuple[F64, _Tally]:
    """local / cluster / redis-async. Per request: with one shared counter (cluster, or local on one node)
    an admission is over when >= limit admissions certainly became visible before it; a 429 is false when
    even every possibly-counted earlier request leaves room; a header is wrong when it shows a view outside
    [visible lower bound, possible upper bound]. Per window: the tolerance bound (``_lagged_capacity``)."""
    n, limit = len(view.kind), view.limit
    per_request = config.variant is Variant.CLUSTER or (config.variant is Variant.LOCAL and config.replicas == 1)
    floor_view = 0 if config.variant is not Variant.REDIS_ASYNC else -1
    least, room = np.full(n, math.inf), np.full(n, -math.inf)
    fits, zero_ok = np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_)
    for fact in facts:
        kind = view.kind[fact.members]
        admitted, rejected = kind == _ADMITTED, kind == _REJECTED
        lower = fact.lb if per_request else np.full(len(kind), floor_view, dtype=np.int64)
        most = fact.c0_max + fact.ub
        np.minimum.at(least, fact.members[admitted], lower[admitted])
        np.maximum.at(room, fact.members[rejected], most[rejected])
        exact = observed.exact[fact.members]
        has = np.isfinite(exact) & (admitted | rejected)
        np.logical_or.at(fits, fact.members[has], ((exact >= lower) & (exact <= most))[has])
        np.logical_or.at(zero_ok, fact.members[rejected], (most >= limit)[rejected])
    if per_request:
        flags[(view.kind == _ADMITTED) & (least >= limit)] |= FLAG_OVER_ADMITTED
    exact_seen = np.isfinite(observed.exact) & ((view.kind == _ADMITTED) | (view.kind == _REJECTED))
    flags[(exact_seen & ~fits) | (observed.zero_shown & (view.kind == _REJECTED) & ~zero_ok)] |= FLAG_HEADER_VIOLATION
    room[view.unjudged | (view.kind != _REJECTED)] = math.inf
    tally = _new_tally(len(facts))
    tally.capacity = _lagged_capacity(view, facts, timing, config, view.kind == _ADMITTED)
    certain_admitted, straddling = _straddler_counts(view, view.kind == _ADMITTED)
    tally.excess, _ = _chain_excess(certain_admitted, straddling, tally.capacity)
    return room, tally


def _lagged_capacity(
    view: _PeriodView, facts: Sequence[_WindowFacts], timing: _Timing, config: KongRateLimiting, counted: Bools
) -> F64:
    """Tolerance bound on admissions per window (requests), assuming no store failure.

    local, per node n: its last admitted request j saw < limit of the node's admissions visible
    (response + lag before j's send), and every other admission of n was sent before j and is still
    "in flight" at j's send (response + lag after it). So |A_n| <= limit - 1 + C, C the most requests of the
    consumer in flight (extended by the lag) at one instant, and a window admits <= replicas * (limit - 1 + C).
    cluster: one shared counter, <= limit - 1 + C. redis-async: a worker's cache misses its own first
    request after each refill (policies/init.lua:431-435), so each worker admits <= limit + 1 per window in
    total and the window <= replicas * workers * (limit + 1); increments lost when a sync races a request
    (policies/init.lua:202-217) are outside this bound.
    """
    if config.variant is Variant.REDIS_ASYNC:
        workers = config.replicas * config.workers_per_replica
        return np.full(len(facts), float(workers * (view.limit + 1)))
    nodes = config.replicas if config.variant is Variant.LOCAL else 1
    lag = round(config.increment_lag_ms * NS_PER_MS)
    bound = np.empty(len(facts), dtype=np.float64)
    for w, fact in enumerate(facts):
        inside = fact.members[counted[fact.members]]
        bound[w] = nodes * (view.limit - 1 + _peak_in_flight(timing.sent[inside], timing.done[inside] + lag))
    return bound


def _peak_in_flight(starts: I64, ends: I64) -> int:
    """Largest number of [start, end] intervals holding one instant (checked at every start)."""
    if len(starts) == 0:
        return 0
    ordered_starts, ordered_ends = np.sort(starts), np.sort(ends)
    begun = np.searchsorted(ordered_starts, ordered_starts, side="right")
    finished = np.searchsorted(ordered_ends, ordered_starts, side="left")
    return int(np.max(begun - finished))


# ------------------------------------------------------------------------------ witness: one window


@dataclass(frozen=True)
class _Jobs:
    """One window's schedule problem: requests with the count each may see ([lo, hi]) and whether it must
    be counted. Precedence: a request whose response came before another's send was counted first."""

    req: list[int]
    sent: list[int]
    done: list[int]
    lo: list[int]
    hi: list[int]
    mandatory: list[bool]


def _modified_releases(jobs: _Jobs, chosen: list[int], c0: int) -> dict[int, int]:
    """Earliest rank of each mandatory job: its own bound and one more than any predecessor's."""
    order = sorted(chosen, key=lambda i: jobs.done[i])
    ends = [jobs.done[i] for i in order]
    release: dict[int, int] = {}
    prefix_max: list[int] = []
    for i in order:
        preds = bisect_left(ends, jobs.sent[i])
        base = max(0, jobs.lo[i] - c0)
        if preds:
            base = max(base, prefix_max[preds - 1] + 1, preds)
        release[i] = base
        prefix_max.append(max(prefix_max[-1], base) if prefix_max else base)
    return release


def _modified_deadlines(jobs: _Jobs, chosen: list[int], c0: int) -> dict[int, int]:
    """Latest rank of each mandatory job: its own bound and one less than any successor's."""
    order = sorted(chosen, key=lambda i: jobs.sent[i])
    starts = [jobs.sent[i] for i in order]
    suffix_min = [_BIG] * (len(order) + 1)
    deadline: dict[int, int] = {}
    for pos in range(len(order) - 1, -1, -1):
        i = order[pos]
        own = _BIG if jobs.hi[i] >= _BIG else jobs.hi[i] - c0
        first_successor = bisect_right(starts, jobs.done[i])
        deadline[i] = min(own, suffix_min[first_successor] - 1)
        suffix_min[pos] = min(suffix_min[pos + 1], deadline[i])
    return deadline


@dataclass
class _ScheduleState:
    """Mutable state of one earliest-deadline-first run (``by_release_desc``/``waiting_top``: mandatory jobs by
    decreasing release, and the position of the first one not yet scheduled)."""

    ranks: list[int]
    ready: list[tuple[int, int, int]]
    fillers: list[tuple[int, int, int]]
    scheduled: set[int]
    latest_sent: int
    frontier: int
    by_release_desc: list[int]
    waiting_top: int = 0


def _schedule(jobs: _Jobs, c0: int) -> list[int] | None:
    """Ranks (0 = counted first; -1 = optional job not counted) of a linearization of the window's counter
    starting at ``c0`` that respects every bound and precedence, or None if this greedy finds none.

    Earliest-deadline-first on precedence-modified releases/deadlines is exact for unit jobs on one machine
    (1|prec,r_j,p_j=1|Lmax); optional jobs fill ranks no mandatory job may take yet. Any result is checked.
    """
    chosen = [i for i in range(len(jobs.req)) if jobs.mandatory[i]]
    release, deadline = _modified_releases(jobs, chosen, c0), _modified_deadlines(jobs, chosen, c0)
    if any(release[i] > deadline[i] for i in chosen):
        return None
    by_release = sorted(chosen, key=lambda i: release[i])
    by_done = sorted(chosen, key=lambda i: jobs.done[i])
    ends = [jobs.done[i] for i in by_done]
    optional = sorted((bisect_left(ends, jobs.sent[i]), i) for i in range(len(jobs.req)) if not jobs.mandatory[i])
    state = _ScheduleState([-1] * len(jobs.req), [], [], set(), -_FAR, 0, by_release[::-1])
    next_release = next_optional = 0
    for rank in range(len(jobs.req)):
        if len(state.scheduled) == len(chosen):
            break
        while next_release < len(by_release) and release[by_release[next_release]] <= rank:
            i = by_release[next_release]
            heapq.heappush(state.ready, (deadline[i], jobs.sent[i], i))
            next_release += 1
        while next_optional < len(optional) and optional[next_optional][0] <= state.frontier:
            i = optional[next_optional][1]
            heapq.heappush(state.fillers, (jobs.done[i], jobs.sent[i], i))
            next_optional += 1
        pick = _pick(jobs, state, rank, release, chosen)
        if pick is None:
            return None
        _place(jobs, state, pick, rank, by_done)
    done = all(state.ranks[i] >= 0 for i in chosen)
    return state.ranks if done and _valid_schedule(jobs, state.ranks, c0) else None


def _pick(jobs: _Jobs, state: _ScheduleState, rank: int, release: Mapping[int, int], chosen: list[int]) -> int | None:
    """The mandatory job with the earliest deadline, unless a filler must be spent before it expires."""
    while state.fillers and jobs.done[state.fillers[0][2]] < state.latest_sent:
        heapq.heappop(state.fillers)  # a request counted after it was already answered cannot be a filler
    if state.ready:
        deadline, _, job = state.ready[0]
        if deadline < rank:
            return None
        if state.fillers and deadline > rank and _fillers_needed(state, rank, release, chosen) > 0:
            filler = state.fillers[0][2]
            if jobs.done[filler] < jobs.sent[job]:
                return heapq.heappop(state.fillers)[2]
        return heapq.heappop(state.ready)[2]
    return heapq.heappop(state.fillers)[2] if state.fillers else None


def _fillers_needed(state: _ScheduleState, rank: int, release: Mapping[int, int], chosen: list[int]) -> int:
    """Ranks up to the latest waiting release that the other waiting mandatory jobs cannot fill."""
    order = state.by_release_desc
    while state.waiting_top < len(order) and order[state.waiting_top] in state.scheduled:
        state.waiting_top += 1
    if state.waiting_top == len(order):
        return 0
    waiting = len(chosen) - len(state.scheduled)
    return release[order[state.waiting_top]] - rank - (waiting - 1)


def _place(jobs: _Jobs, state: _ScheduleState, job: int, rank: int, by_done: list[int]) -> None:
    state.ranks[job] = rank
    state.latest_sent = max(state.latest_sent, jobs.sent[job])
    if jobs.mandatory[job]:
        state.scheduled.add(job)
        while state.frontier < len(by_done) and by_done[state.frontier] in state.scheduled:
            state.frontier += 1


def _valid_schedule(jobs: _Jobs, ranks: list[int], c0: int) -> bool:
    """Independent check of a schedule: consecutive ranks, bounds, precedence, every mandatory job."""
    used = sorted((r, i) for i, r in enumerate(ranks) if r >= 0)
    if [r for r, _ in used] != list(range(len(used))):
        return False
    if any(jobs.mandatory[i] and ranks[i] < 0 for i in range(len(ranks))):
        return False
    if any(not (jobs.lo[i] <= c0 + r <= jobs.hi[i]) for r, i in used if jobs.mandatory[i]):
        return False
    earliest_later_done = _FAR
    for _, i in reversed(used):
        if earliest_later_done < jobs.sent[i]:
            return False
        earliest_later_done = min(earliest_later_done, jobs.done[i])
    return True


class _OutOfBudget(Exception):
    """The witness search tried ``search_budget`` window schedules."""


@dataclass
class _Budget:
    left: int

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _OutOfBudget


@dataclass(frozen=True)
class _WindowWitness:
    start_count: int
    counts: Mapping[int, int]
    grounded: bool


def _start_candidates(jobs: _Jobs, limit: int, fact: _WindowFacts, known: bool) -> list[int]:
    """Counts at the window start worth trying: the known count (0 unless seeded); else around the header
    evidence and the values that make the admissions fill the window exactly (a 429 needs count >= limit)."""
    if known:
        return [fact.c0_min]
    top = limit if math.isinf(fact.header_c0_max) else min(limit, int(fact.header_c0_max))
    admitted = sum(1 for i, m in enumerate(jobs.mandatory) if m and jobs.hi[i] <= limit - 1)
    if admitted:
        top = min(top, limit - 1)
    fillers = len(jobs.req) - sum(jobs.mandatory)
    around = {fact.c0_min, fact.c0_min + 1, fact.c0_min + 2, top}
    around |= {limit - admitted - f for f in range(min(fillers, 8) + 1)}
    return sorted(c for c in around if fact.c0_min <= c <= top)[:16]


def _solve_window(jobs: _Jobs, limit: int, fact: _WindowFacts, known: bool, budget: _Budget) -> _WindowWitness | None:
    for c0 in _start_candidates(jobs, limit, fact, known):
        budget.spend()
        ranks = _schedule(jobs, c0)
        if ranks is not None:
            counts = {jobs.req[i]: c0 + r for i, r in enumerate(ranks) if r >= 0}
            grounded = known or c0 == 0 or not math.isinf(fact.header_c0_max)
            return _WindowWitness(c0, counts, grounded)
    return None


# ------------------------------------------------------------------------------ witness: one period


@dataclass(frozen=True)
class _SyncPeriod:
    """Everything the witness search needs about one period."""

    view: _PeriodView
    facts: Sequence[_WindowFacts]
    timing: _Timing
    count_lo: I64
    count_hi: I64
    linked: Bools
    window_by_bounds: Mapping[int, int]


def _sync_period(
    view: _PeriodView, observed: _Observed, facts: Sequence[_WindowFacts], timing: _Timing, linked: Bools
) -> _SyncPeriod:
    """Per request the count it may have seen: exact from its header, < limit if admitted, >= limit for a
    429 this period certainly stopped, unconstrained otherwise (a 429 another period may have stopped)."""
    n, limit = len(view.kind), view.limit
    lo, hi = np.zeros(n, dtype=np.int64), np.full(n, _BIG, dtype=np.int64)
    hi[view.kind == _ADMITTED] = limit - 1
    lo[(view.kind == _REJECTED) & observed.at_least] = limit
    exact = np.isfinite(observed.exact) & ((view.kind == _ADMITTED) | (view.kind == _REJECTED))
    lo[exact] = hi[exact] = observed.exact[exact].astype(np.int64)
    return _SyncPeriod(view, facts, timing, lo, hi, linked, _windows_by_bounds(view, facts, lo, hi))


@dataclass(frozen=True)
class _Placement:
    """Cross-period constraints, as window indices of this period: the only window a request may be counted
    in (absent: free to choose among its candidates), and, once a period has decided the lost requests,
    where each counted one goes (absent: not counted)."""

    index_of: Mapping[int, int]
    linked_index: Mapping[int, int] | None


Interval = tuple[int, int]


def _placement(
    view: _PeriodView, window_of: Mapping[int, Interval], linked: Mapping[int, Interval] | None
) -> _Placement:
    """Translate the instants already decided for requests ([start, end) of the window another period put
    them in: Kong reads its clock once per request) into this period's windows."""
    index_of = {i: w for i, (w, unique) in _allowed_windows(view, window_of).items() if unique}
    linked_index = None if linked is None else {i: w for i, (w, _) in _allowed_windows(view, linked).items()}
    return _Placement(index_of, linked_index)


def _allowed_windows(view: _PeriodView, intervals: Mapping[int, Interval]) -> dict[int, tuple[int, bool]]:
    """Per request: the first of its candidate windows overlapping its interval, and whether it is the only one."""
    if not intervals:
        return {}
    keys = np.fromiter(intervals.keys(), dtype=np.int64, count=len(intervals))
    begin = np.array([b for b, _ in intervals.values()], dtype=np.int64)
    end = np.array([e for _, e in intervals.values()], dtype=np.int64)
    first = np.searchsorted(view.starts, begin, side="right") - 1
    first = np.where((first < 0) | (view.ends[np.maximum(first, 0)] <= begin), first + 1, first)
    last = np.searchsorted(view.starts, end, side="left") - 1
    first, last = np.maximum(first, view.lo[keys]), np.minimum(last, view.hi[keys])
    valid = first <= last
    return {int(i): (int(f), bool(f == la)) for i, f, la in zip(keys[valid], first[valid], last[valid], strict=True)}


@dataclass
class _Frame:
    w: int
    incoming: tuple[int, ...]
    used: frozenset[int]
    options: Iterator[tuple[int, ...]]


def _period_witness(
    ctx: _SyncPeriod, placement: _Placement, options: JudgeOptions, budget: _Budget
) -> list[_WindowWitness] | None:
    """Depth-first over windows; at each boundary choose which straddling requests stay in the earlier window
    (requests whose count fits one window only are placed there first). None when no choice works."""
    size = len(ctx.view.starts)
    placement = _Placement({**ctx.window_by_bounds, **placement.index_of}, placement.linked_index)
    found: list[_WindowWitness | None] = [None] * size
    stack = [_Frame(0, (), frozenset(), _keep_options(ctx, placement, 0, options))] if size else []
    while stack:
        frame = stack[-1]
        keep = next(frame.options, None)
        if keep is None:
            stack.pop()
            continue
        mandatory, optional = _window_requests(ctx, placement, frame.w, frame.used)
        jobs = _jobs(ctx, [*mandatory, *frame.incoming, *keep], optional)
        known = bool(ctx.view.known[frame.w])
        witness = _solve_window(jobs, ctx.view.limit, ctx.facts[frame.w], known, budget)
        if witness is None:
            continue
        found[frame.w] = witness
        if frame.w + 1 == size:
            return [f for f in found if f is not None]
        pushed = tuple(i for i in _straddlers(ctx, placement, frame.w) if i not in keep)
        used = frame.used | {i for i in witness.counts if ctx.view.kind[i] == _FREE}
        stack.append(_Frame(frame.w + 1, pushed, used, _keep_options(ctx, placement, frame.w + 1, options)))
    return None if size else []


def _straddlers(ctx: _SyncPeriod, placement: _Placement, w: int) -> list[int]:
    """Judged requests that may be counted in window w or w+1 and were not placed by a finer period."""
    members, _ = ctx.view.members(w)
    view = ctx.view
    mandatory = (view.kind[members] == _ADMITTED) | (view.kind[members] == _REJECTED)
    crossing = (view.lo[members] == w) & (view.hi[members] == w + 1)
    return [int(i) for i in members[mandatory & crossing] if int(i) not in placement.index_of]


def _keep_options(ctx: _SyncPeriod, placement: _Placement, w: int, options: JudgeOptions) -> Iterator[tuple[int, ...]]:
    """Subsets of the straddlers to keep in window w: prefixes in send order, then 429s first (an exhausted
    window keeps its late 429s), then every subset when few. A kept request's predecessors must be kept too
    (Kong's clock reading for a request precedes its response, which precedes its successor's send)."""
    crossing = _straddlers(ctx, placement, w) if w + 1 < len(ctx.view.starts) else []
    skew = 2 * math.ceil(options.clock_skew_ms * NS_PER_MS)
    rejected_first = sorted(crossing, key=lambda i: (int(ctx.view.kind[i]) != _REJECTED, i))
    candidates = [tuple(sorted(order[:k])) for order in (crossing, rejected_first) for k in range(len(order), -1, -1)]
    if len(crossing) <= options.max_enumerated_straddlers:
        candidates += [
            tuple(crossing[p] for p in picked)
            for k in range(len(crossing) + 1)
            for picked in combinations(range(len(crossing)), k)
        ]
    seen: set[tuple[int, ...]] = set()
    for kept in candidates:
        if kept not in seen and _closed_under_precedence(kept, crossing, ctx.timing, skew):
            seen.add(kept)
            yield kept


def _closed_under_precedence(kept: Sequence[int], crossing: list[int], timing: _Timing, skew_ns: int) -> bool:
    """No dropped (later-window) straddler answered before a kept (earlier-window) one was sent."""
    if not kept:
        return True
    latest_kept_sent = max(int(timing.sent[i]) for i in kept)
    dropped = (i for i in crossing if i not in kept)
    return all(int(timing.done[i]) + skew_ns >= latest_kept_sent for i in dropped)


def _windows_by_bounds(
    view: _PeriodView, facts: Sequence[_WindowFacts], count_lo: I64, count_hi: I64
) -> dict[int, int]:
    """Straddlers whose observed count fits only one of their two windows by the sound bounds
    ([c0_min + lb, c0_max + ub] must meet [count_lo, count_hi]): they can only have been counted there."""
    fitting: dict[int, list[int]] = {}
    for w, fact in enumerate(facts):
        kind = view.kind[fact.members]
        crossing = ((kind == _ADMITTED) | (kind == _REJECTED)) & (view.hi[fact.members] == view.lo[fact.members] + 1)
        fits = (fact.c0_min + fact.lb <= count_hi[fact.members]) & (fact.c0_max + fact.ub >= count_lo[fact.members])
        for i, ok in zip(fact.members[crossing].tolist(), fits[crossing].tolist(), strict=True):
            fitting.setdefault(i, [])
            if ok:
                fitting[i].append(w)
    return {i: ws[0] for i, ws in fitting.items() if len(ws) == 1}


def _window_requests(
    ctx: _SyncPeriod, placement: _Placement, w: int, used: frozenset[int]
) -> tuple[list[int], list[int]]:
    """Mandatory requests pinned to window w (certain members, requests a finer period placed here, linked
    requests counted elsewhere) and optional fillers (free requests not yet counted)."""
    members, certain = ctx.view.members(w)
    mandatory, optional = [], []
    for i, is_certain in zip(members.tolist(), certain.tolist(), strict=True):
        kind = int(ctx.view.kind[i])
        if kind in (_ADMITTED, _REJECTED):
            if placement.index_of.get(i, w if is_certain else -1) == w:
                mandatory.append(i)
        elif bool(ctx.linked[i]) and placement.linked_index is not None:
            if placement.linked_index.get(i, -1) == w:
                mandatory.append(i)
        elif i not in used:
            optional.append(i)
    return mandatory, optional


def _jobs(ctx: _SyncPeriod, mandatory: list[int], optional: list[int]) -> _Jobs:
    req = [*mandatory, *optional]
    return _Jobs(
        req=req,
        sent=[int(ctx.timing.sent[i]) for i in req],
        done=[int(ctx.timing.done[i]) for i in req],
        lo=[int(ctx.count_lo[i]) if k < len(mandatory) else 0 for k, i in enumerate(req)],
        hi=[int(ctx.count_hi[i]) if k < len(mandatory) else _BIG for k, i in enumerate(req)],
        mandatory=[k < len(mandatory) for k in range(len(req))],
    )


# ----------------------------------------------------------------------------- witness: all periods


@dataclass(frozen=True)
class _Witness:
    counts: Mapping[str, I64]
    grounded: Mapping[str, Bools]


def _sync_witness(ctxs: Sequence[_SyncPeriod], options: JudgeOptions) -> _Witness | str:
    """One reading for the whole history. Each period keeps every request inside the window earlier periods
    chose (one Kong clock reading per request), and the lost requests counted are decided once for all
    periods (one reading of each). Strategies, within one budget: periods finest-first, coarsest-first, then
    counting every lost request that some period needs when judged alone."""
    budget = _Budget(options.search_budget)
    failure = ""
    try:
        for order in (ctxs, ctxs[::-1])[: 2 if len(ctxs) > 1 else 1]:
            found = _witness_in_order(order, options, budget, None)
            if isinstance(found, _Witness):
                return found
            failure = failure or found
        if bool(ctxs[0].linked.any()) and len(ctxs) > 1:
            found = _witness_in_order(ctxs, options, budget, _lost_requests_needed(ctxs, options, budget))
            if isinstance(found, _Witness):
                return found
    except _OutOfBudget:
        return f"witness search budget ({options.search_budget} window schedules) exhausted"
    return failure


def _lost_requests_needed(ctxs: Sequence[_SyncPeriod], options: JudgeOptions, budget: _Budget) -> dict[int, Interval]:
    """Lost requests each period counts when searched on its own (finest period's window wins)."""
    needed: dict[int, Interval] = {}
    for ctx in ctxs[::-1]:
        windows = _period_witness(ctx, _placement(ctx.view, {}, None), options, budget)
        for i, interval in _chosen_windows(ctx, windows or []).items():
            if bool(ctx.linked[i]):
                needed[i] = interval
    return needed


def _witness_in_order(
    ctxs: Sequence[_SyncPeriod], options: JudgeOptions, budget: _Budget, linked_counted: dict[int, Interval] | None
) -> _Witness | str:
    window_of: dict[int, Interval] = dict(linked_counted or {})
    counts: dict[str, I64] = {}
    grounded: dict[str, Bools] = {}
    for ctx in ctxs:
        windows = _period_witness(ctx, _placement(ctx.view, window_of, linked_counted), options, budget)
        if windows is None:
            return f"no consistent linearization found for {ctx.view.period} windows (search not exhaustive)"
        counts[ctx.view.period], grounded[ctx.view.period] = _flatten(ctx, windows)
        chosen = _chosen_windows(ctx, windows)
        for i, (begin, end) in chosen.items():
            old_begin, old_end = window_of.get(i, (begin, end))
            window_of[i] = (max(begin, old_begin), min(end, old_end))
        if linked_counted is None:
            linked_counted = {i: window_of[i] for i in chosen if bool(ctx.linked[i])}
    return _Witness(counts, grounded)


def _flatten(ctx: _SyncPeriod, windows: list[_WindowWitness]) -> tuple[I64, Bools]:
    n = len(ctx.view.kind)
    counts, grounded = np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.bool_)
    for witness in windows:
        for i, value in witness.counts.items():
            counts[i], grounded[i] = value, witness.grounded
    return counts, grounded


def _chosen_windows(ctx: _SyncPeriod, windows: list[_WindowWitness]) -> dict[int, Interval]:
    """Window [start, end) (ns) each counted request of this period went to (judged and linked requests)."""
    chosen: dict[int, Interval] = {}
    for w, witness in enumerate(windows):
        for i in witness.counts:
            if ctx.view.kind[i] != _FREE or bool(ctx.linked[i]):
                chosen[i] = (int(ctx.view.starts[w]), int(ctx.view.ends[w]))
    return chosen


def _justified_rejections(ctxs: Sequence[_SyncPeriod], witness: _Witness) -> tuple[Bools, Bools]:
    """Per 429: justified by a period whose count in the witness reached its limit (grounded: the window's
    start is known, 0, or bounded by headers), and whether it could only be justified by an ungrounded one."""
    n = len(ctxs[0].view.kind)
    grounded_ok, any_ok = np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_)
    for ctx in ctxs:
        reached = (witness.counts[ctx.view.period] >= ctx.view.limit) & (ctx.view.kind == _REJECTED)
        any_ok |= reached | (ctx.view.unjudged & (ctx.view.kind != _IGNORED))
        grounded_ok |= reached & witness.grounded[ctx.view.period]
    return grounded_ok, any_ok


# -------------------------------------------------------------------------------- lagged: readings


def _lagged_pass_reasons(
    views: Mapping[str, _PeriodView], tallies: Mapping[str, _Tally], timing: _Timing, config: KongRateLimiting
) -> tuple[list[str], Bools]:
    """Try four readings: free requests not counted / counted in their earliest window, times straddling
    admissions kept early / pushed late. A reading passes when every window keeps its counted requests
    within the bound and every 429 has a period whose count of earlier counted requests in the run reached
    the limit. Returns the first reading's reasons (and its unexplained 429s) when none passes."""
    first: tuple[list[str], Bools] | None = None
    for count_free in (False, True):
        for late in (False, True):
            reasons, undecided = _lagged_reading(views, tallies, timing, config, count_free, late)
            if not reasons:
                return [], undecided
            first = first or (reasons, undecided)
    assert first is not None
    return first


def _lagged_reading(
    views: Mapping[str, _PeriodView],
    tallies: Mapping[str, _Tally],
    timing: _Timing,
    config: KongRateLimiting,
    count_free: bool,
    late: bool,
) -> tuple[list[str], Bools]:
    n = len(next(iter(views.values())).kind)
    justified = np.zeros(n, dtype=np.bool_)
    reasons: list[str] = []
    for period, view in views.items():
        admitted = view.kind == _ADMITTED
        counted = admitted | ((view.kind == _FREE) & count_free)
        window = _reading_windows(view, tallies[period], admitted, counted, late)
        if _reading_overflows(view, tallies[period], window, counted):
            reasons.append(f"no reading tried keeps every {period} window within its bound")
        justified |= _reached_in_reading(view, timing, window, counted, config)
    rejected = next(iter(views.values())).kind == _REJECTED
    unjustified = rejected & ~justified
    if bool(unjustified.any()):
        reasons.append(
            f"{int(unjustified.sum())} 429(s) reach the limit in no reading tried: only counts from before the run "
            "(or a mix of readings) explain them"
        )
    return reasons, unjustified


def _reading_windows(view: _PeriodView, tally: _Tally, admitted: Bools, counted: Bools, late: bool) -> I64:
    """Window index per counted request in one reading: free requests in their earliest window; straddling
    admissions, earliest sent first, kept in the earlier window up to the room the chain leaves there (or,
    ``late``, pushed to the later window up to the room the reversed chain leaves there)."""
    window = np.where(counted, view.lo, -1).astype(np.int64)
    certain_admitted, straddling = _straddler_counts(view, admitted)
    if late:
        _, pushed_rev = _chain_excess(certain_admitted[::-1], np.append(straddling[-2::-1], 0), tally.capacity[::-1])
        pushed = np.append(pushed_rev[-2::-1], 0)
        kept = straddling - pushed
    else:
        _, kept = _chain_excess(certain_admitted, straddling, tally.capacity)
    seen: dict[int, int] = {}
    for i in np.flatnonzero(admitted & (view.hi == view.lo + 1)).tolist():
        w = int(view.lo[i])
        seen[w] = seen.get(w, 0) + 1
        window[i] = w if seen[w] <= int(kept[w]) else w + 1
    return window


def _reading_overflows(view: _PeriodView, tally: _Tally, window: I64, counted: Bools) -> bool:
    load = np.bincount(window[counted & (window >= 0)], minlength=len(view.starts))
    return bool(np.any(load > tally.capacity))


def _reached_in_reading(
    view: _PeriodView, timing: _Timing, window: I64, counted: Bools, config: KongRateLimiting
) -> Bools:
    """429s whose window (either candidate) holds >= limit counted requests sent before their response."""
    factor = 2 if config.variant is Variant.REDIS_ASYNC else 1
    counted = counted | ((view.kind == _REJECTED) & (config.variant is Variant.REDIS_ASYNC))
    window = np.where(counted & (window < 0), view.lo, window)
    reached = np.zeros(len(view.kind), dtype=np.bool_)
    for w in range(len(view.starts)):
        inside = np.flatnonzero(counted & (window == w))
        starts = np.sort(timing.sent[inside])
        rejected = np.flatnonzero((view.kind == _REJECTED) & (view.lo <= w) & (view.hi >= w))
        before = np.searchsorted(starts, timing.done[rejected], side="right") - (window[rejected] == w)
        reached[rejected[factor * before + int(view.start_counts[w]) >= view.limit]] = True
    return reached


# ------------------------------------------------------------------------------------------- judging


def judge_consumer(
    requests: ConsumerRequests, config: KongRateLimiting, options: JudgeOptions | None = None
) -> ConsumerVerdict:
    """Judge one consumer's requests against Kong 3.9's rate-limiting plugin (see the module docstring).

    Returns the status (fail: a certain flag; pass: a checked consistent reading and nothing undecided;
    unknown: reasons), per-request flags, per-window summaries and, for redis-sync passes, the witness.
    """
    options = options or JudgeOptions()
    timing = _timing(requests, options)
    classes = _classify(requests, config, options)
    observed = {p: _observe(requests, config, classes, p) for p in config.periods}
    views = {
        p: _period_view(
            p, int(config.limits[p]), timing, classes, bool(requests.known_start.get(p, False)), requests.seeded.get(p)
        )
        for p in config.periods
    }
    flags = np.zeros(len(classes.kind), dtype=np.uint8)
    flags[classes.header_bad | _no_stop_period(requests, config, classes)] |= FLAG_HEADER_VIOLATION
    for p in config.periods:
        flags[observed[p].bad] |= FLAG_HEADER_VIOLATION
    if config.variant is Variant.REDIS_SYNC:
        return _judge_sync(config, options, timing, classes, observed, views, flags)
    return _judge_lagged(config, timing, classes, observed, views, flags)


def _judge_sync(
    config: KongRateLimiting,
    options: JudgeOptions,
    timing: _Timing,
    classes: _Classes,
    observed: Mapping[str, _Observed],
    views: Mapping[str, _PeriodView],
    flags: npt.NDArray[np.uint8],
) -> ConsumerVerdict:
    facts = {p: [_sync_facts(v, observed[p], timing, w) for w in range(len(v.starts))] for p, v in views.items()}
    rooms, tallies = {}, {}
    for p, view in views.items():
        rooms[p], tallies[p] = _sync_period_rules(view, observed[p], facts[p], timing, flags)
    _flag_false_rejections(views, rooms, classes.kind == _REJECTED, flags)
    _flag_over_windows(views, tallies, flags)
    reasons = _fail_reasons(flags, tallies)
    witness: Mapping[str, I64] = {}
    if not reasons:
        ctxs = [_sync_period(views[p], observed[p], facts[p], timing, classes.linked) for p in config.periods]
        undecided_reasons, witness = _sync_pass_evidence(ctxs, options, flags)
        reasons = [*classes.notes, *_unjudged_reasons(views, flags), *undecided_reasons]
    status: Status = "fail" if _has_certain_flag(flags, tallies) else ("unknown" if reasons else "pass")
    windows = _summaries(views, facts, tallies, flags, status)
    return ConsumerVerdict(status, tuple(reasons), flags, windows, witness if status == "pass" else {})


def _sync_pass_evidence(
    ctxs: Sequence[_SyncPeriod], options: JudgeOptions, flags: npt.NDArray[np.uint8]
) -> tuple[list[str], Mapping[str, I64]]:
    found = _sync_witness(ctxs, options)
    if isinstance(found, str):
        return [found], {}
    grounded_ok, any_ok = _justified_rejections(ctxs, found)
    rejected = ctxs[0].view.kind == _REJECTED
    reasons: list[str] = []
    leaning = rejected & any_ok & ~grounded_ok
    if bool(leaning.any()):
        flags[leaning] |= FLAG_UNDECIDED
        reasons.append(
            f"{int(leaning.sum())} 429(s) are explained only by a count from before the run or by a window whose "
            "counter may have expired; the run did not observe it"
        )
    if bool((rejected & ~any_ok).any()):
        flags[rejected & ~any_ok] |= FLAG_UNDECIDED
        reasons.append("the witness found does not stop every 429 in some period (headers hidden)")
    return reasons, found.counts


def _judge_lagged(
    config: KongRateLimiting,
    timing: _Timing,
    classes: _Classes,
    observed: Mapping[str, _Observed],
    views: Mapping[str, _PeriodView],
    flags: npt.NDArray[np.uint8],
) -> ConsumerVerdict:
    facts = {p: [_lagged_facts(v, timing, w, config) for w in range(len(v.starts))] for p, v in views.items()}
    rooms, tallies = {}, {}
    for p, view in views.items():
        rooms[p], tallies[p] = _lagged_period_rules(view, observed[p], facts[p], timing, config, flags)
    _flag_false_rejections(views, rooms, classes.kind == _REJECTED, flags)
    _flag_over_windows(views, tallies, flags)
    reasons = _fail_reasons(flags, tallies)
    if not reasons:
        pass_reasons, undecided = _lagged_pass_reasons(views, tallies, timing, config)
        flags[undecided] |= FLAG_UNDECIDED
        reasons = [*classes.notes, *_unjudged_reasons(views, flags), *pass_reasons]
    status: Status = "fail" if _has_certain_flag(flags, tallies) else ("unknown" if reasons else "pass")
    return ConsumerVerdict(status, tuple(reasons), flags, _summaries(views, facts, tallies, flags, status), {})


def _flag_false_rejections(
    views: Mapping[str, _PeriodView], rooms: Mapping[str, F64], rejected: Bools, flags: npt.NDArray[np.uint8]
) -> None:
    """A 429 is certainly false when, in every period, the largest count it may have seen is below the limit."""
    below = rejected.copy()
    for p, view in views.items():
        below &= rooms[p] < view.limit
    flags[below] |= FLAG_FALSE_REJECTION


def _flag_over_windows(
    views: Mapping[str, _PeriodView], tallies: Mapping[str, _Tally], flags: npt.NDArray[np.uint8]
) -> None:
    """Mark the admissions of windows whose certain excess is not already pinned on individual requests."""
    for p, view in views.items():
        certain_admitted = (view.lo == view.hi) & (view.kind == _ADMITTED)
        individually = certain_admitted & ((flags & FLAG_OVER_ADMITTED) > 0)
        pinned = np.bincount(view.lo[individually], minlength=len(view.starts))
        unexplained = np.flatnonzero(tallies[p].excess > pinned)
        flags[np.isin(view.lo, unexplained) & certain_admitted] |= FLAG_IN_OVER_WINDOW


def _has_certain_flag(flags: npt.NDArray[np.uint8], tallies: Mapping[str, _Tally]) -> bool:
    certain = FLAG_OVER_ADMITTED | FLAG_IN_OVER_WINDOW | FLAG_FALSE_REJECTION | FLAG_HEADER_VIOLATION
    windows_bad = any(bool((t.excess > 0).any() or (t.false_rejections > 0).any()) for t in tallies.values())
    inconsistent = any(bool(t.inconsistent.any()) for t in tallies.values())
    return bool(np.any(flags & certain)) or windows_bad or inconsistent


def _fail_reasons(flags: npt.NDArray[np.uint8], tallies: Mapping[str, _Tally]) -> list[str]:
    reasons = []
    for bit, what in (
        (FLAG_OVER_ADMITTED, "request(s) admitted although no consistent count allowed it"),
        (FLAG_FALSE_REJECTION, "429(s) although every consistent count had room"),
        (FLAG_HEADER_VIOLATION, "response(s) with rate-limit headers no consistent count explains"),
    ):
        count = int(np.count_nonzero(flags & bit))
        if count:
            reasons.append(f"{count} {what}")
    for period, tally in tallies.items():
        if bool((tally.excess > 0).any()):
            reasons.append(f"{period}: {int(tally.excess.sum())} admission(s) beyond the window capacity")
        if bool((tally.false_rejections > 0).any()):
            reasons.append(f"{period}: {int(tally.false_rejections.sum())} more stopped 429s than the count allows")
        if bool(tally.inconsistent.any()):
            reasons.append(f"{period}: no start count is consistent with a window's headers and decisions")
    return reasons


def _unjudged_reasons(views: Mapping[str, _PeriodView], flags: npt.NDArray[np.uint8]) -> list[str]:
    reasons = []
    for p, view in views.items():
        if bool(view.unjudged.any()):
            flags[view.unjudged] |= FLAG_UNDECIDED
            reasons.append(
                f"{int(view.unjudged.sum())} request(s) not judged in {p}: window not pinned to two adjacent "
                f"windows, or the {p} counter may have expired (TTL {EXPIRATION_S[p]} s < window)"
            )
    return reasons


def _summaries(
    views: Mapping[str, _PeriodView],
    facts: Mapping[str, Sequence[_WindowFacts]],
    tallies: Mapping[str, _Tally],
    flags: npt.NDArray[np.uint8],
    status: Status,
) -> tuple[WindowSummary, ...]:
    rows = []
    for p, view in views.items():
        for w, fact in enumerate(facts[p]):
            rows.append(_summary(view, fact, tallies[p], w, flags, status))
    return tuple(rows)


def _summary(
    view: _PeriodView, fact: _WindowFacts, tally: _Tally, w: int, flags: npt.NDArray[np.uint8], status: Status
) -> WindowSummary:
    kind = view.kind[fact.members]
    certain_members = fact.members[fact.certain]
    member_flags = flags[certain_members]
    false_rejections = max(int(tally.false_rejections[w]), int(np.count_nonzero(member_flags & FLAG_FALSE_REJECTION)))
    headers = int(np.count_nonzero(member_flags & FLAG_HEADER_VIOLATION))
    undecided = bool(np.any(flags[fact.members] & FLAG_UNDECIDED))
    bad = tally.excess[w] > 0 or false_rejections > 0 or headers > 0 or bool(tally.inconsistent[w])
    window_status: Status = "fail" if bad else ("unknown" if undecided or status == "unknown" else "pass")
    reason = "; ".join(
        text
        for cond, text in (
            (tally.excess[w] > 0, f"{int(tally.excess[w])} admission(s) over capacity {tally.capacity[w]:g}"),
            (false_rejections > 0, f"{false_rejections} false rejection(s)"),
            (headers > 0, f"{headers} header violation(s)"),
            (bool(tally.inconsistent[w]), "no start count fits the window"),
            (undecided, "holds undecided requests"),
        )
        if cond
    )
    return WindowSummary(
        period=view.period,
        start_ns=int(view.starts[w]),
        end_ns=int(view.ends[w]),
        limit=view.limit,
        start_known=bool(view.known[w]),
        start_count_min=fact.c0_min,
        start_count_max=fact.c0_max,
        capacity=float(tally.capacity[w]),
        admitted_certain=int(np.count_nonzero(fact.certain & (kind == _ADMITTED))),
        admitted_possible=int(np.count_nonzero(kind == _ADMITTED)),
        rejected_certain=int(np.count_nonzero(fact.certain & (kind == _REJECTED))),
        min_excess_admissions=int(tally.excess[w]),
        min_false_rejections=false_rejections,
        header_violations=headers,
        status=window_status,
        reason=reason,
    )
