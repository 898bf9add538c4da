"""Behaviour during fault windows (``faults.json``), per fault.

* availability: share of requests sent during the fault without a non-limiter error (5xx, status 0;
  under a fail-closed policy a 503 marked degraded is the declared behaviour, not an error)
  >= ``degradation.min_availability``;
* declared behaviour (the window's ``expect``, from the policy, for faults of the rate-limit store):
  ``fail-open-local`` -> degraded-marked admissions exist and 503s stay below ``max_fail_open_503_ratio``;
  ``fail-closed`` -> 503s and no degraded admissions;
* recovery: from the rollback end to the last degraded marker or 503 <= ``max_recovery_s``, up to the next
  fault window's start (unknown if the history, or the gap before the next fault, does not reach that far
  past the rollback, or the fault was never rolled back).

Kong 3.9 targets (``run.json``'s ``kong``; ``kong/plugins/rate-limiting/handler.lua:144-152``), for requests
of rate-limited consumers (``verify.data.kong``) during a fault of the rate-limit store:

* ``fail-open-unlimited`` (``fault_tolerant: true``): the plugin proxies without rate-limit headers and
  without any limit. Declared: such pass-throughs exist, and none of those requests gets Kong's 500. Every
  pass-through is an admission no quota bounded; the evidence counts them per consumer against its minute
  limit, and the summary says so: this is what the target declares, not a bounded fail-open;
* ``error-500`` (``fault_tolerant: false``): limited requests get 500 without rate-limit headers (kong/
  init.lua:393-410), which are then not errors of the availability share; a headerless admission is a
  failure (the plugin never lets one through);
* recovery: to the last pass-through (or declared 500) after the rollback. With ``hide_client_headers``
  pass-throughs cannot be told from limited admissions: declared behaviour and recovery are unknown.

``check_degraded_over_admission``: while degraded, each replica decides with its own bucket, so a
consumer may get up to ``replicas x (C + r x (T + w))`` cost admitted in a fault window, T the span of
its degraded decisions there and w its largest latency; more than that is a failure.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from quotaquake.runfolder.models import Expectation, FaultWindow
from quotaquake.verify.data.consumers import consumer_quotas
from quotaquake.verify.data.kong import KongRows, kong_rows
from quotaquake.verify.data.outcomes import ADMITTED, outcome_classes
from quotaquake.verify.data.rundata import RunData, fault_bounds_ns
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import NOT_APPLICABLE, Status, Verdict, compose

CHECK = "degradation"
BOUND_CHECK = "degraded-over-admission"
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
KONG_EXPECTATIONS = (Expectation.FAIL_OPEN_UNLIMITED, Expectation.ERROR_500)
RATE_LIMIT_COLUMNS = ("rl_limit", "rl_remaining", "rl_reset", "retry_after", "rl_remaining_month", "rl_window_limit")


def check_degradation(run: RunData, thresholds: Thresholds) -> Verdict:
    if not run.faults:
        status: Status = thresholds.degradation.when_no_faults
        return Verdict(CHECK, status, "no fault windows: degradation not exercised", {"faults": []})
    rows = [_judge_fault(run, thresholds, window) for window in run.faults]
    status = compose(row["status"] for row in rows)  # type: ignore[misc]
    problems = [f"{row['fault']}: {row['problems']}" for row in rows if row["problems"]]
    unbounded = [f"{row['fault']}: {row['unbounded']}" for row in rows if row.get("unbounded")]
    summary = "; ".join(problems) if problems else f"{len(rows)} fault(s) handled as declared"
    if unbounded:
        summary += "; " + "; ".join(unbounded)
    return Verdict(CHECK, status, summary, rows)


def _judge_fault(run: RunData, thresholds: Thresholds, window: FaultWindow) -> dict[str, object]:
    limits = thresholds.degradation
    status = np.asarray(run.history["status"])
    sent = np.asarray(run.history["sent_ns"])
    start, end = fault_bounds_ns(window)
    inside = (sent >= start) & (sent <= end)
    n = int(inside.sum())
    if window.expect in KONG_EXPECTATIONS:
        return _judge_kong_fault(run, thresholds, window, inside)
    fail_closed = window.expect is Expectation.FAIL_CLOSED
    declared_503 = (status == 503) & run.degraded if fail_closed else np.zeros(len(status), dtype=np.bool_)
    errors = ((status == 0) | (status >= 500)) & ~declared_503 & inside
    row: dict[str, object] = {
        "fault": window.name,
        "kind": str(window.kind),
        "service": window.service,
        "expect": str(window.expect),
        "requests": n,
    }
    if n == 0:
        return {**row, "status": "unknown", "problems": "no requests during the fault"}
    availability = 1.0 - int(errors.sum()) / n
    share_503 = int(((status == 503) & inside).sum()) / n
    degraded_admitted = int((run.degraded & inside & (status < 400) & (status > 0)).sum())
    row |= {
        "availability": availability,
        "share_503": share_503,
        "degraded_admissions": degraded_admitted,
    }
    problems: list[str] = []
    unknown: list[str] = []
    if availability < limits.min_availability:
        problems.append(f"availability {availability:.2%} < {limits.min_availability:.2%}")
    if window.expect in (Expectation.FAIL_OPEN_LOCAL, Expectation.FAIL_CLOSED):
        problems += _declared_behaviour(fail_closed, share_503, degraded_admitted, limits.max_fail_open_503_ratio)
    recovery = _recovery_s(run, window, run.degraded | (status == 503), limits.max_recovery_s)
    row["recovery_s"] = recovery
    if recovery is None:
        unknown.append("recovery not observable")
    elif recovery > limits.max_recovery_s:
        problems.append(f"recovery {recovery:.1f} s > {limits.max_recovery_s:g} s")
    verdict: Status = "fail" if problems else ("unknown" if unknown else "pass")
    return {**row, "status": verdict, "problems": "; ".join(problems + unknown)}


def _declared_behaviour(fail_closed: bool, share_503: float, degraded_admitted: int, max_503: float) -> list[str]:
    if fail_closed:
        problems = [] if share_503 > 0 else ["fail-closed policy but no 503 during the Redis fault"]
        if degraded_admitted:
            problems.append(f"fail-closed policy but {degraded_admitted} degraded admissions")
        return problems
    problems = [] if degraded_admitted else ["fail-open-local policy but no degraded admissions"]
    if share_503 > max_503:
        problems.append(f"503 storm under fail-open-local: {share_503:.2%} > {max_503:.2%}")
    return problems


def _recovery_s(run: RunData, window: FaultWindow, degraded: Bools, run_limit: float) -> float | None:
    """Seconds from the rollback end to the last response after it that was still ``degraded`` (0 if none),
    looking no further than the start of the next fault window (its degradation is its own)."""
    if window.end is None:
        return None
    start, end = fault_bounds_ns(window)
    sent = np.asarray(run.history["sent_ns"])
    following = [fault_bounds_ns(w)[0] for w in run.faults if fault_bounds_ns(w)[0] > start]
    until = min(following, default=np.iinfo(np.int64).max)
    after = (sent > end) & (sent < until)
    if not after.any():
        return None
    marked = after & degraded
    horizon = int(sent[np.flatnonzero(after)[-1]])
    last = int(sent[np.flatnonzero(marked)[-1]]) if marked.any() else end
    recovery = (last - end) / 1e9
    if (horizon - last) / 1e9 < 1.0 and recovery <= run_limit:
        return None  # degraded (or no traffic) until the history ends: recovery not observed
    return recovery


def check_degraded_over_admission(run: RunData, thresholds: Thresholds) -> Verdict:
    """Admitted cost of degraded decisions per consumer and fault window <= replicas x (C + r (T + w))."""
    if run.info.model == "kong":
        reason = (
            "Kong has no bounded degraded mode: with fault_tolerant its plugin admits without any limit while the "
            "store is down (handler.lua:144-152), without it answers 500; the degradation check judges either"
        )
        return Verdict(BOUND_CHECK, NOT_APPLICABLE, reason, {"consumers": []})
    history = run.history
    classes = outcome_classes(np.asarray(history["status"]))
    rows = np.flatnonzero(run.degraded & (classes == ADMITTED))
    if len(history) == 0:
        return Verdict(BOUND_CHECK, "unknown", "empty history", {"consumers": []})
    if len(rows) == 0:
        return Verdict(BOUND_CHECK, "pass", "no degraded admissions", {"consumers": []})
    quotas = consumer_quotas(run)
    frame = pd.DataFrame(
        {
            "code": np.asarray(history["consumer"].cat.codes, dtype=np.int64)[rows],
            "window": _window_index(np.asarray(history["sent_ns"])[rows], run.faults),
            "sent": np.asarray(history["sent_ns"])[rows],
            "cost": np.asarray(history["cost"])[rows],
            "latency_s": np.nan_to_num(np.asarray(history["latency_ms"], dtype=np.float64)[rows]) / 1e3,
        }
    )
    per_pair = frame.groupby(["code", "window"], sort=True).agg(
        first=("sent", "min"), last=("sent", "max"), cost=("cost", "sum"), w=("latency_s", "max")
    )
    replicas = run.info.replicas
    table: list[dict[str, object]] = []
    for (code, win), first, last, admitted, w in zip(
        per_pair.index, per_pair["first"], per_pair["last"], per_pair["cost"], per_pair["w"], strict=True
    ):
        if not quotas.judged(code) or quotas.rate[code] == 0:
            continue
        span = (int(last) - int(first)) / 1e9
        bound = replicas * (quotas.capacity[code] + quotas.rate[code] * (span + float(w)))
        table.append(
            {
                "consumer": quotas.names[code],
                "window": _window_name(run.faults, int(win)),
                "admitted_cost": float(admitted),
                "bound": round(bound, 3),
                "over": float(admitted) > bound + 1e-9,
            }
        )
    over = [r for r in table if r["over"]]
    evidence: dict[str, object] = {"replicas": replicas, "consumers": over[:50] or table[:50]}
    if over:
        names = ", ".join(str(r["consumer"]) for r in over[:3])
        return Verdict(
            BOUND_CHECK, "fail", f"{len(over)} consumer(s) over replicas x bucket while degraded: {names}", evidence
        )
    return Verdict(BOUND_CHECK, "pass", f"{len(table)} consumer/window pair(s) within replicas x bucket", evidence)


def _window_index(sent: I64, faults: list[FaultWindow]) -> I64:
    """Index of the fault window each time falls into (the first that contains it), -1 for none."""
    index = np.full(len(sent), -1, dtype=np.int64)
    for i, window in enumerate(faults):
        start, end = fault_bounds_ns(window)
        index[(index < 0) & (sent >= start) & (sent <= end)] = i
    return index


def _window_name(faults: list[FaultWindow], index: int) -> str:
    return faults[index].name if index >= 0 else "outside fault windows"


# ------------------------------------------------------------------------------------------------- Kong


def _judge_kong_fault(run: RunData, thresholds: Thresholds, window: FaultWindow, inside: Bools) -> dict[str, object]:
    """A store fault of a Kong target: ``fail-open-unlimited`` or ``error-500`` (module docstring)."""
    row: dict[str, object] = {
        "fault": window.name,
        "kind": str(window.kind),
        "service": window.service,
        "expect": str(window.expect),
        "requests": int(inside.sum()),
    }
    spec = run.info.kong
    if spec is None:
        return {
            **row,
            "status": "unknown",
            "problems": "run.json has no kong section: what the plugin declares is unknown",
        }
    if not inside.any():
        return {**row, "status": "unknown", "problems": "no requests during the fault"}
    kong = kong_rows(run, spec)
    status = np.asarray(run.history["status"])
    limited = kong.limited
    headerless = _without_rate_limit_headers(run)
    passed = (status > 0) & (status < 500) & (status != 401) & (status != spec.error_code)
    pass_through = limited & passed & headerless
    declared_500 = limited & (status == 500) & headerless & (window.expect is Expectation.ERROR_500)
    errors = ((status == 0) | (status >= 500)) & ~declared_500 & inside
    availability = 1.0 - int(errors.sum()) / int(inside.sum())
    row |= {
        "availability": availability,
        "limited_requests": int((limited & inside).sum()),
        "pass_through": int((pass_through & inside).sum()),
        "declared_500": int((declared_500 & inside).sum()),
    }
    problems: list[str] = []
    unknown: list[str] = []
    if availability < thresholds.degradation.min_availability:
        problems.append(f"availability {availability:.2%} < {thresholds.degradation.min_availability:.2%}")
    if spec.hide_client_headers:
        unknown.append("hide_client_headers: a pass-through cannot be told from a limited admission")
    elif not (limited & inside).any():
        unknown.append("no request of a rate-limited consumer during the fault")
    else:
        problems += _kong_declared(window.expect, pass_through & inside, declared_500 & inside)
    marked = limited & (pass_through | declared_500)
    recovery = (
        None if spec.hide_client_headers else _recovery_s(run, window, marked, thresholds.degradation.max_recovery_s)
    )
    row["recovery_s"] = recovery
    if recovery is None:
        unknown.append("recovery not observable")
    elif recovery > thresholds.degradation.max_recovery_s:
        problems.append(f"recovery {recovery:.1f} s > {thresholds.degradation.max_recovery_s:g} s")
    if window.expect is Expectation.FAIL_OPEN_UNLIMITED:
        row["unbounded_by_consumer"] = _unbounded(run, kong, pass_through & inside)
        row["unbounded"] = _unbounded_summary(row["unbounded_by_consumer"])
    verdict: Status = "fail" if problems else ("unknown" if unknown else "pass")
    return {**row, "status": verdict, "problems": "; ".join(problems + unknown)}


def _kong_declared(expect: Expectation, pass_through: Bools, declared_500: Bools) -> list[str]:
    if expect is Expectation.FAIL_OPEN_UNLIMITED:
        if pass_through.any():
            return []
        return ["fault_tolerant plugin but every limited request during the store fault was still decided by it"]
    problems = [] if declared_500.any() else ["fault_tolerant is false but no limited request got 500"]
    if pass_through.any():
        problems.append(f"fault_tolerant is false but {int(pass_through.sum())} limited request(s) passed unlimited")
    return problems


def _without_rate_limit_headers(run: RunData) -> Bools:
    present = np.zeros(len(run.history), dtype=np.bool_)
    for column in RATE_LIMIT_COLUMNS:
        present |= np.isfinite(np.asarray(run.history[column], dtype=np.float64))
    return ~present


def _unbounded(run: RunData, kong: KongRows, pass_through: Bools) -> list[dict[str, object]]:
    """Per limited counter: requests admitted without any limit during the fault, their span, and the minute
    limit they bypassed."""
    sent = np.asarray(run.history["sent_ns"])
    table = []
    for k, identity in enumerate(kong.identities):
        mine = pass_through & (kong.identity == k)
        if not mine.any():
            continue
        span_s = (int(sent[mine].max()) - int(sent[mine].min())) / 1e9
        table.append(
            {
                "consumer": identity.name,
                "tier": identity.tier,
                "admitted_unlimited": int(mine.sum()),
                "span_s": round(span_s, 3),
                "minute_limit": identity.limits.get("minute"),
            }
        )
    return sorted(table, key=lambda r: -int(str(r["admitted_unlimited"])))[:50]


def _unbounded_summary(table: object) -> str:
    if not isinstance(table, list) or not table:
        return ""
    total = sum(int(r["admitted_unlimited"]) for r in table)
    top = table[0]
    limit = top["minute_limit"]
    limit_text = f", its minute limit {limit}" if limit is not None else ""
    return (
        f"{total} request(s) of {len(table)} limited consumer(s) admitted with no limit (fault_tolerant, as "
        f"declared; e.g. {top['consumer']}: {top['admitted_unlimited']} in {top['span_s']:g} s{limit_text})"
    )
