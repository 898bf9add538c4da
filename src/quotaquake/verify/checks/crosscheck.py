"""Server-side cross-check: the history's counts vs what the load balancer forwarded (Prometheus).

History: requests with a status (a response arrived, so they went through the gateway) and 429s.
Server: the LB's ``envoy_cluster_upstream_rq_total`` / 429 counter differences over the run window.
Each pair must agree within ``max(relative_tolerance x history count, absolute_tolerance)``.
"""

from __future__ import annotations

import numpy as np

from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Verdict

CHECK = "prometheus-crosscheck"


def check_prometheus_crosscheck(run: RunData, thresholds: Thresholds) -> Verdict:
    snapshot = run.prometheus
    if snapshot is None:
        return Verdict(CHECK, "unknown", "no Prometheus snapshot (prometheus.json) in the run folder", {})
    if snapshot.error:
        return Verdict(CHECK, "unknown", f"Prometheus snapshot failed: {snapshot.error}", {"url": snapshot.url})
    status = np.asarray(run.history["status"])
    # Chaos probes send their own requests through the same load balancer (chaos/probe-requests.jsonl).
    probes = [s for s in run.probe_statuses if s is not None]
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
    if disagree:
        text = ", ".join(f"{r['count']}: history {r['history']} vs Prometheus {r['prometheus']}" for r in disagree)
        return Verdict(CHECK, "fail", f"history and server counts disagree: {text}", evidence)
    if any(r["agrees"] is None for r in rows):
        return Verdict(CHECK, "unknown", "Prometheus snapshot lacks a count", evidence)
    return Verdict(CHECK, "pass", "history and Prometheus agree on requests and 429s", evidence)
