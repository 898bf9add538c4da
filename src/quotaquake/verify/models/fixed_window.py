"""Fixed-window replay per consumer (numba), the Kong rate-limiting model.

Kong counts every request (no costs, no burst, rejected requests included) in windows aligned to UTC
minute boundaries. Timing tolerance: request k is counted at an unknown time in [s_k, s_k + w]
(w < 60 s, see ``bucket_model``), so a request whose [s_k, s_k + w] straddles a boundary may belong to
either minute. Over-admission is certain only if *no* assignment of the straddling admitted requests
keeps every minute within the limit; assigning each to the earlier minute while it has room, the rest to
the later one, is optimal for this chain, so its excess is the over-admitted count.

False rejection: a 429 whose [s_k, s_k + w] lies inside one minute m is certainly false if fewer than
``limit`` other requests could have been counted in m before it: requests sent in
[start(m) - w, s_k + w] (any outcome, counted conservatively), and the month's count before s_k + w plus
the seeded usage is below the monthly limit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from quotaquake.verify.data.outcomes import ADMITTED, REJECTED

MINUTE_NS = 60_000_000_000
FLAG_OVER_WINDOW = 1
FLAG_FALSE_REJECTION = 2

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@njit(cache=True)
def replay_windows(  # pragma: no cover - compiled by numba
    starts: I64,
    sent_ns: I64,
    classes: npt.NDArray[np.int8],
    judged: npt.NDArray[np.bool_],
    latency_ms: F64,
    limit: F64,
    month_room: F64,
) -> tuple[npt.NDArray[np.int8], F64]:
    """Per-position flags (``Groups`` block layout) and per-group stats: w_s, over_admitted,
    false_rejections, windows_over."""
    flags = np.zeros(len(sent_ns), dtype=np.int8)
    stats = np.zeros((len(starts) - 1, 4), dtype=np.float64)
    for g in range(len(starts) - 1):
        lo, hi = starts[g], starts[g + 1]
        if hi == lo or np.isnan(limit[g]):
            continue
        w_ns = 0
        for p in range(lo, hi):
            i = p
            if (classes[i] == ADMITTED or classes[i] == REJECTED) and latency_ms[i] == latency_ms[i]:
                w_ns = max(w_ns, int(latency_ms[i] * 1e6))
        stats[g, 0] = w_ns / 1e9
        if w_ns >= MINUTE_NS:
            stats[g, 0] = -1.0  # tolerance too wide to judge minutes
            continue
        _over_windows(lo, hi, sent_ns, classes, judged, w_ns, limit[g], flags, stats[g])
        _false_rejections(lo, hi, sent_ns, classes, judged, w_ns, limit[g], month_room[g], flags, stats[g])
    return flags, stats


@njit(cache=True)
def _over_windows(  # pragma: no cover - compiled by numba
    lo: int,
    hi: int,
    sent_ns: I64,
    classes: npt.NDArray[np.int8],
    judged: npt.NDArray[np.bool_],
    w_ns: int,
    limit: float,
    flags: npt.NDArray[np.int8],
    stats: F64,
) -> None:
    minute = -1
    definite = 0
    straddling = 0
    carried = 0
    first_p = lo
    for p in range(lo, hi + 1):
        if p < hi:
            i = p
            if classes[i] != ADMITTED or not judged[i]:
                continue
            m = sent_ns[i] // MINUTE_NS
        else:
            m = np.int64(2**62)
        if m != minute:
            if minute >= 0:
                carried = _close_minute(
                    first_p,
                    p,
                    definite,
                    carried,
                    straddling,
                    limit,
                    sent_ns,
                    classes,
                    judged,
                    w_ns,
                    minute,
                    flags,
                    stats,
                )
                if m > minute + 1 and carried > 0:
                    carried = _close_minute(
                        p, p, 0, carried, 0, limit, sent_ns, classes, judged, w_ns, minute + 1, flags, stats
                    )
                if m > minute + 1:
                    carried = 0
            minute = m
            definite = 0
            straddling = 0
            first_p = p
        if p < hi:
            if (sent_ns[p] + w_ns) // MINUTE_NS == minute:
                definite += 1
            else:
                straddling += 1


@njit(cache=True)
def _close_minute(  # pragma: no cover - compiled by numba
    first_p: int,
    end_p: int,
    definite: int,
    carried: int,
    straddling: int,
    limit: float,
    sent_ns: I64,
    classes: npt.NDArray[np.int8],
    judged: npt.NDArray[np.bool_],
    w_ns: int,
    minute: int,
    flags: npt.NDArray[np.int8],
    stats: F64,
) -> int:
    """Settle one minute; returns the straddling requests pushed into the next minute."""
    load = definite + carried
    if load > limit:
        stats[1] += load - limit
        stats[3] += 1.0
        for p in range(first_p, end_p):
            i = p
            if classes[i] == ADMITTED and judged[i] and (sent_ns[i] + w_ns) // MINUTE_NS == minute:
                flags[i] = FLAG_OVER_WINDOW
        return straddling
    room = int(limit - load)
    return straddling - min(room, straddling)


@njit(cache=True)
def _false_rejections(  # pragma: no cover - compiled by numba
    lo: int,
    hi: int,
    sent_ns: I64,
    classes: npt.NDArray[np.int8],
    judged: npt.NDArray[np.bool_],
    w_ns: int,
    limit: float,
    month_room: float,
    flags: npt.NDArray[np.int8],
    stats: F64,
) -> None:
    left = lo
    right = lo
    for p in range(lo, hi):
        i = p
        if classes[i] != REJECTED or not judged[i]:
            continue
        minute = sent_ns[i] // MINUTE_NS
        if (sent_ns[i] + w_ns) // MINUTE_NS != minute:
            continue
        window_start = minute * MINUTE_NS - w_ns
        while left < hi and sent_ns[left] < window_start:
            left += 1
        if right < p + 1:
            right = p + 1
        while right < hi and sent_ns[right] <= sent_ns[i] + w_ns:
            right += 1
        counted = right - left - 1  # 401s included: counting more is conservative
        month_counted = right - lo - 1
        if counted < limit and month_counted + 1 <= month_room:
            flags[i] = FLAG_FALSE_REJECTION
            stats[2] += 1.0
