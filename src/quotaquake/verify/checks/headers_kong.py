"""Rate-limit header compliance of a Kong 3.9 target, by Kong's own formulas (``docs/kong-3.9.md`` section 5).

Per response (``kong/plugins/rate-limiting/handler.lua``, tag 3.9.3):

* a response the plugin stopped (``error_code``, default 429) carries ``Retry-After`` (196), and no other
  does: it is set on the stop path only (194-198);
* ``X-RateLimit-Limit-<Period>`` equals the limit the target declares for the consumer's tier (160-167);
  ``-Minute`` and ``-Month`` are recorded;
* no rate-limit header where no plugin limits the request (unlimited tiers, bypass routes), nor anywhere
  with ``hide_client_headers`` (155, 195, 203);
* ``RateLimit-Limit``/``RateLimit-Remaining`` describe the tightest window: the least clamped remaining of
  all periods, ties to the longer window (169-176), when every configured period was recorded;
* ``RateLimit-Reset = max(1, EXPIRATION[P] - seconds elapsed in P's window)`` for that window P (181,190),
  with a 30-day month (``expiration.lua``), read on the node's clock at some instant in
  [sent - skew, response + skew]; ``Retry-After`` on a 429 equals it.

The per-period ``Remaining`` values are judged against a consistent counter by the quota check
(``quota_kong``), exactly; this check does not repeat that.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from quotaquake.kongspec import KongSpec
from quotaquake.runfolder.history import RATE_LIMIT_COLUMNS
from quotaquake.verify.checks.evidence import first_rows_per_consumer
from quotaquake.verify.data.kong import KongRows, kong_rows
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.models.kong import EXPIRATION_S, NS_PER_S, window_end_ns, window_start_ns
from quotaquake.verify.verdict import Verdict

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
KONG_PROBLEMS: tuple[str, ...] = (
    "stopped response without Retry-After",
    "Retry-After on a response that was not stopped",
    "X-RateLimit-Limit differs from the declared limit",
    "rate-limit headers where no plugin limits (or hide_client_headers)",
    "RateLimit-Limit/Remaining not the tightest window",
    "RateLimit-Reset or Retry-After off Kong's reset formula",
)
HEADER_COLUMNS: tuple[str, ...] = RATE_LIMIT_COLUMNS
RECORDED: dict[str, tuple[str, str]] = {
    "minute": ("rl_limit", "rl_remaining"),
    "month": ("rl_limit_month", "rl_remaining_month"),
}


def check_kong_headers(run: RunData, check: str) -> Verdict:
    spec = run.info.kong
    if spec is None:
        return Verdict(check, "unknown", "run.json declares model kong but carries no kong section", {})
    rows = kong_rows(run, spec)
    columns = {name: np.asarray(run.history[name], dtype=np.float64) for name in HEADER_COLUMNS}
    status = np.asarray(run.history["status"], dtype=np.int64)
    flags = _flags(run, spec, rows, columns, status)
    counts = {name: int(np.count_nonzero(flags & (1 << bit))) for bit, name in enumerate(KONG_PROBLEMS)}
    evidence: dict[str, object] = {"model": "kong", "violations": counts}
    for bit, name in enumerate(KONG_PROBLEMS):
        if counts[name]:
            evidence[name] = first_rows_per_consumer(run.history, np.flatnonzero(flags & (1 << bit)))
    with_headers = int(np.count_nonzero(_any_header(columns)))
    stopped = int(np.count_nonzero(status == spec.error_code))
    evidence |= {"responses_with_headers": with_headers, "stopped": stopped}
    bad = {name: n for name, n in counts.items() if n}
    if bad:
        return Verdict(check, "fail", "; ".join(f"{n} x {name}" for name, n in bad.items()), evidence)
    if with_headers == 0 and stopped == 0:
        return Verdict(check, "unknown", "no rate-limit headers and no stopped response to check", evidence)
    what = "no rate-limit headers (hide_client_headers)" if spec.hide_client_headers else "rate-limit headers"
    return Verdict(check, "pass", f"{with_headers + stopped} responses' {what} as Kong 3.9 sets them", evidence)


def _any_header(columns: dict[str, F64]) -> Bools:
    present = np.zeros(len(columns["rl_limit"]), dtype=np.bool_)
    for values in columns.values():
        present |= np.isfinite(values)
    return present


def _flags(run: RunData, spec: KongSpec, rows: KongRows, columns: dict[str, F64], status: I64) -> npt.NDArray[np.uint8]:
    flags = np.zeros(len(status), dtype=np.uint8)
    limited = rows.limited if not spec.hide_client_headers else np.zeros(len(status), dtype=np.bool_)
    stopped = (status == spec.error_code) & limited
    retry = np.isfinite(columns["retry_after"])
    flags[stopped & ~retry] |= 1
    flags[~stopped & retry & limited] |= 2
    for declared, column in ((rows.limit_minute, "rl_limit"), (rows.limit_month, "rl_limit_month")):
        shown = columns[column]
        differs = np.isfinite(shown) & ~(shown == declared)
        flags[limited & differs] |= 4
    judged = ~np.isin(np.asarray(run.history["consumer"].cat.codes), _unknown_codes(run, rows))
    flags[judged & ~limited & _any_header(columns)] |= 8
    flags[limited & _not_tightest(rows, columns)] |= 16
    flags[limited & _reset_off(run, spec, rows, columns, stopped)] |= 32
    return flags


def _unknown_codes(run: RunData, rows: KongRows) -> list[int]:
    """Consumer codes of tiers the target does not declare (the quota check reports them)."""
    names = [str(c) for c in run.history["consumer"].cat.categories]
    return [code for code, name in enumerate(names) if name in rows.unknown_tiers]


def _periods(rows: KongRows) -> list[list[str]]:
    """Configured periods of each identity (index -1: none)."""
    return [list(i.limits) for i in rows.identities] + [[]]


def _not_tightest(rows: KongRows, columns: dict[str, F64]) -> Bools:
    """RateLimit-Remaining must be the least period remaining and RateLimit-Limit the limit of the longest
    period showing it (handler.lua:169-176); judged where every configured period was recorded."""
    n = len(rows.identity)
    bad = np.zeros(n, dtype=np.bool_)
    w_limit, w_left = columns["rl_window_limit"], columns["rl_window_remaining"]
    periods = _periods(rows)
    for k, configured in enumerate(periods[:-1]):
        if not configured or any(p not in RECORDED for p in configured):
            continue
        mine = (rows.identity == k) & np.isfinite(w_left)
        if not mine.any():
            continue
        shown = np.array([columns[RECORDED[p][1]][mine] for p in configured])
        limits = np.array([float(rows.identities[k].limits[p]) for p in configured])
        least = np.nanmin(np.where(np.isfinite(shown), shown, np.inf), axis=0)
        complete = np.isfinite(shown).all(axis=0)
        longest_at_least = np.array(
            [
                limits[np.flatnonzero(shown[:, j] == least[j])[-1]] if complete[j] else np.nan
                for j in range(shown.shape[1])
            ]
        )
        wrong = complete & ((w_left[mine] != least) | (w_limit[mine] != longest_at_least))
        bad[np.flatnonzero(mine)[wrong]] = True
    return bad


def _reset_off(run: RunData, spec: KongSpec, rows: KongRows, columns: dict[str, F64], stopped: Bools) -> Bools:
    """RateLimit-Reset not what Kong computes for any period that may be the tightest, at any clock reading
    the request allows; or Retry-After on a stopped response different from it."""
    reset, retry = columns["rl_reset"], columns["retry_after"]
    sent = np.asarray(run.history["sent_ns"], dtype=np.int64)
    latency = np.nan_to_num(np.asarray(run.history["latency_ms"], dtype=np.float64), nan=0.0)
    skew = round(spec.clock_skew_ms * 1e6)
    lo_s = (sent - skew) // NS_PER_S
    hi_s = (sent + (latency * 1e6).astype(np.int64) + skew) // NS_PER_S
    fits = np.zeros(len(sent), dtype=np.bool_)
    candidates = _candidate_periods(rows, columns)
    for period, mask in candidates.items():
        fits |= mask & _reset_fits(period, reset, lo_s, hi_s)
    has_reset = np.isfinite(reset)
    judged = has_reset & np.isin(rows.identity, [k for k, i in enumerate(rows.identities) if i.limits])
    return np.asarray((judged & ~fits) | (stopped & np.isfinite(retry) & (retry != reset)), dtype=np.bool_)


def _candidate_periods(rows: KongRows, columns: dict[str, F64]) -> dict[str, Bools]:
    """Per period, the rows whose tightest window may be it: configured for the row's counter, and, when the
    period was recorded, showing the RateLimit-Limit/Remaining values."""
    w_limit, w_left = columns["rl_window_limit"], columns["rl_window_remaining"]
    result: dict[str, Bools] = {}
    for k, identity in enumerate(rows.identities):
        mine = rows.identity == k
        for period, limit in identity.limits.items():
            ok = mine.copy()
            if period in RECORDED:
                shown = columns[RECORDED[period][1]]
                ok &= ~np.isfinite(w_limit) | (w_limit == limit)
                ok &= ~np.isfinite(w_left) | ~np.isfinite(shown) | (w_left == shown)
            result[period] = result.get(period, np.zeros(len(mine), dtype=np.bool_)) | ok
    return result


def _reset_fits(period: str, value: F64, lo_s: I64, hi_s: I64) -> Bools:
    """Whether ``value`` = max(1, EXPIRATION - (s - start(s))) for some whole second s in [lo_s, hi_s].

    Within one window the formula falls by 1 per second (then stays at 1); at most two windows are
    touched when [lo_s, hi_s] is shorter than the window (else anything fits)."""
    expiration = EXPIRATION_S[period]
    start_lo = window_start_ns(period, lo_s * NS_PER_S) // NS_PER_S
    end_lo = window_end_ns(period, start_lo * NS_PER_S) // NS_PER_S
    last_in_first = np.minimum(hi_s, end_lo - 1)
    first_hi = np.maximum(1, expiration - (lo_s - start_lo))
    first_lo = np.maximum(1, expiration - (last_in_first - start_lo))
    fits = (value >= first_lo) & (value <= first_hi)
    crosses = hi_s >= end_lo
    second_lo = np.maximum(1, expiration - (hi_s - end_lo))
    fits |= crosses & (value >= second_lo) & (value <= expiration)
    too_long = (hi_s - lo_s) >= expiration
    return np.asarray(fits | too_long, dtype=np.bool_)
