"""Time series for the report: per-bin request rates by tier and status class, 429 ratio, corrected
latency percentiles and degraded decisions. Bins are 1 s, widened so that a run has at most
``MAX_BINS`` bins; times are seconds since the first request."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

MAX_BINS = 600
STATUS_CLASSES: tuple[str, ...] = ("2xx-4xx", "429", "401", "5xx", "no response")
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Series:
    t0_ns: int
    bin_s: float
    times: F64  # bin starts, s since t0
    by_tier: dict[str, F64]  # req/s
    by_status: dict[str, F64]  # req/s
    ratio_429: F64
    latency: dict[str, F64]  # p50/p95/p99 corrected ms (NaN for empty bins)
    degraded: F64  # degraded decisions/s


def time_series(history: pd.DataFrame) -> Series | None:
    """Binned series of ``history`` (sorted by sent_ns); ``None`` for an empty history."""
    sent = np.asarray(history["sent_ns"])
    if len(sent) == 0:
        return None
    t0 = int(sent[0])
    span_s = (int(sent[-1]) - t0) / 1e9
    bin_s = max(1.0, float(np.ceil(span_s / MAX_BINS)))
    bins = ((sent - t0) / 1e9 // bin_s).astype(np.int64)
    n = int(bins[-1]) + 1

    def rate(mask: npt.NDArray[np.bool_]) -> F64:
        return np.asarray(np.bincount(bins[mask], minlength=n) / bin_s, dtype=np.float64)

    status = np.asarray(history["status"])
    tiers = history["tier"].cat
    by_tier = {str(name): rate(np.asarray(tiers.codes) == code) for code, name in enumerate(tiers.categories)}
    classes = _status_classes(status)
    by_status = {name: rate(classes == i) for i, name in enumerate(STATUS_CLASSES)}
    total = np.bincount(bins, minlength=n).astype(np.float64)
    ratio = np.divide(by_status["429"] * bin_s, total, out=np.full(n, np.nan), where=total > 0)
    corrected = (sent - np.asarray(history["intended_ns"])) / 1e6 + np.asarray(history["latency_ms"])
    responded = status != 0
    latency = _bin_percentiles(bins[responded], corrected[responded], n)
    degraded = rate(np.asarray(history["degraded"].cat.codes) >= 0)
    times = np.arange(n, dtype=np.float64) * bin_s
    return Series(t0, bin_s, times, by_tier, by_status, ratio, latency, degraded)


def _status_classes(status: npt.NDArray[np.int32]) -> npt.NDArray[np.int8]:
    classes = np.zeros(len(status), dtype=np.int8)
    classes[status == 429] = 1
    classes[status == 401] = 2
    classes[status >= 500] = 3
    classes[status == 0] = 4
    return classes


def _bin_percentiles(bins: npt.NDArray[np.int64], values: F64, n: int) -> dict[str, F64]:
    """Nearest-rank p50/p95/p99 per bin (values sorted within each bin)."""
    order = np.lexsort((values, bins))
    sorted_values = values[order]
    counts = np.bincount(bins, minlength=n)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out: dict[str, F64] = {}
    for q in (50, 95, 99):
        rank = np.ceil(q / 100 * counts).astype(np.int64) - 1
        index = np.clip(starts + np.maximum(rank, 0), 0, max(len(sorted_values) - 1, 0))
        picked = sorted_values[index] if len(sorted_values) else np.zeros(n)
        out[f"p{q}"] = np.where(counts > 0, picked, np.nan)
    return out
