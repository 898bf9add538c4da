"""Server-side cross-check: the history's counts vs what the gateway itself counted (Prometheus).

History: requests with a status (a response arrived, so they went through the gateway) and 429s.
Server: the LB's ``envoy_cluster_upstream_rq_total`` / 429 counter differences over the run window; for a
Kong target its prometheus plugin's ``kong_http_requests_total`` (total and ``code="429"``, summed per
replica, ``quotaquake.prometheus_kong``). A target that declares no Prometheus: not applicable.
Each pair must agree within ``max(relative_tolerance x history count, absolute_tolerance)``. The server
counting more than an incomplete run's history holds is unknown (a killed recorder loses its last rows); a
history counting more than the server is a disagreement whatever the run's completeness.
"""

from __future__ import annotations

import numpy as np

from quotaquake.verify.checks.completeness import incompleteness
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import NOT_APPLICABLE, Verdict

CHECK = "prometheus-crosscheck"


def check_prometheus_crosscheck(run: RunData, thresholds: Thresholds) -> Verdict:
    snapshot = run.prometheus
    if snapshot is None and run.info.prometheus_url is None:
        return Verdict(CHECK, NOT_APPLICABLE, "the target declares no Prometheus: no server-side counts", {})
    if snapshot is None:
        reason = f"no Prometheus snapshot (prometheus.json) of {run.info.prometheus_url} in the run folder"
        return Verdict(CHECK, "unknown", reason, {})
    if snapshot.error:
        return Verdict(CHECK, "unknown", f"Prometheus snapshot failed: {snapshot.error}", {"url": snapshot.url})
    status = np.asarray(run.history["status"])
    # Chaos probes send their own requests through the same load balancer (chaos/probe-requests.jsonl);
    # those answered outside the snapshot's window (the experiment's last hypothesis) are not in its counts.
    probes = [
        s
        for s, t in zip(run.probe_statuses, run.probe_times, strict=True)
        if s is not None and snapshot.start <= t <= snapshot.end
    ]
    pairs = {
        "requests": (int(np.sum(status != 0)) + len(probes), snapshot.requests),
        "rejected_429": (int(np.sum(status == 429)) + probes.count(429), snapshot.rejected_429),
    }
    rows: list[dict[str, object]] = []
    for name, (history_count, server_count) in pairs.items():
        tolerance = max(
            thresholds.crosscheck.relative_tolerance * history_count, thresholds.crosscheck.absolute_tolerance
        )
        agrees = None if server_count is None else abs(history_count - server_count) <= tolerance
        rows.append(
            {
                "count": name,
                "history": history_count,
                "prometheus": server_count,
                "tolerance": tolerance,
                "agrees": agrees,
            }
        )
    evidence: dict[str, object] = {
        "counts": rows,
        "probe_requests_included": len(probes),
        "queries": snapshot.queries,
        "url": snapshot.url,
    }
    disagree = [r for r in rows if r["agrees"] is False]
    if disagree and _unrecorded_probes(run, disagree):
        evidence["unrecorded_probe_requests"] = True
        return Verdict(
            CHECK,
            "unknown",
            "the server counted more requests than the history, and the experiment's probes sent requests "
            "through the gateway that no ledger recorded (run `chaos run` with QUOTAQUAKE_PROBE_LEDGER set, or "
            "keep probe-requests.jsonl beside the journal for `quotaquake verify --journal`)",
            evidence,
        )
    gaps = incompleteness(run)
    if disagree and gaps and all(_server_counted_more(r) for r in disagree):
        evidence["incomplete"] = gaps
        return Verdict(
            CHECK,
            "unknown",
            "the server counted more than the history holds, and the run is incomplete ("
            + "; ".join(gaps)
            + "): the history may lack requests that were answered; a complete run would decide",
            evidence,
        )
    if disagree:
        text = ", ".join(f"{r['count']}: history {r['history']} vs Prometheus {r['prometheus']}" for r in disagree)
        return Verdict(CHECK, "fail", f"history and server counts disagree: {text}", evidence)
    if any(r["agrees"] is None for r in rows):
        return Verdict(CHECK, "unknown", "Prometheus snapshot lacks a count", evidence)
    return Verdict(CHECK, "pass", "history and Prometheus agree on requests and 429s", evidence)


def _unrecorded_probes(run: RunData, disagree: list[dict[str, object]]) -> bool:
    """An experiment ran without a probe ledger, and every disagreement is the server counting more."""
    if not run.chaos_ran or run.probe_ledger:
        return False
    return all(_server_counted_more(r) for r in disagree)


def _server_counted_more(row: dict[str, object]) -> bool:
    return float(str(row["prometheus"])) > float(str(row["history"]))
