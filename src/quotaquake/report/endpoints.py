"""The per endpoint x tier table: what Locust's statistics table shows, split by tier, from the history.

For display only (no verdict is decided here). Per cell: requests; rate = requests / the history's span
(first to last send, s; the same span for every row so rows compare); counts of each status class
(``quotaquake.report.series.STATUS_CLASSES``); errors = 5xx + no response; latency percentiles (ms,
nearest rank) over responses (status != 0), from the actual send and, for p99, from the intended send
(coordinated omission corrected). Each endpoint gets an "all tiers" row, the table an "all" row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from quotaquake.report.grouped import SortedValues, grouped_percentiles
from quotaquake.report.series import ERROR_CLASSES, STATUS_CLASSES, status_classes

ALL = "all"
ALL_TIERS = "all tiers"
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EndpointRow:
    endpoint: str
    tier: str  # a tier name, ``ALL_TIERS`` (endpoint subtotal) or ``ALL`` (the whole table)
    requests: int
    rate: float  # req/s over the history's span
    statuses: dict[str, int]  # per class of STATUS_CLASSES
    errors: int  # 5xx + no response
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    p99_intended_ms: float | None

    @property
    def subtotal(self) -> bool:
        return self.tier in (ALL, ALL_TIERS)

    @property
    def error_share(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def endpoint_table(history: pd.DataFrame) -> list[EndpointRow]:
    """Rows per endpoint (most requested first): its "all tiers" subtotal, then its tiers by requests; then
    the "all" row. Needs columns endpoint, tier, status, latency_ms, sent_ns, intended_ns."""
    sent = np.asarray(history["sent_ns"], dtype=np.int64)
    if len(sent) == 0:
        return []
    span_s = max((int(sent.max()) - int(sent.min())) / 1e9, 1e-9)
    endpoints, tiers = history["endpoint"].cat, history["tier"].cat
    endpoint_codes = np.asarray(endpoints.codes, dtype=np.int64)
    tier_codes = np.asarray(tiers.codes, dtype=np.int64)
    n_tiers = len(tiers.categories) + 1  # the last column: rows without a tier
    cells = np.where(
        endpoint_codes >= 0, endpoint_codes * n_tiers + np.where(tier_codes >= 0, tier_codes, n_tiers - 1), -1
    )
    tier_names = [str(t) for t in tiers.categories] + ["(none)"]
    endpoint_names = [str(e) for e in endpoints.categories]
    latency = _Latency(history)
    cell_stats = _Stats(history, latency, cells, len(endpoint_names) * n_tiers, span_s)
    endpoint_stats = _Stats(history, latency, endpoint_codes, len(endpoint_names), span_s)
    total_stats = _Stats(history, latency, np.zeros(len(sent), dtype=np.int64), 1, span_s)
    rows: list[EndpointRow] = []
    for e in np.argsort(-endpoint_stats.counts, kind="stable"):
        if endpoint_stats.counts[e] == 0:
            continue
        rows.append(endpoint_stats.row(int(e), endpoint_names[e], ALL_TIERS))
        codes = int(e) * n_tiers + np.arange(n_tiers)
        for code in codes[np.argsort(-cell_stats.counts[codes], kind="stable")]:
            if cell_stats.counts[code] > 0:
                rows.append(cell_stats.row(int(code), endpoint_names[e], tier_names[code % n_tiers]))
    rows.append(total_stats.row(0, ALL, ALL))
    return rows


class _Latency:
    """Each row's status class and latencies (ms; NaN without a response), sorted once for every grouping."""

    def __init__(self, history: pd.DataFrame) -> None:
        status = np.asarray(history["status"])
        self.classes = status_classes(status)
        self.actual = np.where(status != 0, np.asarray(history["latency_ms"], dtype=np.float64), np.nan)
        self.intended = self.actual + (np.asarray(history["sent_ns"]) - np.asarray(history["intended_ns"])) / 1e6
        self.actual_sorted = SortedValues.of(self.actual)
        self.intended_sorted = SortedValues.of(self.intended)


class _Stats:
    """Counts and percentiles of every group of ``codes``."""

    def __init__(self, history: pd.DataFrame, rows: _Latency, codes: npt.NDArray[np.int64], n: int, span_s: float):
        valid = codes >= 0
        self.span_s = span_s
        self.counts = np.bincount(codes[valid], minlength=n)[:n]
        self.by_class = {
            name: np.bincount(codes[valid & (rows.classes == i)], minlength=n)[:n]
            for i, name in enumerate(STATUS_CLASSES)
        }
        self.actual = grouped_percentiles(codes, rows.actual, n, presorted=rows.actual_sorted)
        self.intended = grouped_percentiles(codes, rows.intended, n, (99.0,), presorted=rows.intended_sorted)

    def row(self, code: int, endpoint: str, tier: str) -> EndpointRow:
        statuses = {name: int(counts[code]) for name, counts in self.by_class.items()}
        return EndpointRow(
            endpoint=endpoint,
            tier=tier,
            requests=int(self.counts[code]),
            rate=float(self.counts[code]) / self.span_s,
            statuses=statuses,
            errors=sum(statuses[name] for name in ERROR_CLASSES),
            p50_ms=_ms(self.actual["p50"][code]),
            p95_ms=_ms(self.actual["p95"][code]),
            p99_ms=_ms(self.actual["p99"][code]),
            p99_intended_ms=_ms(self.intended["p99"][code]),
        )


def _ms(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
