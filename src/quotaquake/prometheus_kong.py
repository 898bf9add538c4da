"""Snapshot a Kong 3.9 target's own Prometheus series over a run window (record side; before teardown).

Kong's prometheus plugin (``kong/plugins/prometheus/exporter.lua``, tag 3.9.3) exports, with
``status_code_metrics`` and ``latency_metrics`` on (what ``stack.kong`` provisions):

* ``kong_http_requests_total{service,route,code,source,workspace,consumer}`` (exporter.lua:105-107,296-309):
  every request that matched a route, whoever answered it (``source`` ``kong`` for Kong's own 401/429/500);
* ``kong_kong_latency_ms`` (time in Kong and its plugins, rate-limiting included; buckets 1, 2, 5, 7, 10, ...
  ms, exporter.lua:23,113-117), ``kong_upstream_latency_ms`` and ``kong_request_latency_ms`` histograms.

Counts are differences between instant queries at ``start`` and ``end``, per Kong instance: a replica that
restarted inside the window lost its counters (and whatever it had not yet been scraped for), so the
request counts are then left unknown rather than guessed. Histograms are recorded as per-bucket counts over
the window (``PrometheusSnapshot.latency_buckets``); the limiter-latency check bounds quantiles from them.
An unreachable or failing Prometheus yields a snapshot with ``error`` set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from quotaquake.runfolder.models import PrometheusSnapshot

VectorQuery = Callable[[str, float], Mapping[str, float]]
"""(expression, epoch seconds) -> value per label value of the one label the expression keeps."""

REQUESTS = "sum by (instance) (kong_http_requests_total)"
REJECTED_429 = 'sum by (instance) (kong_http_requests_total{code="429"})'
HISTOGRAMS: dict[str, str] = {
    "kong_latency_ms": "sum by (le) (kong_kong_latency_ms_bucket)",
    "upstream_latency_ms": "sum by (le) (kong_upstream_latency_ms_bucket)",
    "request_latency_ms": "sum by (le) (kong_request_latency_ms_bucket)",
}
RESETS = "sum(resets(kong_http_requests_total[{w}s]))"
TIMEOUT_S = 10


def snapshot_kong(url: str, start: float, end: float, *, query: VectorQuery | None = None) -> PrometheusSnapshot:
    """Requests and 429s Kong counted between ``start`` and ``end`` (epoch seconds) and its latency
    histograms over that window. ``query`` replaces the HTTP client (tests)."""
    run_query = query or _http_query(url)
    window_s = max(1, math.ceil(end - start))
    queries = {"requests": REQUESTS, "rejected_429": REJECTED_429, "resets": RESETS.format(w=window_s), **HISTOGRAMS}
    try:
        restarted = sum(run_query(queries["resets"], end).values()) > 0
        requests = _counted(run_query, REQUESTS, start, end)
        rejected = _counted(run_query, REJECTED_429, start, end, absent_is_zero=requests is not None)
        buckets = {name: _window_buckets(run_query, expression, start, end) for name, expression in HISTOGRAMS.items()}
    except Exception as exc:  # unreachable, HTTP error, bad answer: recorded, judged unknown later
        return PrometheusSnapshot(url=url, start=start, end=end, queries=queries, error=f"{type(exc).__name__}: {exc}")
    if restarted:
        requests = rejected = None  # a replica's counters restarted inside the window: counts lost
    return PrometheusSnapshot(
        url=url,
        start=start,
        end=end,
        queries=queries,
        requests=requests,
        rejected_429=rejected,
        latency_buckets={name: b for name, b in buckets.items() if b},
    )


def _counted(
    query: VectorQuery, expression: str, start: float, end: float, absent_is_zero: bool = False
) -> float | None:
    """Sum over instances of (value at end - value at start); ``None`` when no instance has the series or an
    instance's counter went down (it restarted: its counts before are lost)."""
    at_end, at_start = query(expression, end), query(expression, start)
    if not at_end:
        return 0.0 if absent_is_zero else None
    differences = [value - at_start.get(instance, 0.0) for instance, value in at_end.items()]
    return None if any(d < 0 for d in differences) else float(sum(differences))


def _window_buckets(query: VectorQuery, expression: str, start: float, end: float) -> dict[str, float]:
    """Cumulative count per bucket bound (``le``) of the observations made inside the window."""
    at_end, at_start = query(expression, end), query(expression, start)
    counts = {le: value - at_start.get(le, 0.0) for le, value in at_end.items()}
    return {} if any(v < 0 for v in counts.values()) else counts


def _http_query(url: str) -> VectorQuery:
    client = PrometheusConnect(url=url, disable_ssl=True, timeout=TIMEOUT_S, retry=Retry(total=2, backoff_factor=0.1))

    def vector(expression: str, at: float) -> dict[str, float]:
        result = client.custom_query(expression, params={"time": at})
        values: dict[str, float] = {}
        for sample in result:
            labels = sample.get("metric", {})
            key = next(iter(labels.values()), "") if labels else ""
            values[str(key)] = float(sample["value"][1])
        return values

    return vector
