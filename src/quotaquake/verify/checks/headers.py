"""Rate-limit header compliance (Kong 3.9 targets: ``headers_kong``, Kong's header set and formulas).

* every 429 carries ``Retry-After`` (>= 0 s);
* ``Limit`` equals the tier's ``per_minute``; unlimited tiers carry no rate-limit headers;
* ``Reset`` is sane: 0 <= reset <= capacity / refill + 1 s (token bucket; the +1 covers rounding up) or
  <= 61 s (fixed window);
* ``Remaining`` never rises faster than refill between consecutive responses of a consumer (send order,
  non-degraded, no fault rollback in between). Token bucket: the rise may not exceed ``r * (dt + w) + 1``
  (decisions up to w after sending; +1: the header is the floor of the tokens), plus, when dt < w (the
  two may have been decided in the other order), the cost of the requests sent in (s_cur - w, s_prev + w].
  Fixed window: within one UTC minute (both requests certainly counted in it) it never rises, except by
  the count of such requests when dt < w.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from quotaquake.verify.checks.evidence import first_rows_per_consumer
from quotaquake.verify.checks.headers_kong import check_kong_headers
from quotaquake.verify.data.consumers import ConsumerQuotas, consumer_quotas
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.models.fixed_window import MINUTE_NS
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Verdict

CHECK = "headers"
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


PROBLEMS: tuple[str, ...] = (
    "429 without Retry-After",
    "Limit differs from the tier's per_minute",
    "rate-limit headers on an unlimited tier",
    "Reset outside [0, capacity/refill + 1]",
    "Remaining rose beyond refill",
)


def check_headers(run: RunData, thresholds: Thresholds) -> Verdict:
    if run.info.model == "kong":
        return check_kong_headers(run, CHECK)  # Kong's own header set and formulas
    history = run.history
    quotas = consumer_quotas(run)
    codes = np.asarray(history["consumer"].cat.codes)
    status = np.asarray(history["status"])
    flags = _row_violations(
        status,
        np.asarray(history["retry_after"]),
        np.asarray(history["rl_limit"]),
        np.asarray(history["rl_reset"]),
        codes,
        quotas.capacity,
        quotas.per_minute,
        _max_reset(quotas, run.info.model),
    )
    _remaining_rises(run, quotas, flags)
    counts = {name: int(np.count_nonzero(flags & (1 << bit))) for bit, name in enumerate(PROBLEMS)}
    evidence: dict[str, object] = {"violations": counts}
    for bit, name in enumerate(PROBLEMS):
        if counts[name]:
            evidence[name] = first_rows_per_consumer(history, np.flatnonzero(flags & (1 << bit)))
    with_headers = int(np.count_nonzero(~np.isnan(np.asarray(history["rl_limit"]))))
    rejected = int(np.count_nonzero(status == 429))
    evidence["responses_with_headers"] = with_headers
    evidence["rejected_429"] = rejected
    bad = {name: n for name, n in counts.items() if n}
    if bad:
        return Verdict(CHECK, "fail", "; ".join(f"{n} x {name}" for name, n in bad.items()), evidence)
    if with_headers == 0 and rejected == 0:
        return Verdict(CHECK, "unknown", "no rate-limit headers and no 429 to check", evidence)
    return Verdict(CHECK, "pass", f"{with_headers} responses with rate-limit headers compliant", evidence)


def _max_reset(quotas: ConsumerQuotas, model: str) -> F64:
    """Largest sane Reset per consumer (s): a full refill + 1 s, or 61 s for a fixed window."""
    if model == "fixed-window":
        return np.full(len(quotas.capacity), 61.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(quotas.capacity / quotas.rate + 1.0, dtype=np.float64)


@njit(cache=True)
def _row_violations(  # pragma: no cover - compiled by numba
    status: npt.NDArray[np.int32],
    retry_after: F64,
    limit: F64,
    reset: F64,
    codes: npt.NDArray[np.integer],
    capacity: F64,
    per_minute: F64,
    max_reset: F64,
) -> npt.NDArray[np.uint8]:
    """Bit flags per row, bits in ``PROBLEMS`` order (bit 4, Remaining, is set by ``_rises``)."""
    flags = np.zeros(len(status), dtype=np.uint8)
    for i in range(len(status)):
        if status[i] == 429 and not retry_after[i] >= 0.0:
            flags[i] |= 1
        c = codes[i]
        if c < 0 or np.isnan(capacity[c]):
            continue
        has_limit = not np.isnan(limit[i])
        if np.isnan(per_minute[c]):
            if has_limit:
                flags[i] |= 4
            continue
        if has_limit and abs(limit[i] - per_minute[c]) > 1e-9:
            flags[i] |= 2
        if not np.isnan(reset[i]) and (reset[i] < 0.0 or reset[i] > max_reset[c]):
            flags[i] |= 8
    return flags


def _remaining_rises(run: RunData, quotas: ConsumerQuotas, flags: npt.NDArray[np.uint8]) -> None:
    history = run.history
    groups = run.groups
    block_flags = _rises(
        groups.starts,
        groups.scatter(np.asarray(history["sent_ns"])),
        groups.scatter(np.asarray(history["rl_remaining"])),
        groups.scatter(run.degraded | run.in_fault),
        groups.scatter(np.asarray(history["cost"])),
        groups.scatter(np.asarray(history["latency_ms"])),
        quotas.rate[: groups.count],
        run.fault_ends_ns,
        run.info.model == "fixed-window",
    )
    flags |= groups.unscatter(block_flags)


@njit(cache=True)
def _rises(  # pragma: no cover - compiled by numba
    starts: I64,
    sent_ns: I64,
    remaining: F64,
    excluded: npt.NDArray[np.bool_],
    cost: F64,
    latency_ms: F64,
    rate: F64,
    fault_ends_ns: I64,
    fixed: bool,
) -> npt.NDArray[np.uint8]:
    """Flag (bit 4) each response whose Remaining rose beyond the allowance over the previous usable one.

    When cur may have been decided before prev (dt < w), every request decided in between may explain
    the difference: those were sent in (s_cur - w, s_prev + w]; their total cost (fixed window: count)
    is added to the allowance. Two running pointers keep the window sums O(1) per pair.
    """
    flags = np.zeros(len(sent_ns), dtype=np.uint8)
    for g in range(len(starts) - 1):
        lo, hi = starts[g], starts[g + 1]
        if hi - lo < 2:
            continue
        w_ns = 0.0
        for p in range(lo, hi):
            if latency_ms[p] == latency_ms[p]:
                w_ns = max(w_ns, latency_ms[p] * 1e6)
        left, right, in_window = lo, lo, 0.0  # running sum over positions [left, right)
        prev = -1
        epoch, prev_epoch = 0, 0
        for p in range(lo, hi):
            cur = p
            if excluded[cur] or np.isnan(remaining[cur]):
                continue
            while epoch < len(fault_ends_ns) and fault_ends_ns[epoch] <= sent_ns[cur]:
                epoch += 1
            if prev >= 0:
                s_prev, s_cur = sent_ns[prev], sent_ns[cur]
                reorder = 0.0
                if s_cur - s_prev < w_ns:
                    while right < hi and sent_ns[right] <= s_prev + w_ns:
                        in_window += 1.0 if fixed else cost[right]
                        right += 1
                    while left < right and sent_ns[left] <= s_cur - w_ns:
                        in_window -= 1.0 if fixed else cost[left]
                        left += 1
                    reorder = in_window
                same_epoch = epoch == prev_epoch
                if fixed:
                    same_window = s_prev // MINUTE_NS == (s_cur + np.int64(w_ns)) // MINUTE_NS
                    allowed = reorder
                else:
                    same_window = True
                    allowed = rate[g] * ((s_cur - s_prev) + w_ns) / 1e9 + 1.0 + reorder
                if same_epoch and same_window and remaining[cur] - remaining[prev] > allowed + 1e-9:
                    flags[cur] |= 16
            prev, prev_epoch = cur, epoch
    return flags
