"""Behaviour during fault windows (``faults.json``), per fault.

* availability: share of requests sent during the fault without a non-limiter error (5xx, status 0;
  under a fail-closed policy a 503 marked degraded is the declared behaviour, not an error)
  >= ``degradation.min_availability``;
* declared behaviour (the window's ``expect``, from the policy, for faults of the rate-limit store):
  ``fail-open-local`` -> degraded-marked admissions exist and 503s stay below ``max_fail_open_503_ratio``;
  ``fail-closed`` -> 503s and no degraded admissions;
* recovery: from the rollback end to the last degraded marker or 503 <= ``max_recovery_s`` (unknown if
  the history does not reach that far past the rollback, or the fault was never rolled back).

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
from quotaquake.verify.data.outcomes import ADMITTED, outcome_classes
from quotaquake.verify.data.rundata import RunData, fault_bounds_ns
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Status, Verdict, compose

CHECK = "degradation"
BOUND_CHECK = "degraded-over-admission"
I64 = npt.NDArray[np.int64]


def check_degradation(run: RunData, thresholds: Thresholds) -> Verdict:
    if not run.faults:
        status: Status = thresholds.degradation.when_no_faults
        return Verdict(CHECK, status, "no fault windows: degradation not exercised", {"faults": []})
    rows = [_judge_fault(run, thresholds, window) for window in run.faults]
    status = compose(row["status"] for row in rows)  # type: ignore[misc]
    problems = [f"{row['fault']}: {row['problems']}" for row in rows if row["problems"]]
    summary = "; ".join(problems) if problems else f"{len(rows)} fault(s) handled as declared"
    return Verdict(CHECK, status, summary, rows)


def _judge_fault(run: RunData, thresholds: Thresholds, window: FaultWindow) -> dict[str, object]:
    limits = thresholds.degradation
    status = np.asarray(run.history["status"])
    sent = np.asarray(run.history["sent_ns"])
    start, end = fault_bounds_ns(window)
    inside = (sent >= start) & (sent <= end)
    n = int(inside.sum())
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
    recovery = _recovery_s(run, window, status, limits.max_recovery_s)
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


def _recovery_s(run: RunData, window: FaultWindow, status: npt.NDArray[np.int32], run_limit: float) -> float | None:
    """Seconds from the rollback end to the last degraded marker / 503 after it (0 if none)."""
    if window.end is None:
        return None
    _, end = fault_bounds_ns(window)
    sent = np.asarray(run.history["sent_ns"])
    after = sent > end
    if not after.any():
        return None
    marked = after & (run.degraded | (status == 503))
    horizon = int(sent[-1])
    last = int(sent[np.flatnonzero(marked)[-1]]) if marked.any() else end
    recovery = (last - end) / 1e9
    if (horizon - last) / 1e9 < 1.0 and recovery <= run_limit:
        return None  # degraded (or no traffic) until the history ends: recovery not observed
    return recovery


def check_degraded_over_admission(run: RunData, thresholds: Thresholds) -> Verdict:
    """Admitted cost of degraded decisions per consumer and fault window <= replicas x (C + r (T + w))."""
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
