"""Token-bucket replay per consumer (numba): over-admission, false rejections and unjudged 429s, sound
from an unknown initial state and under per-request timing uncertainty.

Units: times in seconds (sends relative to the consumer's first), costs and tokens in cost units, r in
cost units per second; comparisons allow ``epsilon`` (``thresholds.quota.epsilon``) of float slack.

The limiter (``services/limiter/bucket.py``) keeps per consumer a bucket of capacity C refilling r
tokens/s and a monthly counter m (UTC month, limit M); it admits a request of cost c iff the bucket holds
>= c tokens and m + c <= M, and then takes c from both; a 429 takes nothing. Request k (sent at s_k,
answered after L_k) is decided at an unknown time t_k in [s_k, e_k], e_k = s_k + L_k: a decision happens
before the response. A row with no latency (NaN) has e_k = +inf. Everything below holds for *every* such
timing: that is the timing tolerance, and it comes from each request's own latency.

Over-admission, judged against the most generous state consistent with the history. Admitted requests
i..j (send order) are all decided inside [s_i, s_j + max L(i..j)]; a bucket holding at most C tokens at
s_i admits at most C + r (b - s_i) cost in [s_i, b], so

    cost(i..j) > C + r * (s_j - s_i + max L(i..j)) + epsilon

proves over-admission. All windows are checked in amortized O(n) per consumer with a monotonic stack of
segments (max latency, best start value r s_i - cost before i): a new request j merges the segments whose
max latency is <= L_j. A flagged request is counted, not added (later windows are judged as if it had
been refused). A 429 that certainly had month room (below) was right only if the bucket held < c_k at
t_k, so the requests sent after e_k also start a window from that level: cost(q..j) > c_k + r (s_j - s_k
+ max L(q..j)) (a racy limiter is caught even when the run started from an unknown state). Windows never
span a fault window: a request whose decision may fall after the next fault's start is left out. Monthly:
admitted cost per UTC month and unit (below) must not exceed M - m_lo (m_lo: the least month usage at the
start, 0 or the seed); a request whose decision may fall in either of two months is left out of both.

False rejections, judged only where the state is pinned. A lower bound V of the bucket, valid for every
timing, is replayed event by event: refill r per second capped at C; each deducting request (admitted, or
indeterminate and read as spent) taken out at its *latest* decision time e_j (a later deduction never
leaves more tokens); never below 0 (a correct limiter never goes negative: this pins an unknown level,
e.g. the least possible level refilled to the capacity after C / r quiet seconds). With P the cost of
requests sent but not past their e yet, the bucket at k's decision holds at least

    V(s_k) - P(s_k) - ahead_k,     ahead_k = deducting cost sent in (s_k, e_k]

tokens (those may all have been decided first; refill after s_k is not counted). The month had room for
c_k if min(m_hi + ahead_k, M - F_k) + c_k <= M: m_hi is the known start value (reset: 0; seed) plus every
deducting request sent before s_k (unknown start: +inf); F_k the admitted cost sent after e_k in the same
month and unit: whichever of those decisions came last found m + its cost <= M with the others already
counted, so m(t_k) <= M - F_k. A 429 with both is *false*.

The replay runs in two modes at once: ``u`` from what the run established (bucket full after a reset,
else 0; month as above) and ``f`` from a full state (bucket C, month at m_lo). A 429 false in ``u`` is a
proven false rejection; false in ``f`` only is *unjudged*: a correct limiter could have sent it from a
partly spent state, a faulty one from a full state, and the verdict is unknown. When both modes agree
(after a reset, or once the history pins the level) every 429 is judged. A 429 whose month room is proven
only by later admissions contradicts them: the 429 is reported as false and the admission that closes
the month as over it (either one was wrong).

Indeterminate requests (no status, 5xx, or a degraded decision outside fault windows, whose Redis script
may or may not have run) may or may not have spent tokens. One reading of all of them must explain the
unit: none-spent, all-spent, then a modelled reading (spent iff a correct limiter deciding at the send
time had room) are tried; else the unit is split where the bucket is provably full again (nothing in
flight and V = C under the all-spent reading, the least V of any reading) and each part is searched: all
2^u readings for u <= ``MAX_SEARCH`` undecided requests (within ``SEARCH_BUDGET`` replays), else the
modelled reading repaired flip by flip before its first contradiction. The parts' readings are combined
and the whole unit judged again (a witness: nothing is passed on a part's word). No reading explains a
part of which every reading was tried -> fail with the flags of the best one; none found in a part too
large to search -> unknown with that reason.

Units: a consumer's rows between fault windows. Rows sent inside a fault window are excluded (the
degradation checks judge them), but any that may spend tokens after the fault counts as spent in ``u``
(``f``, the fullest state, may have absorbed it). A unit after a fault starts from an unknown state again
(Redis may have lost or kept it); a 429 whose decision may fall into the next fault is not judged.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from quotaquake.verify.data.outcomes import ADMITTED, INDETERMINATE, REJECTED

UNLIMITED = 1e300
FLAG_OVER = 1
FLAG_FALSE_REJECTION = 2
FLAG_UNJUDGED = 4
FLAG_MONTH_OVER = 8

MAX_SEARCH = 16  # undecided requests searched exhaustively per part (2^16 readings)
SEARCH_BUDGET = 50_000_000  # request replays spent on searches per check

# Per-group stats columns
S_REQUESTS = 0  # rows of the consumer
S_ADMITTED_COST = 1  # admitted cost outside fault windows and degraded decisions
S_REJECTED = 2  # 429s judged (outside fault windows, not degraded)
S_MAYBE = 3  # indeterminate requests (status 0 / 5xx, degraded outside faults) with cost > 0
S_OVER = 4  # over-admitted requests (minute bucket)
S_OVER_COST = 5
S_FALSE = 6  # proven false 429s
S_UNJUDGED = 7  # 429s false from a full state, not provably false from the known one
S_UNJUDGED_AFTER_FAULT = 8  # ... of those, in units after a fault window
S_MONTH_OVER = 9  # admissions beyond the monthly quota
S_MONTH_OVER_COST = 10
S_SEARCH_TOO_LARGE = 11  # units where no reading was found and the search was too large
S_UNCOMBINED = 12  # units whose per-part readings did not combine into one explanation
S_MAX_UNDECIDED = 13  # largest count of undecided requests in a part that needed a search
S_READING = 14  # 0 none-spent, 1 all-spent, 2 searched, 3 modelled (the largest code over units)
S_KNOWN_START = 15  # 1 when the bucket at the consumer's first request is known full
S_W_MAX = 16  # largest latency of an admitted request, s (informational)
S_UNITS = 17
S_STRADDLING = 18  # 429s not judged: their decision may fall into a fault window
S_UNJUDGED_MONTH = 19  # unjudged 429s whose minute room was certain (the month usage was not)
S_MONTH_ADMITTED = 20  # largest admitted cost in one UTC month (by send time; outside faults, not degraded)
S_MONTH_CLOSERS = 21  # admissions proving month room for a 429 that had minute room (one of them was wrong)
N_STATS = 22

# Per-evaluation result columns
E_OVER = 0
E_OVER_COST = 1
E_MONTH_OVER = 2
E_MONTH_OVER_COST = 3
E_FALSE = 4
E_UNJUDGED = 5
E_REJECTED = 6
E_STRADDLING = 7
E_UNJUDGED_MONTH = 8
E_FIRST = 9  # position of the earliest contradiction (``hi`` if none)
E_FIRST_KIND = 10  # its kind: 1 over-admitted, 2 false 429, 3 over the month
E_MONTH_CLOSERS = 11  # (written only) admissions flagged as closing the month for a false 429
N_EVAL = 12
MAX_REPAIRS = 64  # flips tried to repair the modelled reading of a part too large to search

ROLE_SKIP = 0
ROLE_ADMITTED = 1
ROLE_REJECTED = 2
ROLE_MAYBE = 3

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
B = npt.NDArray[np.bool_]
# (lo, hi, base, sent_ns, cost, latency_ms, params, start, fb, ib, cb, flags): rows [lo, hi) of the group
# at block position ``base``, its arrays, parameters, start state, scratch buffers and the output flags.
Unit = tuple[int, int, int, I64, npt.NDArray[np.floating], F64, F64, F64, F64, npt.NDArray[np.int32], I8, I8]


ROLE_IN_FAULT = 4  # sent inside a fault window (excluded, but it may have touched the state)

# Scratch buffers (rows of three 2-D arrays sized for the longest consumer, reused across consumers)
FB_HEAP_E, FB_HEAP_C, FB_STACK_L, FB_STACK_A, FB_STACK_B, FB_FUTURE, FB_SEED_E, FB_SEED_C = 0, 1, 2, 3, 4, 5, 6, 7
IB_MONTH_S, IB_MONTH_E, IB_UNIT, IB_SPLIT, IB_MAYBE = 0, 1, 2, 3, 4
CB_ROLE, CB_SPENT, CB_STRADDLES, CB_ANCHOR, CB_FIXED = 0, 1, 2, 3, 4
NEG_INF = -np.inf


@njit(cache=True)
def replay_buckets(  # pragma: no cover - compiled by numba
    starts: I64,
    sent_ns: I64,
    cost: npt.NDArray[np.floating],
    classes: I8,
    degraded: B,
    latency_ms: F64,
    fault_starts_ns: I64,
    fault_ends_ns: I64,
    month_starts_ns: I64,
    capacity: F64,
    rate: F64,
    month_limit: F64,
    month_lo: F64,
    month_hi: F64,
    bucket_known: B,
    epsilon: float,
) -> tuple[I8, F64]:
    """Judge every consumer block (arrays in ``Groups`` block layout).

    ``fault_*_ns``: merged fault windows sorted by start (an open window ends at int64 max);
    ``month_starts_ns``: sorted starts of the UTC months the run touches (the first at or before every
    send); ``capacity``/``rate``: C (``UNLIMITED`` if the minute is unlimited, NaN: not judged) and r
    per group; ``month_limit``: M (``UNLIMITED`` if none); ``month_lo``/``month_hi``: the interval of
    the month usage at the consumer's first request (hi ``UNLIMITED``: unknown); ``bucket_known``: the
    bucket was full at the consumer's first request (the run reset it). Returns per-position flags
    (``FLAG_*`` bits) and per-group stats (``S_*`` columns).
    """
    flags = np.zeros(len(sent_ns), dtype=np.int8)
    stats = np.zeros((len(starts) - 1, N_STATS), dtype=np.float64)
    longest = 1
    for g in range(len(starts) - 1):
        longest = max(longest, starts[g + 1] - starts[g])
    fb = np.zeros((8, longest + 1))
    ib = np.zeros((5, longest + 1), dtype=np.int32)
    cb = np.zeros((5, longest + 1), dtype=np.int8)
    budget = np.full(1, float(SEARCH_BUDGET))
    for g in range(len(starts) - 1):
        base = starts[g]
        n = starts[g + 1] - base
        stats[g, S_REQUESTS] = n
        if n == 0 or np.isnan(capacity[g]):
            continue
        faults = (fault_starts_ns, fault_ends_ns, month_starts_ns)
        n_rejected = _prepare(base, n, sent_ns, cost, classes, degraded, latency_ms, faults, ib, cb, stats[g])
        params = np.array([capacity[g], rate[g], month_limit[g], epsilon, month_lo[g], month_hi[g], n_rejected])
        _judge_group(base, n, sent_ns, cost, latency_ms, params, bucket_known[g], fb, ib, cb, flags, stats[g], budget)
    return flags, stats


@njit(cache=True)
def _prepare(  # pragma: no cover - compiled by numba
    base: int,
    n: int,
    sent_ns: I64,
    cost: npt.NDArray[np.floating],
    classes: I8,
    degraded: B,
    latency_ms: F64,
    faults: tuple[I64, I64, I64],
    ib: npt.NDArray[np.int32],
    cb: I8,
    st: F64,
) -> int:
    """Role, fault unit, months of send and latest decision, and straddling of each row of one group;
    the group's admitted and indeterminate totals into ``st``; returns the number of 429s to judge.

    ``faults``: (fault window starts, ends, month starts), epoch ns."""
    fault_starts_ns, fault_ends_ns, month_starts_ns = faults
    f = 0  # fault windows started at or before the send
    m = 0  # month of the send
    n_faults = len(fault_starts_ns)
    n_months = len(month_starts_ns)
    n_rejected = 0
    in_month = 0.0  # admitted cost in the month of the send
    for p in range(n):
        i = base + p
        s = sent_ns[i]
        while f < n_faults and fault_starts_ns[f] <= s:
            f += 1
        in_fault = f > 0 and s <= fault_ends_ns[f - 1]
        while m + 1 < n_months and month_starts_ns[m + 1] <= s:
            m += 1
            in_month = 0.0
        latency = latency_ms[i]
        latest = float(s) + latency * 1e6 if latency == latency else np.inf
        m_end = m
        while m_end + 1 < n_months and month_starts_ns[m_end + 1] <= latest:
            m_end += 1
        ib[IB_MONTH_S, p] = m
        ib[IB_MONTH_E, p] = m_end if latest < np.inf else m + 1
        ib[IB_UNIT, p] = f
        cb[CB_STRADDLES, p] = 1 if f < n_faults and latest >= fault_starts_ns[f] else 0
        cb[CB_SPENT, p] = 0
        c = cost[i]
        cls = classes[i]
        role = 0
        if not c > 0.0:
            role = ROLE_SKIP
        elif in_fault:  # excluded; but an admitted or indeterminate one may have spent tokens
            role = ROLE_IN_FAULT if degraded[i] or cls in (ADMITTED, INDETERMINATE) else ROLE_SKIP
        elif degraded[i] or cls == INDETERMINATE:
            role = ROLE_MAYBE
            st[S_MAYBE] += 1
        elif cls == ADMITTED:
            role = ROLE_ADMITTED
            st[S_ADMITTED_COST] += c
            in_month += c
            st[S_MONTH_ADMITTED] = max(st[S_MONTH_ADMITTED], in_month)
            if latency == latency:
                st[S_W_MAX] = max(st[S_W_MAX], latency * 1e-3)
        elif cls == REJECTED:
            role = ROLE_REJECTED
            n_rejected += 1
        cb[CB_ROLE, p] = role
    return n_rejected


@njit(cache=True)
def _judge_group(  # pragma: no cover - compiled by numba
    base: int,
    n: int,
    sent_ns: I64,
    cost: npt.NDArray[np.floating],
    latency_ms: F64,
    params: F64,
    bucket_known: bool,
    fb: F64,
    ib: npt.NDArray[np.int32],
    cb: I8,
    flags: I8,
    st: F64,
    budget: F64,
) -> None:
    """Judge one consumer unit by unit (rows between fault windows)."""
    capacity, month_lo, month_hi = params[0], params[4], params[5]
    touched = False  # an earlier unit, or a request inside a fault window, may have changed the state
    p = 0
    while p < n:
        q = p
        while q < n and ib[IB_UNIT, q] == ib[IB_UNIT, p]:
            q += 1
        a = p
        while a < q and not _active(cb[CB_ROLE, a]):
            touched = touched or cb[CB_ROLE, a] == ROLE_IN_FAULT
            a += 1
        if a < q:
            st[S_UNITS] += 1
            known = bucket_known and not touched
            if known:
                st[S_KNOWN_START] = 1.0
            start = np.array(
                [
                    capacity if known else 0.0,
                    capacity,
                    month_hi if not touched else UNLIMITED,
                    month_lo if not touched else 0.0,
                    month_lo if not touched else 0.0,
                    float(_in_flight(a, base, sent_ns, cost, latency_ms, fb, cb)),
                ]
            )
            _judge_unit(a, q, base, sent_ns, cost, latency_ms, params, start, touched, fb, ib, cb, flags, st, budget)
            touched = True
        p = q


@njit(cache=True)
def _in_flight(  # pragma: no cover - compiled by numba
    a: int, base: int, sent_ns: I64, cost: npt.NDArray[np.floating], latency_ms: F64, fb: F64, cb: I8
) -> int:
    """Earlier requests (an earlier unit's, or sent inside a fault window) that may be decided after row
    ``a`` was sent and may spend tokens: kept in ``fb[FB_SEED_*]`` (latest decision s, cost); returns the
    count. The known-state bound (u) takes them as spent (they are outside the reading search); the full
    state (f) may have absorbed them before the unit's first request (the most room), so it does not."""
    count = 0
    for p in range(a):
        role = cb[CB_ROLE, p]
        if role != ROLE_ADMITTED and role != ROLE_MAYBE and role != ROLE_IN_FAULT:
            continue
        latency = latency_ms[base + p]
        latest = (sent_ns[base + p] - sent_ns[base]) * 1e-9 + latency * 1e-3 if latency == latency else np.inf
        if latest > (sent_ns[base + a] - sent_ns[base]) * 1e-9:
            fb[FB_SEED_E, count], fb[FB_SEED_C, count] = latest, cost[base + p]
            count += 1
    return count


@njit(cache=True)
def _active(role: int) -> bool:  # pragma: no cover - compiled by numba
    return bool(role in (ROLE_ADMITTED, ROLE_REJECTED, ROLE_MAYBE))


@njit(cache=True)
def _deducts(cb: I8, p: int) -> bool:  # pragma: no cover - compiled by numba
    """Admitted, or indeterminate and read as spent."""
    role = cb[CB_ROLE, p]
    return bool(role == ROLE_ADMITTED or (role == ROLE_MAYBE and cb[CB_SPENT, p] == 1))


@njit(cache=True)
def _contradictions(res: F64) -> float:  # pragma: no cover - compiled by numba
    """Flags that hold whatever the unknown state (over-admission, month over, proven false 429s)."""
    return float(res[E_OVER] + res[E_MONTH_OVER] + res[E_FALSE])


@njit(cache=True)
def _set_spent(cb: I8, lo: int, hi: int, value: int) -> int:  # pragma: no cover - compiled by numba
    """Read every indeterminate request in [lo, hi) as spent (1) or not (0); returns how many there are."""
    count = 0
    for p in range(lo, hi):
        if cb[CB_ROLE, p] == ROLE_MAYBE:
            cb[CB_SPENT, p] = value
            count += 1
    return count


@njit(cache=True)
def _judge_unit(  # pragma: no cover - compiled by numba
    lo: int,
    hi: int,
    base: int,
    sent_ns: I64,
    cost: npt.NDArray[np.floating],
    latency_ms: F64,
    params: F64,
    start: F64,
    after_fault: bool,
    fb: F64,
    ib: npt.NDArray[np.int32],
    cb: I8,
    flags: I8,
    st: F64,
    budget: F64,
) -> None:
    """Find one reading of the unit's indeterminate requests that explains it, then write its flags.

    ``start``: [V_u, V_f, month upper bound (u), month upper bound (f), month lower bound, number of
    earlier requests in flight (``fb[FB_SEED_*]``)] at ``lo``.
    """
    res = np.zeros(N_EVAL)
    unit = (lo, hi, base, sent_ns, cost, latency_ms, params, start, fb, ib, cb, flags)
    n_maybe = _set_spent(cb, lo, hi, 0)
    if n_maybe > 0:
        _evaluate(unit, False, False, res)
        if _contradictions(res) + res[E_UNJUDGED] > 0:
            _set_spent(cb, lo, hi, 1)
            n_split = _evaluate(unit, False, True, res)
            if _contradictions(res) + res[E_UNJUDGED] > 0:
                _model_reading(unit)
                _evaluate(unit, False, False, res)
                if _contradictions(res) + res[E_UNJUDGED] > 0:
                    _search_unit(unit, n_split, after_fault, st, budget, res)
                    return
                st[S_READING] = max(st[S_READING], 3.0)
            st[S_READING] = max(st[S_READING], 1.0)
    _evaluate(unit, True, False, res)
    _add_result(res, after_fault, st)


@njit(cache=True)
def _add_result(res: F64, after_fault: bool, st: F64) -> None:  # pragma: no cover - compiled by numba
    st[S_REJECTED] += res[E_REJECTED]
    st[S_STRADDLING] += res[E_STRADDLING]
    st[S_OVER] += res[E_OVER]
    st[S_OVER_COST] += res[E_OVER_COST]
    st[S_MONTH_OVER] += res[E_MONTH_OVER]
    st[S_MONTH_OVER_COST] += res[E_MONTH_OVER_COST]
    st[S_MONTH_CLOSERS] += res[E_MONTH_CLOSERS]
    st[S_FALSE] += res[E_FALSE]
    st[S_UNJUDGED] += res[E_UNJUDGED]
    st[S_UNJUDGED_MONTH] += res[E_UNJUDGED_MONTH]
    if after_fault:
        st[S_UNJUDGED_AFTER_FAULT] += res[E_UNJUDGED]


@njit(cache=True)
def _search_unit(  # pragma: no cover - compiled by numba
    unit: Unit,
    n_split: int,
    after_fault: bool,
    st: F64,
    budget: F64,
    res: F64,
) -> None:
    """No simple reading explains the unit: search each part between split points."""
    lo, hi, base, sent_ns, cost, latency_ms, params, start, fb, ib, cb, flags = unit
    capacity = params[0]
    st[S_READING] = max(st[S_READING], 2.0)
    bounds = np.empty(n_split + 2, dtype=np.int64)
    bounds[0] = lo
    for k in range(n_split):
        bounds[k + 1] = ib[IB_SPLIT, k]
    bounds[n_split + 1] = hi
    _set_spent(cb, lo, hi, 0)
    worst = 0  # 0 explained from a full state, 1 only from the known state, 2 none explains, 3 too large
    for k in range(n_split + 1):
        a, b = bounds[k], bounds[k + 1]
        if a >= b:
            continue
        part_start = start.copy() if a == lo else _part_start(lo, a, cost, base, capacity, start, ib, cb)
        part = (a, b, base, sent_ns, cost, latency_ms, params, part_start, fb, ib, cb, flags)
        level, undecided = _search_part(part, budget, res)
        if level == 3:
            st[S_MAX_UNDECIDED] = max(st[S_MAX_UNDECIDED], float(undecided))
        worst = max(worst, level)
    _evaluate(unit, False, False, res)
    if worst == 3:
        st[S_SEARCH_TOO_LARGE] += 1
    elif worst < 2 and _contradictions(res) > 0:
        st[S_UNCOMBINED] += 1
    else:
        _evaluate(unit, True, False, res)
        _add_result(res, after_fault, st)
        return
    st[S_REJECTED] += res[E_REJECTED]
    st[S_STRADDLING] += res[E_STRADDLING]


@njit(cache=True)
def _part_start(  # pragma: no cover - compiled by numba
    lo: int,
    a: int,
    cost: npt.NDArray[np.floating],
    base: int,
    capacity: float,
    start: F64,
    ib: npt.NDArray[np.int32],
    cb: I8,
) -> F64:
    """Start of a part at split point ``a``: a full bucket; month bounds as lenient as any reading makes
    them (every earlier indeterminate request read as spent for the upper bounds, none for the lower)."""
    month = ib[IB_MONTH_S, a]
    same = ib[IB_MONTH_S, lo] == month
    upper_u = start[2] if same else 0.0
    upper_f = start[3] if same else 0.0
    for p in range(lo, a):
        role = cb[CB_ROLE, p]
        if role in (ROLE_ADMITTED, ROLE_MAYBE) and ib[IB_MONTH_E, p] >= month:
            upper_u += cost[base + p]
            upper_f += cost[base + p]
    return np.array([capacity, capacity, min(upper_u, UNLIMITED), upper_f, start[4] if same else 0.0, 0.0])


@njit(cache=True)
def _search_part(part: Unit, budget: F64, res: F64) -> tuple[int, int]:  # pragma: no cover - compiled by numba
    """Leave the part's indeterminate requests read as the best reading found; returns (level, count).

    Levels: 0 a reading explains the part from a full state; 1 one explains it only from the known
    state; 2 none explains it (all readings tried); 3 none found and too many to try (none-spent,
    all-spent and the modelled reading were).
    """
    a, b, cb, ib = part[0], part[1], part[10], part[9]
    m = 0
    for p in range(a, b):
        if cb[CB_ROLE, p] == ROLE_MAYBE:
            ib[IB_MAYBE, m] = p
            m += 1
    if m == 0:
        _evaluate(part, False, False, res)
        return (0 if _contradictions(res) + res[E_UNJUDGED] == 0 else (1 if _contradictions(res) == 0 else 2)), 0
    full = (1 << m) - 1 if m < 62 else -1
    best_known, best_known_unjudged, best_any, best_any_count = -1, np.inf, 0, np.inf
    too_large = m > MAX_SEARCH or ((1 << m) - 2) * (b - a) > budget[0]
    count = 3 if too_large else 1 << m
    if not too_large:
        budget[0] -= ((1 << m) - 2) * (b - a)
    for index in range(count):
        mask = (0 if index == 0 else full) if too_large else index
        if too_large and index == 2:
            _model_reading(part)
            if _repair(part, budget, res):
                return (0 if res[E_UNJUDGED] == 0 else 1), m
            break
        _apply_mask(cb, ib, m, mask)
        _evaluate(part, False, False, res)
        bad = _contradictions(res)
        if bad == 0 and res[E_UNJUDGED] == 0:
            return 0, m
        if bad == 0 and res[E_UNJUDGED] < best_known_unjudged:
            best_known, best_known_unjudged = mask, res[E_UNJUDGED]
        if bad < best_any_count:
            best_any, best_any_count = mask, bad
    if too_large:
        _apply_mask(cb, ib, m, 0)
        return 3, m
    if best_known >= 0:
        _apply_mask(cb, ib, m, best_known)
        return 1, m
    _apply_mask(cb, ib, m, best_any)
    return 2, m


@njit(cache=True)
def _repair(part: Unit, budget: F64, res: F64) -> bool:  # pragma: no cover - compiled by numba
    """Flip readings before the earliest contradiction until none is left (at most ``MAX_REPAIRS`` flips,
    each request at most once): after an over-admission the latest request read as spent before it, after
    a false 429 the latest read as not spent. True when the reading left explains the part."""
    a, b, cb = part[0], part[1], part[10]
    cb[CB_FIXED, a:b] = 0
    for _ in range(MAX_REPAIRS):
        _evaluate(part, False, False, res)
        budget[0] -= b - a
        if _contradictions(res) == 0:
            return True
        if budget[0] < 0:
            return False
        first, want = int(res[E_FIRST]), 1 if res[E_FIRST_KIND] == 2 else 0
        q = first
        while q >= a and not (cb[CB_ROLE, q] == ROLE_MAYBE and cb[CB_SPENT, q] == 1 - want and cb[CB_FIXED, q] == 0):
            q -= 1
        if q < a:
            return False
        cb[CB_SPENT, q] = want
        cb[CB_FIXED, q] = 1
    return False


@njit(cache=True)
def _model_reading(unit: Unit) -> None:  # pragma: no cover - compiled by numba
    """Read each indeterminate request of the unit as a correct limiter deciding at its send time would
    have: spent iff the bucket (from the full state, refilled, less what was admitted or read as spent,
    never below 0) and the month (from its least value) had room. A guess: the evaluation judges it."""
    lo, hi, base, sent_ns, cost, params, start, ib, cb = (
        unit[0],
        unit[1],
        unit[2],
        unit[3],
        unit[4],
        unit[6],
        unit[7],
        unit[9],
        unit[10],
    )
    capacity, rate, limit = params[0], params[1], params[2]
    limited, month_limited = capacity < UNLIMITED / 2, limit < UNLIMITED / 2
    s0 = sent_ns[base]
    level, used, month = start[1], start[4], ib[IB_MONTH_S, lo]
    now = (sent_ns[base + lo] - s0) * 1e-9
    for p in range(lo, hi):
        role = cb[CB_ROLE, p]
        if role != ROLE_ADMITTED and role != ROLE_MAYBE:
            continue
        t = (sent_ns[base + p] - s0) * 1e-9
        if limited:
            level = min(capacity, level + rate * max(0.0, t - now))
        now = max(now, t)
        if ib[IB_MONTH_S, p] != month:
            month, used = ib[IB_MONTH_S, p], 0.0
        c = cost[base + p]
        if role == ROLE_MAYBE:
            room = (not limited or level >= c) and (not month_limited or used + c <= limit)
            cb[CB_SPENT, p] = 1 if room else 0
            if not room:
                continue
        if limited:
            level = max(0.0, level - c)
        used += c


@njit(cache=True)
def _apply_mask(cb: I8, ib: npt.NDArray[np.int32], m: int, mask: int) -> None:  # pragma: no cover - numba
    """Read the k-th indeterminate request of the part as spent iff bit k of ``mask`` is set (-1: all)."""
    for k in range(m):
        cb[CB_SPENT, ib[IB_MAYBE, k]] = 1 if mask == -1 or (mask >> k) & 1 else 0


@njit(cache=True)
def _evaluate(unit: Unit, write: bool, record: bool, res: F64) -> int:  # pragma: no cover - compiled by numba
    """Judge rows [lo, hi) of one group under the current reading; counts into ``res`` (``E_*``), flags
    written when ``write``, split points recorded in ``ib[IB_SPLIT]`` when ``record`` (returns their count).

    ``unit``: (lo, hi, base, sent_ns, cost, latency_ms, params, start, fb, ib, cb, flags); ``params``:
    [C, r, M, epsilon, month lo, month hi, 429s] of the group; ``start``: see ``_judge_unit``."""
    lo, hi, base, sent_ns, cost, latency_ms, params, start, fb, ib, cb, flags = unit
    res[:] = 0.0
    res[E_FIRST] = hi
    s0 = sent_ns[base]
    n_split = 0
    if params[6] > 0 or record:  # 429s to judge (they also anchor over-admission windows), or splits
        n_split = _rejections(unit, s0, write, record, res)
    if params[0] < UNLIMITED / 2:
        _over_admission(lo, hi, base, s0, sent_ns, cost, latency_ms, params, fb, cb, flags, write, res)
    if params[2] < UNLIMITED / 2:
        _month_over_admission(lo, hi, base, cost, params, start, ib, cb, flags, write, res)
    return n_split


@njit(cache=True)
def _over_admission(  # pragma: no cover - compiled by numba
    lo: int,
    hi: int,
    base: int,
    s0: int,
    sent_ns: I64,
    cost: npt.NDArray[np.floating],
    latency_ms: F64,
    params: F64,
    fb: F64,
    cb: I8,
    flags: I8,
    write: bool,
    res: F64,
) -> None:
    """Every window i..j of deducting requests: cost(i..j) > C + r (s_j - s_i + max L(i..j)) + epsilon.

    Stack segment k covers consecutive starts i sharing max L(i..j) = ``L[k]`` (decreasing upwards);
    ``A[k]`` = max of r s_i - cost(..i-1) over them; ``V[k]`` = max over segments 0..k of A - r L.

    A 429 (cost c_k) that had certain month room (``cb[CB_ANCHOR]``) proves the bucket held < c_k at its
    decision: requests sent after e_k then start a window from that level, cost(q..j) > c_k +
    r (s_j - s_k + max L(q..j)), i.e. a start value r s_k + C - c_k at the first of them.
    """
    capacity, rate, eps = params[0], params[1], params[3]
    stack_l, stack_a, stack_v = fb[FB_STACK_L], fb[FB_STACK_A], fb[FB_STACK_B]
    top = -1
    total = 0.0  # cost of the windowed requests so far (flagged ones left out)
    anchor_end, anchor_value = np.inf, NEG_INF  # the latest anchoring 429 not yet followed by a request
    for p in range(lo, hi):
        i = base + p
        if cb[CB_ROLE, p] == ROLE_REJECTED and cb[CB_ANCHOR, p] == 1:
            value = rate * (sent_ns[i] - s0) * 1e-9 + capacity - cost[i]
            if value >= anchor_value:
                anchor_value = value
                anchor_end = (sent_ns[i] - s0) * 1e-9 + latency_ms[i] * 1e-3
            continue
        if not _deducts(cb, p) or cb[CB_STRADDLES, p] == 1:
            continue
        latency = latency_ms[i] * 1e-3
        if latency != latency:
            continue  # decided at an unknown time: in no window
        t = (sent_ns[i] - s0) * 1e-9
        c = cost[i]
        best_a = rate * t - total
        anchored = anchor_end < t
        if anchored:
            best_a = max(best_a, anchor_value - total)
        k = top
        while k >= 0 and stack_l[k] <= latency:
            best_a = max(best_a, stack_a[k])
            k -= 1
        below = stack_v[k] if k >= 0 else NEG_INF
        value = max(below, best_a - rate * latency)
        if total + c - rate * t + value - capacity > eps:
            res[E_OVER] += 1.0
            res[E_OVER_COST] += c
            _first(res, p, 1)
            if write:
                flags[i] |= FLAG_OVER
            continue
        top = k + 1
        stack_l[top], stack_a[top], stack_v[top] = latency, best_a, value
        total += c
        if anchored:  # the anchor is now a start of the stack
            anchor_end, anchor_value = np.inf, NEG_INF


@njit(cache=True)
def _month_over_admission(  # pragma: no cover - compiled by numba
    lo: int,
    hi: int,
    base: int,
    cost: npt.NDArray[np.floating],
    params: F64,
    start: F64,
    ib: npt.NDArray[np.int32],
    cb: I8,
    flags: I8,
    write: bool,
    res: F64,
) -> None:
    """Deducting cost per UTC month beyond M - (least month usage at the start); a new month starts at 0."""
    limit, eps = params[2], params[3]
    month = ib[IB_MONTH_S, lo]
    room = limit - start[4]
    used = 0.0
    for p in range(lo, hi):
        if not _deducts(cb, p) or ib[IB_MONTH_S, p] != ib[IB_MONTH_E, p]:
            continue
        if ib[IB_MONTH_S, p] != month:
            month, room, used = ib[IB_MONTH_S, p], limit, 0.0
        c = cost[base + p]
        used += c
        if used > room + eps:
            res[E_MONTH_OVER] += 1.0
            res[E_MONTH_OVER_COST] += c
            _first(res, p, 3)
            if write:
                flags[base + p] |= FLAG_MONTH_OVER


@njit(cache=True)
def _rejections(unit: Unit, s0: int, write: bool, record: bool, res: F64) -> int:  # pragma: no cover - numba
    """Lower-bound replay (both modes) and the judgement of every 429; see the module docstring."""
    lo, hi, base, sent_ns, cost, latency_ms, params, start, fb, ib, cb, flags = unit
    capacity, rate, limit, eps = params[0], params[1], params[2], params[3]
    limited = capacity < UNLIMITED / 2
    month_limited = limit < UNLIMITED / 2
    heap_e, heap_c, future = fb[FB_HEAP_E], fb[FB_HEAP_C], fb[FB_FUTURE]
    if month_limited:
        _future_sums(lo, hi, base, cost, ib, cb, future)
    level_u, level_f = start[0], start[1]
    month_u, month_f = start[2], start[3]
    month = ib[IB_MONTH_S, lo]
    now = (sent_ns[base + lo] - s0) * 1e-9
    pending = 0.0
    n_heap = 0
    n_split = 0
    pending_f = 0.0  # the full state (f) may have absorbed earlier requests before the unit: not counted
    for k in range(int(start[5])):  # earlier requests still in flight at the unit's first send (u only)
        n_heap = _heap_push(heap_e, heap_c, n_heap, fb[FB_SEED_E, k], -fb[FB_SEED_C, k])
        pending += fb[FB_SEED_C, k]
        month_u += fb[FB_SEED_C, k]
    for p in range(lo, hi):
        role = cb[CB_ROLE, p]
        if not _active(role):
            continue
        i = base + p
        t = (sent_ns[i] - s0) * 1e-9
        if ib[IB_MONTH_S, p] != month:  # a new month's counter starts at 0, plus what is still in flight
            month, month_u, month_f = ib[IB_MONTH_S, p], pending, pending_f
        while n_heap > 0 and heap_e[0] <= t:
            end, c = heap_e[0], heap_c[0]
            n_heap = _heap_pop(heap_e, heap_c, n_heap)
            own = c >= 0.0  # a request of the unit (else an earlier one, counted in u only)
            c = abs(c)
            if limited:
                gain = rate * max(0.0, end - now)
                level_u = max(0.0, min(capacity, level_u + gain) - c)
                level_f = max(0.0, min(capacity, level_f + gain) - (c if own else 0.0))
            now = max(now, end)
            pending -= c
            if own:
                pending_f -= c
        if limited:
            gain = rate * max(0.0, t - now)
            level_u, level_f = min(capacity, level_u + gain), min(capacity, level_f + gain)
        now = max(now, t)
        if record and p > lo and n_heap == 0 and (not limited or level_u >= capacity - eps):
            ib[IB_SPLIT, n_split] = p
            n_split += 1
        if role == ROLE_REJECTED:
            _judge_429(p, hi, base, s0, t, sent_ns, cost, latency_ms, params, level_u - pending, level_f - pending_f,
                       month_u, month_f, future, ib, cb, flags, write, res)  # fmt: skip
        elif _deducts(cb, p):
            c = cost[i]
            latency = latency_ms[i]
            n_heap = _heap_push(heap_e, heap_c, n_heap, t + latency * 1e-3 if latency == latency else np.inf, c)
            pending += c
            pending_f += c
            month_u += c
            month_f += c
    return n_split


@njit(cache=True)
def _judge_429(  # pragma: no cover - compiled by numba
    p: int,
    hi: int,
    base: int,
    s0: int,
    t: float,
    sent_ns: I64,
    cost: npt.NDArray[np.floating],
    latency_ms: F64,
    params: F64,
    room_u: float,
    room_f: float,
    month_u: float,
    month_f: float,
    future: F64,
    ib: npt.NDArray[np.int32],
    cb: I8,
    flags: I8,
    write: bool,
    res: F64,
) -> None:
    """False (both modes had room), unjudged (only the full state had room) or possibly right."""
    capacity, limit, eps = params[0], params[2], params[3]
    i = base + p
    cb[CB_ANCHOR, p] = 0
    if cb[CB_STRADDLES, p] == 1:
        res[E_STRADDLING] += 1.0
        return
    res[E_REJECTED] += 1.0
    latency = latency_ms[i]
    latest = t + latency * 1e-3 if latency == latency else np.inf
    ahead = 0.0
    q = p + 1
    while q < hi and (sent_ns[base + q] - s0) * 1e-9 <= latest:
        if _deducts(cb, q):
            ahead += cost[base + q]
        q += 1
    c = cost[i]
    minute_u = capacity >= UNLIMITED / 2 or room_u - ahead >= c - eps
    minute_f = capacity >= UNLIMITED / 2 or room_f - ahead >= c - eps
    month_ok_u = month_ok_f = True
    future_only = False
    if limit < UNLIMITED / 2:
        if ib[IB_MONTH_S, p] != ib[IB_MONTH_E, p]:
            month_ok_u = month_ok_f = False  # decided in one of two months
        else:
            later = future[q] if q < hi and ib[IB_MONTH_S, q] == ib[IB_MONTH_S, p] else 0.0
            month_ok_u = min(month_u + ahead, limit - later) + c <= limit + eps
            month_ok_f = min(month_f + ahead, limit - later) + c <= limit + eps
            future_only = month_u + ahead + c > limit + eps
    if minute_u and month_ok_u:
        res[E_FALSE] += 1.0
        _first(res, p, 2)
        if write:
            flags[i] |= FLAG_FALSE_REJECTION
            if future_only:
                _flag_month_closer(q, hi, base, ib[IB_MONTH_S, p], c, cost, ib, cb, flags, res)
    elif minute_f and month_ok_f:
        res[E_UNJUDGED] += 1.0
        if minute_u:
            res[E_UNJUDGED_MONTH] += 1.0
        if write:
            flags[i] |= FLAG_UNJUDGED
    if month_ok_u and not minute_u:  # a right 429 then says the bucket held less than its cost
        cb[CB_ANCHOR, p] = 1


@njit(cache=True)
def _first(res: F64, p: int, kind: int) -> None:  # pragma: no cover - compiled by numba
    if p < res[E_FIRST]:
        res[E_FIRST], res[E_FIRST_KIND] = p, kind


@njit(cache=True)
def _flag_month_closer(  # pragma: no cover - compiled by numba
    q: int,
    hi: int,
    base: int,
    month: int,
    c: float,
    cost: npt.NDArray[np.floating],
    ib: npt.NDArray[np.int32],
    cb: I8,
    flags: I8,
    res: F64,
) -> None:
    """A 429 whose month room is proven only by later admissions: flag the admission that proves it (the
    one whose decision found the month at most M - cost of the 429 if the 429 was right)."""
    total = 0.0
    for p in range(q, hi):
        if ib[IB_MONTH_S, p] != month:
            return
        if _deducts(cb, p) and ib[IB_MONTH_E, p] == month:
            total += cost[base + p]
            if total >= c - 1e-9:
                if flags[base + p] & FLAG_MONTH_OVER == 0:
                    flags[base + p] |= FLAG_MONTH_OVER
                    res[E_MONTH_CLOSERS] += 1.0
                return


@njit(cache=True)
def _future_sums(  # pragma: no cover - compiled by numba
    lo: int, hi: int, base: int, cost: npt.NDArray[np.floating], ib: npt.NDArray[np.int32], cb: I8, future: F64
) -> None:
    """``future[p]``: deducting cost of rows p.. (to ``hi``) decided in the month of row p."""
    for p in range(hi - 1, lo - 1, -1):
        own = cost[base + p] if _deducts(cb, p) and ib[IB_MONTH_S, p] == ib[IB_MONTH_E, p] else 0.0
        same = p + 1 < hi and ib[IB_MONTH_S, p + 1] == ib[IB_MONTH_S, p]
        future[p] = own + (future[p + 1] if same else 0.0)


@njit(cache=True)
def _heap_push(keys: F64, values: F64, n: int, key: float, value: float) -> int:  # pragma: no cover - numba
    """Push onto a binary min-heap of ``n`` entries; returns the new size."""
    k = n
    keys[k], values[k] = key, value
    while k > 0:
        parent = (k - 1) // 2
        if keys[parent] <= keys[k]:
            break
        keys[parent], keys[k] = keys[k], keys[parent]
        values[parent], values[k] = values[k], values[parent]
        k = parent
    return n + 1


@njit(cache=True)
def _heap_pop(keys: F64, values: F64, n: int) -> int:  # pragma: no cover - numba
    """Remove the smallest entry of a binary min-heap of ``n`` entries; returns the new size."""
    n -= 1
    keys[0], values[0] = keys[n], values[n]
    k = 0
    while True:
        child = 2 * k + 1
        if child >= n:
            break
        if child + 1 < n and keys[child + 1] < keys[child]:
            child += 1
        if keys[k] <= keys[child]:
            break
        keys[k], keys[child] = keys[child], keys[k]
        values[k], values[child] = values[child], values[k]
        k = child
    return n
