"""Snapshot server-side counters from Prometheus over a run window (record side; called before teardown).

Counts are counter differences between instant queries at ``start`` and ``end`` (the stack may serve
several runs, so totals since start-up would be wrong); a series absent at ``start`` counts from 0, and a
negative difference (a counter reset by a restarted process) falls back to ``increase()`` over the
window. The limiter's decision time comes from its histogram over the window: p99 and p50
(``histogram_quantile``), the number of decisions (the ``_count`` difference) and the cumulative count of
each bucket edge (``le``; differences again), from which verification counts exactly how many decisions
met a target that is a bucket edge. An unreachable or failing Prometheus yields a snapshot with ``error``
set (the cross-check then says unknown).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from quotaquake.load.safety import check_target
from quotaquake.runfolder.models import PrometheusSnapshot

InstantQuery = Callable[[str, float], float | None]
VectorQuery = Callable[[str, float], dict[str, float]]
"""An instant query answering one value per ``le`` label (histogram buckets)."""

REQUESTS = 'sum(envoy_cluster_upstream_rq_total{job="lb",envoy_cluster_name="replicas"})'
REJECTED_429 = 'sum(envoy_cluster_upstream_rq{job="lb",envoy_cluster_name="replicas",envoy_response_code="429"})'
DEGRADED = "sum(quotaquake_limiter_degraded_decisions_total)"
DECISION_P99 = "histogram_quantile(0.99, sum by (le) (increase(quotaquake_limiter_decision_seconds_bucket[{w}s])))"
DECISION_P50 = "histogram_quantile(0.5, sum by (le) (increase(quotaquake_limiter_decision_seconds_bucket[{w}s])))"
DECISION_COUNT = "sum(quotaquake_limiter_decision_seconds_count)"
DECISION_BUCKETS = "sum by (le) (quotaquake_limiter_decision_seconds_bucket)"
DECISION_BUCKETS_INCREASE = "sum by (le) (increase(quotaquake_limiter_decision_seconds_bucket[{w}s]))"
TIMEOUT_S = 10


def snapshot_prometheus(
    url: str,
    start: float,
    end: float,
    *,
    query: InstantQuery | None = None,
    vector_query: VectorQuery | None = None,
    allow_hosts: Sequence[str] = (),
) -> PrometheusSnapshot:
    """Requests and 429s the LB forwarded, degraded decisions and the limiter's decision time between
    ``start`` and ``end`` (epoch seconds). ``query``/``vector_query`` replace the HTTP client (tests); with
    ``query`` alone the buckets are not asked for. The loopback guard refuses (``UsageError``) a Prometheus
    on another host unless it is in ``allow_hosts``."""
    if query is None:
        check_target(url, allow_hosts, what="prometheus")
    run_query = query or _http_query(url)
    run_vector = vector_query or (None if query is not None else _http_vector_query(url))
    window_s = max(1, math.ceil(end - start))
    queries = {
        "requests": REQUESTS,
        "rejected_429": REJECTED_429,
        "degraded_decisions": DEGRADED,
        "decision_p99": DECISION_P99.format(w=window_s),
        "decision_p50": DECISION_P50.format(w=window_s),
        "decision_count": DECISION_COUNT,
        "decision_buckets": DECISION_BUCKETS,
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
        p50_s = run_query(queries["decision_p50"], end)
        count = _difference(run_query, DECISION_COUNT, start, end)
        buckets = None if run_vector is None else _bucket_differences(run_vector, start, end, window_s)
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
        decision_p99_ms=_ms(p99_s),
        decision_p50_ms=_ms(p50_s),
        decision_count=count,
        decision_buckets=buckets,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None or math.isnan(seconds) else seconds * 1e3


def _bucket_differences(query: VectorQuery, start: float, end: float, window_s: int) -> dict[str, float] | None:
    """Per ``le``, decisions at most that long between ``start`` and ``end``; ``increase()`` when a bucket
    went down (a restarted limiter); ``None`` without a histogram."""
    at_end = query(DECISION_BUCKETS, end)
    if not at_end:
        return None
    at_start = query(DECISION_BUCKETS, start)
    differences = {le: value - at_start.get(le, 0.0) for le, value in at_end.items()}
    if any(value < 0 for value in differences.values()):
        differences = query(DECISION_BUCKETS_INCREASE.format(w=window_s), end)
    return dict(sorted(differences.items(), key=lambda item: float(item[0])))


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


def _http_vector_query(url: str) -> VectorQuery:
    client = PrometheusConnect(url=url, disable_ssl=True, timeout=TIMEOUT_S, retry=Retry(total=2, backoff_factor=0.1))

    def by_le(expression: str, at: float) -> dict[str, float]:
        result = client.custom_query(expression, params={"time": at})
        return {str(series["metric"].get("le", "")): float(series["value"][1]) for series in result}

    return by_le
