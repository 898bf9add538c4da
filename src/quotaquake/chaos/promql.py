"""Rates over a recent window from Prometheus, as ratios of two instant queries.

Queries read the LB's client-facing counters (job ``lb``: what clients saw, including replica deaths)
and the limiter's decision counters (job ``limiter``). ``rate()`` over ``window_s`` needs at least two
scrapes (1 s interval), so windows below ``MIN_WINDOW_S`` are refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from quotaquake.errors import UsageError

QueryFn = Callable[[str], Sequence[object]]
MIN_WINDOW_S = 2.0
DATA_TIMEOUT_S = 10.0
POLL_S = 0.5  # half the scrape interval

# The LB's admin listener has its own connection manager (prefix "admin": Prometheus scrapes); skip it.
LB_RESPONSES = 'envoy_http_downstream_rq_xx{{job="lb",envoy_http_conn_manager_prefix!="admin"{extra}}}'
LIMITER_DECISIONS = 'quotaquake_limiter_decisions_total{{job="limiter"{extra}}}'
# Kong's prometheus plugin (kong/plugins/prometheus/exporter.lua:105-107): every routed request by status
KONG_RESPONSES = "kong_http_requests_total{{{extra}}}"


class PrometheusNoData(UsageError):
    """A query returned no series: the metric does not exist (yet), so no rate can be judged."""


def window(window_s: float) -> str:
    if window_s < MIN_WINDOW_S:
        raise UsageError(f"window_s={window_s}: must be at least {MIN_WINDOW_S} s (two scrapes)")
    return f"{round(window_s)}s"


def sum_rate(selector: str, window_s: float) -> str:
    return f"sum(rate({selector}[{window(window_s)}]))"


def instant_value(query_fn: QueryFn, query: str) -> float:
    """The single value of an aggregated instant query; ``PrometheusNoData`` if there is none."""
    result = query_fn(query)
    if not result:
        raise PrometheusNoData(f"prometheus: no data for {query}")
    first = result[0]
    value = first.get("value") if isinstance(first, dict) else None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise PrometheusNoData(f"prometheus: unexpected answer {first!r} for {query}")
    return float(value[1])


def await_value(query_fn: QueryFn, query: str, timeout_s: float, poll_s: float = POLL_S) -> float:
    """``instant_value``, polled until Prometheus has data or ``timeout_s`` passes (then ``PrometheusNoData``).

    A freshly started Prometheus has fewer than two samples in the window for a second or two; a metric
    that does not exist never gets data and still fails.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return instant_value(query_fn, query)
        except PrometheusNoData:
            if time.monotonic() >= deadline:
                raise
        time.sleep(poll_s)


def ratio(query_fn: QueryFn, numerator: str, denominator: str, data_timeout_s: float = DATA_TIMEOUT_S) -> float:
    """``numerator / denominator``; 0.0 when the denominator is 0 (no requests: none failed).

    The denominator is awaited for ``data_timeout_s`` (``await_value``). A numerator without series while
    the denominator has data counts as 0 (prometheus_client creates a labelled series on first use).
    """
    total = await_value(query_fn, denominator, data_timeout_s)
    if total == 0:
        return 0.0
    try:
        part = instant_value(query_fn, numerator)
    except PrometheusNoData:
        part = 0.0
    return part / total


def error_rate(query_fn: QueryFn, window_s: float, kong: bool = False) -> float:
    """Share of client requests the LB answered 5xx over the last ``window_s`` seconds (0..1); for a Kong
    target, of the requests Kong's replicas answered (``kong_http_requests_total``)."""
    if kong:
        five = KONG_RESPONSES.format(extra='code=~"5.."')
        return ratio(query_fn, sum_rate(five, window_s), sum_rate(KONG_RESPONSES.format(extra=""), window_s))
    five = LB_RESPONSES.format(extra=',envoy_response_code_class="5"')
    return ratio(query_fn, sum_rate(five, window_s), sum_rate(LB_RESPONSES.format(extra=""), window_s))


def limited_rate(query_fn: QueryFn, window_s: float) -> float:
    """Share of limiter decisions that were 429 (``result="limited"``) over the last ``window_s`` s (0..1)."""
    limited = LIMITER_DECISIONS.format(extra=',result="limited"')
    return ratio(query_fn, sum_rate(limited, window_s), sum_rate(LIMITER_DECISIONS.format(extra=""), window_s))
