"""Arrival-rate and generator-lag figures of a recorded history (what the open model achieved).

``steady_rate`` trims ``trim_s`` seconds at both ends of the run before counting, because Locust starts
and stops users over a fraction of a second (workers receive their users after the master's shape has
started); inside that window an unsaturated generator keeps to its schedule, so the steady rate is the
one to compare with the target (goal: within ±1 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NS_PER_S = 1e9


@dataclass(frozen=True)
class ArrivalStats:
    requests: int
    span_s: float  # first to last actual send, seconds
    overall_rate: float  # requests / span_s, req/s (includes start and stop transients)
    steady_rate: float  # req/s inside the trimmed window (nan when the run is too short to trim)
    lag_p50_ms: float  # generator lag sent - intended, milliseconds
    lag_p99_ms: float
    lag_max_ms: float
    late_over_10ms: float  # fraction of requests sent more than 10 ms after their intended time


def steady_rate(sent_ns: np.ndarray, trim_s: float = 1.0) -> float:
    """Sends per second between ``first + trim_s`` and ``last - trim_s`` (nan if that window is empty)."""
    if len(sent_ns) < 2:
        return float("nan")
    start = sent_ns.min() + trim_s * NS_PER_S
    end = sent_ns.max() - trim_s * NS_PER_S
    if end <= start:
        return float("nan")
    inside = np.count_nonzero((sent_ns >= start) & (sent_ns < end))
    return float(inside / ((end - start) / NS_PER_S))


def arrival_stats(history: pd.DataFrame, trim_s: float = 1.0) -> ArrivalStats:
    """Rates and lag of a history frame (columns ``intended_ns``, ``sent_ns``)."""
    sent = history["sent_ns"].to_numpy(dtype=np.int64)
    if len(sent) == 0:
        nan = float("nan")
        return ArrivalStats(0, 0.0, nan, nan, nan, nan, nan, nan)
    lag_ms = (sent - history["intended_ns"].to_numpy(dtype=np.int64)) / 1e6
    span_s = float(sent.max() - sent.min()) / NS_PER_S
    return ArrivalStats(
        requests=len(sent),
        span_s=span_s,
        overall_rate=len(sent) / span_s if span_s > 0 else float("nan"),
        steady_rate=steady_rate(sent, trim_s),
        lag_p50_ms=float(np.percentile(lag_ms, 50)),
        lag_p99_ms=float(np.percentile(lag_ms, 99)),
        lag_max_ms=float(lag_ms.max()),
        late_over_10ms=float(np.mean(lag_ms > 10.0)),
    )
