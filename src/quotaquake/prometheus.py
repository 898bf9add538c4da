"""Snapshot server-side counters from Prometheus over a run window (record side; called before teardown).

Counts are counter differences between instant queries at ``start`` and ``end`` (the stack may serve
several runs, so totals since start-up would be wrong); a series absent at ``start`` counts from 0, and a
negative difference (a counter reset by a restarted process) falls back to ``increase()`` over the
window. The limiter's decision-time p99 comes from its histogram over the window. An unreachable or
failing Prometheus yields a snapshot with ``error`` set (the cross-check then says unknown).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from quotaquake.load.safety import check_target
from quotaquake.runfolder.models import PrometheusSnapshot

InstantQuery = Callable[[str, float], float | None]

REQUESTS = 'sum(envoy_cluster_upstream_rq_total{job="lb",envoy_cluster_name="replicas"})'
REJECTED_429 = 'sum(envoy_cluster_upstream_rq{job="lb",envoy_cluster_name="replicas",envoy_response_code="429"})'
DEGRADED = "sum(quotaquake_limiter_degraded_decisions_total)"
DECISION_P99 = "histogram_quantile(0.99, sum by (le) (increase(quotaquake_limiter_decision_seconds_bucket[{w}s])))"
TIMEOUT_S = 10


def snapshot_prometheus(
    url: str,
    start: float,
    end: float,
    *,
    query: InstantQuery | None = None,
    allow_hosts: Sequence[str] = (),
) -> PrometheusSnapshot:
    """Requests and 429s the LB forwarded, degraded decisions and decision p99 between ``start`` and ``end``
    (epoch seconds). ``query`` replaces the HTTP client (tests). The loopback guard refuses (``UsageError``)
    a Prometheus on another host unless it is in ``allow_hosts``."""
    if query is None:
        check_target(url, allow_hosts, what="prometheus")
    run_query = query or _http_query(url)
    window_s = max(1, math.ceil(end - start))
    queries = {
        "requests": REQUESTS,
        "rejected_429": REJECTED_429,
        "degraded_decisions": DEGRADED,
        "decision_p99": DECISION_P99.format(w=window_s),
    }
    try:
        counts = {
            "requests": _difference(run_query, queries["requests"], start, end),
            # these series appear only once incremented: absent while the LB answers means none happened
            "rejected_429": _difference(run_query, queries["rejected_429"], start, end, absent_is_zero=True),
            "degraded_decisions": _difference(
                run_query, queries["degraded_decisions"], start, end, absent_is_zero=True
            ),
        }
        if counts["requests"] is None:
            counts = dict.fromkeys(counts)  # the LB's counters were not scraped: nothing is known
        p99_s = run_query(queries["decision_p99"], end)
    except Exception as exc:  # unreachable, HTTP error, bad answer: recorded, judged unknown later
        return PrometheusSnapshot(url=url, start=start, end=end, queries=queries, error=f"{type(exc).__name__}: {exc}")
    return PrometheusSnapshot(
        url=url,
        start=start,
        end=end,
        queries=queries,
        requests=counts["requests"],
        rejected_429=counts["rejected_429"],
        degraded_decisions=counts["degraded_decisions"],
        decision_p99_ms=None if p99_s is None or math.isnan(p99_s) else p99_s * 1e3,
    )


def _difference(
    query: InstantQuery, expression: str, start: float, end: float, absent_is_zero: bool = False
) -> float | None:
    at_end = query(expression, end)
    if at_end is None:
        return 0.0 if absent_is_zero else None
    difference = at_end - (query(expression, start) or 0.0)
    if difference >= 0:
        return difference
    window_s = max(1, math.ceil(end - start))
    increase = expression.replace("sum(", "sum(increase(", 1)[:-1] + f"[{window_s}s]))"
    return query(increase, end)


def _http_query(url: str) -> InstantQuery:
    client = PrometheusConnect(url=url, disable_ssl=True, timeout=TIMEOUT_S, retry=Retry(total=2, backoff_factor=0.1))

    def instant(expression: str, at: float) -> float | None:
        result = client.custom_query(expression, params={"time": at})
        if not result:
            return None
        return float(result[0]["value"][1])

    return instant
