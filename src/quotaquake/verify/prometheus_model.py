"""The Prometheus snapshot as verification reads it.

``LimiterSnapshot`` extends ``quotaquake.record.PrometheusSnapshot`` with the limiter's decision-time
p99 (milliseconds, from the ``quotaquake_limiter_decision_seconds`` histogram over the run window).
"""

from __future__ import annotations

from quotaquake.record import PrometheusSnapshot


class LimiterSnapshot(PrometheusSnapshot):
    decision_p99_ms: float | None = None
