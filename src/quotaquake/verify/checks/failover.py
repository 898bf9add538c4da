"""Redis failover (fault windows of kind ``failover``): the primary of a replicated Redis died or hung and
the Sentinels promoted its replica (``quotaquake.faults.failover`` recorded the window's ``details``).

Per window:

* promotion: the Sentinels announced ``+switch-master`` within their own timeout, ``down-after`` +
  ``failover-timeout`` (none at all within the action's deadline: fail);
* availability: the share of requests sent during the window without a non-limiter error (5xx other than
  a declared fail-closed 503, no response) is at least ``degradation.min_availability``; between the fault
  and the promotion the declared degradation shows (fail-open-local: degraded admissions and at most
  ``degradation.max_fail_open_503_ratio`` 503s; fail-closed: 503s);
* recovery: the limiter follows the promotion. Its first shared decision (a rate-limited request decided
  without the degraded marker) sent after the promotion is reported (``recovery_s`` from the promotion,
  ``since_fault_s`` from the fault). A limiter skips Redis for ``redis_retry_seconds`` after a failure and
  then needs a Sentinel query and a connection (each within ``redis_timeout_ms``), so a degraded decision
  sent later than ``promoted_at + redis_retry_seconds + 2 x redis_timeout + FOLLOW_SLACK_S`` (and before the
  next fault) proves it did not follow: fail. No rate-limited request after that point: unknown.

Across all failover windows, quota accuracy and double spending, judged by the token-bucket model
(``quota_token_bucket.replay_history``) with the state carried across the failover instead of unknown:

* what replication may have lost bounds the over-admission: every shared admission whose decision may
  fall between ``replicated_until`` (the last moment whose writes the promoted replica provably had: its
  replication offset against the old primary's sampled offsets) and the fault is read as indeterminate
  (its deduction may be gone), so the model may refund it; their cost per consumer is the *bound*;
* degraded decisions sent between the fault and the promotion never reached the surviving node (the old
  primary was dead or stopped, the replica read-only) and spend nothing there; later degraded decisions are
  indeterminate (a timed-out call may still have run);
* over-admission found with that reading is beyond the bound: fail (``thresholds.quota`` allowances). The
  same replay with the possibly lost admissions counted as spent gives the *measured* over-admission
  across the failover (what the loss, if any, let through). A 429 the model proves the bucket had room for
  is a double spend (a decision counted twice, e.g. a retried script): fail. Rows before the first fault
  are the quota-accuracy check's.

The bound is unknown (so is the verdict on accuracy) when the replica had less than every sampled offset
(``replicated_until`` missing), or when the model cannot settle the indeterminate requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quotaquake.runfolder.models import Expectation, FaultKind, FaultWindow
from quotaquake.verify.checks.quota_token_bucket import limited_cost, merged_faults, replay_history
from quotaquake.verify.data.consumers import consumer_quotas, initial_states
from quotaquake.verify.data.failover import FailoverRecord, failover_bridge
from quotaquake.verify.data.outcomes import outcome_classes
from quotaquake.verify.data.rundata import RunData, fault_bounds_ns
from quotaquake.verify.models import token_bucket as tb
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Status, Verdict, as_status, compose

CHECK = "redis-failover"
FOLLOW_SLACK_S = 0.25  # scheduling on a busy 2-core machine, on top of the retry pause and two round trips
NS = 1_000_000_000
Bools = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Rows:
    """History columns every judgement reads."""

    sent: npt.NDArray[np.int64]
    status: npt.NDArray[np.int32]
    latency_s: F64
    degraded: Bools
    limited: Bools  # carries rate-limit headers: a rate-limited tier's decision

    @classmethod
    def of(cls, run: RunData) -> _Rows:
        history = run.history
        return cls(
            sent=np.asarray(history["sent_ns"]),
            status=np.asarray(history["status"]),
            latency_s=np.asarray(history["latency_ms"], dtype=np.float64) / 1e3,
            degraded=run.degraded,
            limited=np.isfinite(np.asarray(history["rl_limit"], dtype=np.float64)),
        )

    @property
    def shared(self) -> Bools:
        """Rate-limited decisions made on Redis: 2xx or 429 with rate-limit headers and no degraded marker."""
        answered = ((self.status >= 200) & (self.status < 300)) | (self.status == 429)
        return np.asarray(answered & self.limited & ~self.degraded, dtype=np.bool_)


def check_failover(run: RunData, thresholds: Thresholds) -> Verdict:
    windows = [w for w in run.faults if w.kind is FaultKind.FAILOVER]
    if not windows:
        return Verdict(CHECK, "not-applicable", "no Redis failover in this run", {"windows": []})
    rows = _Rows.of(run)
    records = [FailoverRecord.of(w) for w in windows]
    judged = [_judge_window(run, thresholds, rows, w, r) for w, r in zip(windows, records, strict=True)]
    accuracy = _accuracy(run, thresholds, rows, records)
    status = compose([*(as_status(j["status"]) for j in judged), as_status(accuracy["status"])])
    summary = "; ".join([*(str(j["summary"]) for j in judged), str(accuracy["summary"])])
    return Verdict(CHECK, status, summary, {"windows": judged, "quota": accuracy})


# --------------------------------------------------------------------------------------------- per window


def _judge_window(
    run: RunData, thresholds: Thresholds, rows: _Rows, window: FaultWindow, record: FailoverRecord | None
) -> dict[str, object]:
    row: dict[str, object] = {"fault": window.name, "service": window.service, "expect": str(window.expect)}
    if record is None:
        why = "the fault action recorded no measurements (no details in faults.json): promotion and recovery unknown"
        return {**row, "status": "unknown", "summary": f"{window.name}: {why}"}
    row |= {
        "primary": record.primary,
        "promoted": record.promoted,
        "fault_at": record.fault_at,
        "promoted_at": record.promoted_at,
        "promotion_s": _round(record.promotion_s),
        "sentinel_timeout_s": record.sentinel_timeout_s,
        "resumed_at": record.resumed_at,
        "demoted_at": record.demoted_at,
    }
    parts = [_promotion(record), _availability(thresholds, rows, window, record), _recovery(run, rows, window, record)]
    problems = [p["problem"] for p in parts if p.get("problem")]
    for part in parts:
        row |= {k: v for k, v in part.items() if k not in ("problem", "status")}
    status = compose(as_status(p["status"]) for p in parts)
    summary = f"{window.name}: " + ("; ".join(str(p) for p in problems) if problems else _story(row))
    return {**row, "status": status, "summary": summary}


def _story(row: dict[str, object]) -> str:
    return (
        f"{row.get('primary')} -> {row.get('promoted')} promoted in {row.get('promotion_s')} s "
        f"(Sentinel timeout {row.get('sentinel_timeout_s')} s), availability {_pct(row.get('availability'))}, "
        f"limiter followed {row.get('recovery_s')} s after the promotion ({row.get('since_fault_s')} s after the fault)"
    )


def _pct(value: object) -> str:
    return f"{float(value):.2%}" if isinstance(value, int | float) else "unknown"


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _promotion(record: FailoverRecord) -> dict[str, object]:
    promotion, timeout = record.promotion_s, record.sentinel_timeout_s
    if promotion is None:
        return {"status": "fail", "problem": "no promotion (+switch-master) within the action's deadline"}
    if timeout is not None and promotion > timeout:
        return {"status": "fail", "problem": f"promotion took {promotion:.2f} s > the Sentinels' {timeout:g} s"}
    if timeout is None:
        return {"status": "unknown", "problem": "the Sentinels' timeouts were not recorded"}
    return {"status": "pass"}


def _availability(
    thresholds: Thresholds, rows: _Rows, window: FaultWindow, record: FailoverRecord
) -> dict[str, object]:
    limits = thresholds.degradation
    start, end = fault_bounds_ns(window)
    inside = (rows.sent >= start) & (rows.sent <= end)
    n = int(inside.sum())
    if n == 0:
        return {"status": "unknown", "problem": "no requests during the failover", "requests": 0}
    fail_closed = window.expect is Expectation.FAIL_CLOSED
    declared_503 = (rows.status == 503) & (rows.degraded if fail_closed else False)
    errors = ((rows.status == 0) | (rows.status >= 500)) & ~declared_503 & inside
    availability = 1.0 - int(errors.sum()) / n
    promoted_ns = end if record.promoted_at is None else int(record.promoted_at * NS)
    outage = (rows.sent >= int(record.fault_at * NS)) & (rows.sent <= promoted_ns)
    degraded_admissions = int((outage & rows.degraded & (rows.status > 0) & (rows.status < 400)).sum())
    outage_limited = int((outage & rows.limited).sum())
    share_503 = int(((rows.status == 503) & outage).sum()) / max(1, int(outage.sum()))
    part: dict[str, object] = {
        "requests": n,
        "availability": round(availability, 6),
        "outage_requests": int(outage.sum()),
        "outage_degraded_admissions": degraded_admissions,
        "outage_share_503": round(share_503, 6),
    }
    problems = []
    if availability < limits.min_availability:
        problems.append(f"availability {availability:.2%} < {limits.min_availability:.2%}")
    if window.expect is Expectation.FAIL_OPEN_LOCAL and outage_limited:
        if not degraded_admissions:
            problems.append("fail-open-local policy but no degraded admission before the promotion")
        if share_503 > limits.max_fail_open_503_ratio:
            problems.append(f"503 storm before the promotion: {share_503:.2%} > {limits.max_fail_open_503_ratio:.2%}")
    if fail_closed and outage_limited and not ((rows.status == 503) & outage).any():
        problems.append("fail-closed policy but no 503 before the promotion")
    return {**part, "status": "fail" if problems else "pass", "problem": "; ".join(problems)}


def _recovery(run: RunData, rows: _Rows, window: FaultWindow, record: FailoverRecord) -> dict[str, object]:
    if record.promoted_at is None:
        return {"status": "fail", "problem": "no promotion to follow", "recovery_s": None}
    degradation = run.info.policy.degradation
    allowed_s = degradation.redis_retry_seconds + 2 * degradation.redis_timeout_ms / 1e3 + FOLLOW_SLACK_S
    promoted = int(record.promoted_at * NS)
    horizon = _next_fault_start(run, window)
    after = (rows.sent >= promoted) & (rows.sent < horizon)
    shared = np.flatnonzero(after & rows.shared)
    followed = int(rows.sent[shared[0]]) if len(shared) else None
    late = after & rows.degraded & rows.limited & (rows.sent > promoted + int(allowed_s * NS))
    part: dict[str, object] = {
        "recovery_s": None if followed is None else round((followed - promoted) / NS, 3),
        "since_fault_s": None if followed is None else round(followed / NS - record.fault_at, 3),
        "follow_allowed_s": round(allowed_s, 3),
        "late_degraded": int(late.sum()),
    }
    if late.any():
        first = int(rows.sent[np.flatnonzero(late)[0]])
        problem = (
            f"the limiter did not follow the promotion: {int(late.sum())} degraded decision(s) sent more than "
            f"{allowed_s:.2f} s after it (first {(first - promoted) / NS:.2f} s after)"
        )
        return {**part, "status": "fail", "problem": problem}
    if followed is None:
        if not (after & rows.limited).any():
            return {**part, "status": "unknown", "problem": "no rate-limited request after the promotion"}
        return {**part, "status": "fail", "problem": "no shared decision after the promotion"}
    if not (after & rows.limited & (rows.sent > promoted + int(allowed_s * NS))).any():
        problem = f"no rate-limited request later than {allowed_s:.2f} s after the promotion: following not shown"
        return {**part, "status": "unknown", "problem": problem}
    return {**part, "status": "pass"}


def _next_fault_start(run: RunData, window: FaultWindow) -> int:
    start = fault_bounds_ns(window)[0]
    later = [fault_bounds_ns(w)[0] for w in run.faults if fault_bounds_ns(w)[0] > start]
    return min(later, default=np.iinfo(np.int64).max)


# ------------------------------------------------------------------------------------- quota across them


def _accuracy(
    run: RunData, thresholds: Thresholds, rows: _Rows, records: list[FailoverRecord | None]
) -> dict[str, object]:
    """Over-admission beyond what replication could lose, and double spends, across the failovers."""
    if any(r is None for r in records):
        return {"status": "unknown", "summary": "quota across the failover: not judged (no measurements recorded)"}
    bridge = failover_bridge(run, rows.status)
    unbounded = [w.name for w in bridge.kept if w.kind is FaultKind.FAILOVER]
    if unbounded or bridge.first_fault_ns is None:
        why = (
            f"quota across the failover: the replica had less than every sampled offset of the old primary "
            f"({', '.join(unbounded)}): what replication lost is not bounded by the record"
        )
        return {"status": "unknown", "summary": why}
    quotas = consumer_quotas(run)
    states = initial_states(run, quotas)
    classes = outcome_classes(rows.status)
    cost = np.asarray(bridge.cost(limited_cost(run.history)), dtype=np.float64)
    starts, ends = merged_faults(run, bridge.kept)
    flags, stats = replay_history(run, thresholds, quotas, states, fault_starts=starts, fault_ends=ends,
                                  cost=cost, classes=bridge.classes(classes))  # fmt: skip
    strict_flags, _ = replay_history(run, thresholds, quotas, states, fault_starts=starts, fault_ends=ends,
                                     cost=cost, classes=classes)  # fmt: skip
    assert bridge.lost is not None
    after = rows.sent >= bridge.first_fault_ns
    return _accuracy_verdict(run, thresholds, cost, bridge.lost, after, flags, strict_flags, stats)


def _accuracy_verdict(
    run: RunData,
    thresholds: Thresholds,
    cost: F64,
    lost: Bools,
    after: Bools,
    flags: npt.NDArray[np.int8],
    strict_flags: npt.NDArray[np.int8],
    stats: F64,
) -> dict[str, object]:
    over_bits = tb.FLAG_OVER | tb.FLAG_MONTH_OVER
    beyond = after & ((flags & over_bits) != 0)
    measured = after & ((strict_flags & over_bits) != 0)
    double = after & ((flags & tb.FLAG_FALSE_REJECTION) != 0)
    table = _consumer_rows(run, cost, lost, beyond, measured, double)
    bound, measured_cost, beyond_cost = float(cost[lost].sum()), float(cost[measured].sum()), float(cost[beyond].sum())
    codes = np.asarray(run.history["consumer"].cat.codes)
    touched = np.unique(codes[after & (codes >= 0)])
    undecided = [
        str(run.history["consumer"].cat.categories[c])
        for c in touched
        if c < len(stats) and (stats[c][tb.S_SEARCH_TOO_LARGE] or stats[c][tb.S_UNCOMBINED])
    ]
    evidence: dict[str, object] = {
        "bound_cost": bound,
        "possibly_lost_admissions": int(lost.sum()),
        "measured_over_admitted_cost": measured_cost,
        "over_admitted_beyond_bound_cost": beyond_cost,
        "double_spends": int(double.sum()),
        "undecided_consumers": undecided[:50],
        "consumers": table[:50],
    }
    text = (
        f"quota across the failover: over-admission {measured_cost:g} cost unit(s) measured, bound {bound:g} "
        f"from replication ({int(lost.sum())} admission(s) possibly lost), {beyond_cost:g} beyond it; "
        f"{int(double.sum())} double spend(s)"
    )
    allowed = thresholds.quota
    if beyond_cost > allowed.allowed_over_admitted_cost or int(double.sum()) > allowed.allowed_false_rejections:
        return {**evidence, "status": "fail", "summary": text}
    if undecided:
        return {**evidence, "status": "unknown", "summary": text + f"; {len(undecided)} consumer(s) not settled"}
    status: Status = "pass"
    return {**evidence, "status": status, "summary": text}


def _consumer_rows(
    run: RunData, cost: F64, lost: Bools, beyond: Bools, measured: Bools, double: Bools
) -> list[dict[str, object]]:
    codes = np.asarray(run.history["consumer"].cat.codes, dtype=np.int64)
    names = run.history["consumer"].cat.categories
    n = len(names)

    def per(mask: Bools) -> F64:
        valid = mask & (codes >= 0)
        return np.asarray(np.bincount(codes[valid], weights=cost[valid], minlength=n), dtype=np.float64)

    bound, over, strict = per(lost), per(beyond), per(measured)
    doubles = np.bincount(codes[double & (codes >= 0)], minlength=n)
    table = [
        {
            "consumer": str(names[c]),
            "bound_cost": float(bound[c]),
            "measured_over_cost": float(strict[c]),
            "beyond_bound_cost": float(over[c]),
            "double_spends": int(doubles[c]),
        }
        for c in range(n)
        if bound[c] or over[c] or strict[c] or doubles[c]
    ]
    return sorted(table, key=lambda r: (-float(str(r["beyond_bound_cost"])), -float(str(r["measured_over_cost"]))))
