"""Gateway replica failover (fault windows of kind ``replica-loss``): the load balancer ejects the dead
replicas, clients see at most a bounded number of errors, and the replicas return.

What the kill action measured (``quotaquake.faults.replica_loss``, the window's ``details``): when it killed
k of N replicas, the load balancer's active health check (interval, timeout, unhealthy threshold) and
when the load balancer marked each one unhealthy (``ejected_after_s``); the undoing ``restore_all`` how
long the restart took until every replica was healthy again (``healthy_after_s``).

* 5xx bound: requests that can fail are those in flight on the dead replica when it died (the history's
  requests whose send-to-answer interval contains the kill: all of them, as an upper bound) and those the
  load balancer routes to it before ejecting it: k/N of the requests sent between the kill and the
  ejection (measured; else the health check's ``unhealthy_threshold x interval + timeout``). The load balancer
  retries connection failures, so most of the latter succeed: the bound is an upper one. More errors (5xx
  or no answer) among the requests sent in the window: fail.
* ejection: measured within the health check's own detection time plus ``EJECT_SLACK_S``; never: fail;
  not measured (a load balancer without Envoy's admin, e.g. Kong's nginx): unknown.
* recovery: ``healthy_after_s`` within ``degradation.max_recovery_s``; not recorded: unknown.
"""

from __future__ import annotations

import math

import numpy as np

from quotaquake.runfolder.models import FaultKind, FaultWindow
from quotaquake.verify.data.rundata import RunData, fault_bounds_ns
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Verdict, as_status, compose

CHECK = "gateway-failover"
EJECT_SLACK_S = 0.5  # the action polls every 20 ms; a busy machine delays the health check's own timer
NS = 1_000_000_000


def check_replica_failover(run: RunData, thresholds: Thresholds) -> Verdict:
    windows = [w for w in run.faults if w.kind is FaultKind.REPLICA_LOSS]
    if not windows:
        return Verdict(CHECK, "not-applicable", "no gateway replica loss in this run", {"windows": []})
    rows = [_judge(run, thresholds, w) for w in windows]
    status = compose(as_status(r["status"]) for r in rows)
    return Verdict(CHECK, status, "; ".join(str(r["summary"]) for r in rows), {"windows": rows})


def _number(details: dict[str, object], key: str) -> float | None:
    value = details.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _judge(run: RunData, thresholds: Thresholds, window: FaultWindow) -> dict[str, object]:
    details: dict[str, object] = dict(window.details or {})
    row: dict[str, object] = {"fault": window.name, "replicas": window.service}
    killed_at = _number(details, "killed_at")
    if killed_at is None:
        why = "the kill action recorded no measurements (no details in faults.json)"
        return {**row, "status": "unknown", "summary": f"{window.name}: {why}"}
    ejection = _ejection(details)
    bound = _error_bound(run, window, killed_at, details, ejection.get("ejection_s"))
    recovery = _recovery(details, thresholds.degradation.max_recovery_s)
    parts = [ejection, bound, recovery]
    for part in parts:
        row |= {k: v for k, v in part.items() if k not in ("status", "problem")}
    problems = [str(p["problem"]) for p in parts if p.get("problem")]
    status = compose(as_status(p["status"]) for p in parts)
    story = (
        f"{window.service} killed: ejected after {row.get('ejection_s')} s (health check detects within "
        f"{row.get('detection_s')} s), {row.get('errors')} error(s) <= bound {row.get('error_bound')} "
        f"({row.get('in_flight')} in flight + {row.get('routed_before_ejection')} routed before ejection), "
        f"back healthy {row.get('healthy_after_s')} s after the restore began"
    )
    return {**row, "status": status, "summary": f"{window.name}: " + ("; ".join(problems) if problems else story)}


def _detection_s(check: object) -> float | None:
    """How long the health check takes to eject a dead host: threshold x interval + timeout (s)."""
    if not isinstance(check, dict):
        return None
    interval, timeout, threshold = (check.get(k) for k in ("interval_s", "timeout_s", "unhealthy_threshold"))
    if not all(isinstance(v, int | float) for v in (interval, timeout, threshold)):
        return None
    return float(str(threshold)) * float(str(interval)) + float(str(timeout))


def _ejection(details: dict[str, object]) -> dict[str, object]:
    detection = _detection_s(details.get("health_check"))
    measured = details.get("ejected_after_s")
    times = list(measured.values()) if isinstance(measured, dict) else []
    part: dict[str, object] = {"detection_s": detection, "ejected_after_s": measured}
    if detection is None:
        return {
            **part,
            "status": "unknown",
            "problem": "the load balancer's health check was not recorded",
            "ejection_s": None,
        }
    if not times or not all(isinstance(t, int | float) for t in times):
        return {
            **part,
            "status": "fail",
            "problem": "the load balancer did not eject every killed replica",
            "ejection_s": None,
        }
    ejection = max(float(str(t)) for t in times)
    part["ejection_s"] = ejection
    if ejection > detection + EJECT_SLACK_S:
        problem = f"ejected after {ejection:.2f} s > the health check's {detection:.2f} s (+{EJECT_SLACK_S:g} s)"
        return {**part, "status": "fail", "problem": problem}
    return {**part, "status": "pass"}


def _error_bound(
    run: RunData, window: FaultWindow, killed_at: float, details: dict[str, object], ejection: object
) -> dict[str, object]:
    status = np.asarray(run.history["status"])
    sent = np.asarray(run.history["sent_ns"])
    latency_ns = np.nan_to_num(np.asarray(run.history["latency_ms"], dtype=np.float64) * 1e6, nan=np.inf)
    start, end = fault_bounds_ns(window)
    inside = (sent >= start) & (sent <= end)
    kill = int(killed_at * NS)
    in_flight = int(((sent <= kill) & (sent + latency_ns >= kill)).sum())
    detection = _detection_s(details.get("health_check"))
    span = float(ejection) if isinstance(ejection, float) else detection
    killed = len(str(window.service or "").split(",")) if window.service else 1
    before = _number(details, "replicas_before") or float(run.info.replicas)
    routed = 0
    if span is not None:
        routed = math.ceil(int(((sent >= kill) & (sent <= kill + int(span * NS))).sum()) * killed / max(1.0, before))
    errors = int((((status == 0) | (status >= 500)) & inside).sum())
    bound = in_flight + routed
    part: dict[str, object] = {
        "requests": int(inside.sum()),
        "errors": errors,
        "in_flight": in_flight,
        "routed_before_ejection": routed,
        "error_bound": bound,
    }
    if not inside.any():
        return {**part, "status": "unknown", "problem": "no requests during the replica loss"}
    if errors > bound:
        problem = (
            f"{errors} error(s) > bound {bound} ({in_flight} in flight at the kill + {routed} routed before ejection)"
        )
        return {**part, "status": "fail", "problem": problem}
    return {**part, "status": "pass" if span is not None else "unknown"}


def _recovery(details: dict[str, object], limit_s: float) -> dict[str, object]:
    healthy = _number(details, "healthy_after_s")
    if healthy is None:
        return {
            "status": "unknown",
            "problem": "recovery not recorded (no restore_all after the kill)",
            "healthy_after_s": None,
        }
    if healthy > limit_s:
        return {
            "status": "fail",
            "problem": f"healthy again after {healthy:.1f} s > {limit_s:g} s",
            "healthy_after_s": healthy,
        }
    return {"status": "pass", "healthy_after_s": healthy}
