"""Sequential token-bucket replay per consumer (numba): over-admission and definite false rejections.

Timing tolerance (why replaying in *send* order is sound). The limiter decides request k at an unknown
time t_k in [s_k, s_k + w], s_k its send time and w a bound on the send->decision delay: a decision
happens before the response, so the largest latency of the consumer's responses bounds it. A correct
bucket of capacity C refilling r tokens/s, starting full, admits at most C + r(b - a) cost in any window
[a, b] of decision time. Requests *sent* in [a, b] are decided in [a, b + w], so a correct limiter admits
at most (C + r*w) + r(b - a) cost among requests sent in any [a, b]. A greedy bucket of capacity
C' = C + r*w replayed in send order accepts exactly such sequences: an admitted request that would drive
its tokens below -epsilon is over-admitted (counted, not deducted). After a fault window ends the replay
refills to C' (Redis may have lost its state).

False rejection. A 429 for request k is *definitely* false only if even the least favourable timing
leaves room: replay capacity C in send order deducting admitted AND indeterminate costs (a timeout or
5xx may have been admitted); before k subtract the cost of deducting requests sent in (s_k, s_k + w]
(they may have been decided first) and r*w (refill timing lost at the cap), and require the remainder to
cover cost_k; the monthly room, after every deducting request sent before s_k + w, must cover it too.
Unlimited minute limits use an effectively infinite capacity, so for an unlimited tier any 429 is false.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from quotaquake.verify.data.outcomes import ADMITTED, INDETERMINATE, REJECTED

UNLIMITED = 1e300
FLAG_OVER = 1
FLAG_FALSE_REJECTION = 2

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@njit(cache=True)
def replay_buckets(  # pragma: no cover - compiled by numba
    starts: I64,
    sent_ns: I64,
    cost: F64,
    classes: npt.NDArray[np.int8],
    judged: npt.NDArray[np.bool_],
    latency_ms: F64,
    fault_ends_ns: I64,
    capacity: F64,
    rate: F64,
    month_room: F64,
    epsilon: float,
) -> tuple[npt.NDArray[np.int8], F64]:
    """Replay every consumer block (arrays in ``Groups`` block layout); returns per-position flags and
    per-group stats.

    Group stats columns: w_admitted_s, w_any_s, over_count, over_cost, false_rejections, requests,
    judged admitted cost (cost > 0), rejected (429), indeterminate.
    """
    flags = np.zeros(len(sent_ns), dtype=np.int8)
    stats = np.zeros((len(starts) - 1, 9), dtype=np.float64)
    for g in range(len(starts) - 1):
        lo = starts[g]
        hi = starts[g + 1]
        if hi == lo or np.isnan(capacity[g]):
            continue
        w_admit = 0.0
        w_any = 0.0
        for p in range(lo, hi):
            i = p
            stats[g, 5] += 1.0
            if classes[i] == ADMITTED and cost[i] > 0.0:
                w_admit = max(w_admit, latency_ms[i] / 1e3)
                if judged[i]:
                    stats[g, 6] += cost[i]
            elif classes[i] == REJECTED:
                stats[g, 7] += 1.0
            elif classes[i] == INDETERMINATE:
                stats[g, 8] += 1.0
            if (classes[i] == ADMITTED or classes[i] == REJECTED) and latency_ms[i] == latency_ms[i]:
                w_any = max(w_any, latency_ms[i] / 1e3)
        stats[g, 0] = w_admit
        stats[g, 1] = w_any
        _over_admission(
            lo,
            hi,
            sent_ns,
            cost,
            classes,
            judged,
            fault_ends_ns,
            capacity[g] + rate[g] * w_admit,
            rate[g],
            epsilon,
            flags,
            stats[g],
        )
        _false_rejections(
            lo,
            hi,
            sent_ns,
            cost,
            classes,
            judged,
            capacity[g],
            rate[g],
            month_room[g],
            w_any,
            epsilon,
            flags,
            stats[g],
        )
    return flags, stats


@njit(cache=True)
def _over_admission(  # pragma: no cover - compiled by numba
    lo: int,
    hi: int,
    sent_ns: I64,
    cost: F64,
    classes: npt.NDArray[np.int8],
    judged: npt.NDArray[np.bool_],
    fault_ends_ns: I64,
    capacity: float,
    rate: float,
    epsilon: float,
    flags: npt.NDArray[np.int8],
    stats: F64,
) -> None:
    tokens = capacity
    last_ns = sent_ns[lo]
    next_end = 0
    while next_end < len(fault_ends_ns) and fault_ends_ns[next_end] <= last_ns:
        next_end += 1
    for p in range(lo, hi):
        i = p
        if classes[i] != ADMITTED or not judged[i] or cost[i] <= 0.0:
            continue
        if next_end < len(fault_ends_ns) and sent_ns[i] >= fault_ends_ns[next_end]:
            while next_end < len(fault_ends_ns) and fault_ends_ns[next_end] <= sent_ns[i]:
                next_end += 1
            tokens = capacity
        tokens = min(capacity, tokens + rate * (sent_ns[i] - last_ns) / 1e9)
        last_ns = sent_ns[i]
        if tokens - cost[i] < -epsilon:
            flags[i] = 1
            stats[2] += 1.0
            stats[3] += cost[i]
        else:
            tokens -= cost[i]


@njit(cache=True)
def _false_rejections(  # pragma: no cover - compiled by numba
    lo: int,
    hi: int,
    sent_ns: I64,
    cost: F64,
    classes: npt.NDArray[np.int8],
    judged: npt.NDArray[np.bool_],
    capacity: float,
    rate: float,
    month_room: float,
    w: float,
    epsilon: float,
    flags: npt.NDArray[np.int8],
    stats: F64,
) -> None:
    tokens = capacity
    last_ns = sent_ns[lo]
    w_ns = w * 1e9
    deducted_through_k = 0.0  # deducting cost of positions lo..p-1
    deducted_through_j = 0.0  # deducting cost of positions lo..j-1
    j = lo
    for p in range(lo, hi):
        i = p
        tokens = min(capacity, tokens + rate * (sent_ns[i] - last_ns) / 1e9)
        last_ns = sent_ns[i]
        deducts = classes[i] == ADMITTED or classes[i] == INDETERMINATE
        if classes[i] == REJECTED and judged[i] and cost[i] > 0.0:
            if j <= p:
                j = p + 1
                deducted_through_j = deducted_through_k
            while j < hi and sent_ns[j] <= sent_ns[i] + w_ns:
                q = j
                if classes[q] == ADMITTED or classes[q] == INDETERMINATE:
                    deducted_through_j += cost[q]
                j += 1
            ahead = deducted_through_j - deducted_through_k
            minute_room = tokens - ahead - rate * w
            month_left = month_room - deducted_through_j
            if minute_room >= cost[i] - epsilon and month_left >= cost[i] - epsilon:
                flags[i] = 2
                stats[4] += 1.0
        if deducts:
            tokens -= cost[i]
            deducted_through_k += cost[i]
