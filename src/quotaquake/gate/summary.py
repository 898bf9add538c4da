"""The per-run summary table and the evaluation of thresholds against it.

A summary has one row per (metric, tags, aggregation) with the point value, the sample size ``n`` behind
it and one-sided bounds ``low``/``high`` at ``confidence`` (see ``quotaquake.stats``). Rows for exact
aggregations (counts, counter rates, gauge values, trend min/max, p(0) and p(100)) have ``low == high ==
value``: the run recorded every request, so these are facts about the run rather than estimates.
Percentiles, medians, means and binomial rates are estimates of the system's behaviour and carry bounds.

Units follow the metric (``ms`` for latencies, ``s`` for recovery, fractions in [0, 1] for rates, requests
per second for counter rates); values are stored unrounded as float64.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from quotaquake import stats
from quotaquake.errors import ConfigError
from quotaquake.gate.expressions import (
    METRICS,
    Tags,
    Threshold,
    format_number,
    parse_tags_key,
    tags_key,
    validate_submetric,
)

SUMMARY_COLUMNS: dict[str, str] = {
    "metric": "str",
    "tags": "str",
    "aggregation": "str",
    "value": "float64",
    "n": "int64",
    "low": "float64",
    "high": "float64",
    "confidence": "float64",
}
"""Column name -> pandas dtype of a summary frame, in order. ``tags`` is ``tags_key`` text."""

KEY_COLUMNS: tuple[str, ...] = ("metric", "tags", "aggregation")
DEFAULT_TREND_AGGREGATIONS: tuple[str, ...] = ("avg", "min", "med", "max", "p(90)", "p(95)", "p(99)")


@dataclass(frozen=True)
class SummaryRow:
    """One row of the summary. ``tags`` are sorted (key, value) pairs; ``value``/``low``/``high`` are in the
    metric's unit; ``n`` is the sample size behind the value (requests, samples, or events examined; 0 means
    nothing was recorded); ``confidence`` is the one-sided level of the bounds (1.0 for exact rows)."""

    metric: str
    tags: Tags
    aggregation: str
    value: float
    n: int
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class ThresholdResult:
    """The verdict on one threshold. ``value``/``low``/``high``/``n`` come from the summary row (None when
    it has none). ``needed_n`` (unknown only) is the sample size that would decide with the same observed
    rate / distribution: exact for rates, a lower bound ("at least") for ``p(N) <``/``<=`` judged from a
    summary, approximate for averages, None otherwise."""

    threshold: Threshold
    status: stats.Status
    value: float | None
    low: float | None
    high: float | None
    n: int | None
    needed_n: int | None
    reason: str


# --- building rows --------------------------------------------------------------------------------------


def _checked_tags(metric: str, tags: Tags | Mapping[str, str]) -> Tags:
    pairs = tuple(sorted(tags.items())) if isinstance(tags, Mapping) else tuple(sorted(tags))
    validate_submetric(metric, pairs)
    for key, value in pairs:
        if not value or any(c in value for c in ",{}"):
            raise ValueError(f"tag {key}={value!r}: a value must be non-empty without ',', '{{' or '}}'")
    return pairs


def _exact(metric: str, tags: Tags, aggregation: str, value: float, n: int) -> SummaryRow:
    return SummaryRow(metric, tags, aggregation, value, n, value, value, 1.0)


def trend_rows(
    metric: str,
    tags: Tags | Mapping[str, str],
    values: npt.ArrayLike,
    aggregations: Sequence[str] = DEFAULT_TREND_AGGREGATIONS,
    confidence: float = 0.95,
) -> list[SummaryRow]:
    """Rows of a trend metric from its raw samples (NaN ignored): ``avg`` with a t-interval (infinite below
    ``stats.MIN_AVG_SAMPLES``), ``med``/``p(N)`` with order-statistic bounds and nearest-rank values,
    ``min``/``max``/``p(0)``/``p(100)`` exact. No samples: NaN values and bounds, ``n = 0``."""
    pairs = _checked_tags(metric, tags)
    ordered = np.sort(np.asarray(values, dtype=np.float64)[~np.isnan(np.asarray(values, dtype=np.float64))])
    return [_trend_row(metric, pairs, name, ordered, confidence) for name in aggregations]


def sorted_trend_rows(
    metric: str,
    tags: Tags | Mapping[str, str],
    ordered: npt.NDArray[np.float64],
    aggregations: Sequence[str] = DEFAULT_TREND_AGGREGATIONS,
    confidence: float = 0.95,
) -> list[SummaryRow]:
    """``trend_rows`` of samples already sorted ascending and free of NaN (no copy, no sort)."""
    pairs = _checked_tags(metric, tags)
    return [_trend_row(metric, pairs, name, ordered, confidence) for name in aggregations]


def histogram_rows(
    metric: str,
    tags: Tags | Mapping[str, str],
    buckets: Mapping[float, float],
    aggregations: Sequence[str],
    confidence: float = 0.95,
    estimates: Mapping[str, float] | None = None,
) -> list[SummaryRow]:
    """Rows of a trend known only as a cumulative histogram: ``buckets`` maps each upper edge (in the metric's
    unit, ``inf`` for the last) to the samples at most that large. ``med``/``p(N)`` values come from
    ``estimates`` when given (e.g. Prometheus' ``histogram_quantile``), else by linear interpolation within
    the bucket; the bounds are the bucket edges that bound the order statistics of ``stats`` (``high``: the
    smallest edge with at least the upper rank's count under it; ``low``: the largest edge with fewer than
    the lower rank's count, 0 when none). Other aggregations have no row. No samples: no rows."""
    pairs = _checked_tags(metric, tags)
    edges = sorted((float(edge), float(count)) for edge, count in buckets.items())
    n = round(edges[-1][1]) if edges else 0
    if n <= 0:
        return []
    rows = []
    for name in aggregations:
        q = _percentile_of(name)
        if q is None or not 0.0 < q < 100.0:
            continue
        lower, upper = stats.order_statistic_ranks(n, q, confidence)
        high = next((edge for edge, count in edges if count >= upper), math.inf) if upper is not None else math.inf
        low = max((edge for edge, count in edges if count < lower), default=0.0) if lower is not None else 0.0
        value = (estimates or {}).get(name, _interpolated(edges, q / 100.0 * n))
        rows.append(SummaryRow(metric, pairs, name, float(value), n, low, high, confidence))
    return rows


def _interpolated(edges: list[tuple[float, float]], rank: float) -> float:
    """The value at ``rank`` interpolated linearly within its bucket (as Prometheus' ``histogram_quantile``);
    the lower finite edge when the rank falls in the ``inf`` bucket."""
    previous_edge, previous_count = 0.0, 0.0
    for edge, count in edges:
        if count >= rank:
            if not math.isfinite(edge):
                return previous_edge
            if count == previous_count:
                return edge
            return previous_edge + (edge - previous_edge) * (rank - previous_count) / (count - previous_count)
        previous_edge, previous_count = edge, count
    return previous_edge


def _trend_row(metric: str, tags: Tags, name: str, ordered: npt.NDArray[np.float64], confidence: float) -> SummaryRow:
    n = len(ordered)
    q = _percentile_of(name)
    if n == 0:
        return SummaryRow(metric, tags, name, math.nan, 0, math.nan, math.nan, confidence)
    if name == "avg":
        low, high = stats.mean_bounds(ordered, confidence)
        return SummaryRow(metric, tags, name, float(ordered.mean()), n, low, high, confidence)
    if name == "min" or q == 0.0:
        return _exact(metric, tags, name, float(ordered[0]), n)
    if name == "max" or q == 100.0:
        return _exact(metric, tags, name, float(ordered[-1]), n)
    if q is None:
        raise ValueError(f"unknown trend aggregation {name!r}")
    value = float(ordered[stats.nearest_rank(n, q) - 1])
    low, high = stats.sorted_percentile_bounds(ordered, q, confidence)
    return SummaryRow(metric, tags, name, value, n, low, high, confidence)


def _percentile_of(aggregation: str) -> float | None:
    """N of ``p(N)`` in percent, 50 for ``med``, None otherwise."""
    if aggregation == "med":
        return 50.0
    if aggregation.startswith("p(") and aggregation.endswith(")"):
        return float(aggregation[2:-1])
    return None


def rate_rows(
    metric: str,
    tags: Tags | Mapping[str, str],
    hits: int,
    n: int,
    confidence: float = 0.95,
    method: stats.RateMethod = "clopper-pearson",
) -> list[SummaryRow]:
    """The ``rate`` row of a rate metric: ``hits`` of ``n`` (failed requests, 429s, or requests served
    during faults), with binomial bounds (``stats.rate_bounds``). ``n = 0``: NaN value, bounds (0, 1)."""
    pairs = _checked_tags(metric, tags)
    low, high = stats.rate_bounds(hits, n, confidence, method)
    return [SummaryRow(metric, pairs, "rate", hits / n if n else math.nan, n, low, high, confidence)]


def counter_rows(
    metric: str, tags: Tags | Mapping[str, str], count: float, observed: int, duration_s: float | None = None
) -> list[SummaryRow]:
    """Exact ``count`` (and, given the run's duration in s, ``rate`` per second) rows of a counter.
    ``observed`` is how many requests or events were examined to count (0 means nothing was recorded)."""
    pairs = _checked_tags(metric, tags)
    rows = [_exact(metric, pairs, "count", float(count), observed)]
    if duration_s is not None:
        if duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        rows.append(_exact(metric, pairs, "rate", float(count) / duration_s, observed))
    return rows


def gauge_rows(metric: str, tags: Tags | Mapping[str, str], value: float, observed: int = 1) -> list[SummaryRow]:
    """The exact ``value`` row of a gauge (e.g. the longest recovery in s over the run's faults)."""
    return [_exact(metric, _checked_tags(metric, tags), "value", float(value), observed)]


# --- the table ------------------------------------------------------------------------------------------


def summary_frame(rows: Iterable[SummaryRow]) -> pd.DataFrame:
    """A summary DataFrame (``SUMMARY_COLUMNS``) from rows; a repeated (metric, tags, aggregation) is an
    error."""
    records = [
        {
            "metric": r.metric,
            "tags": tags_key(r.tags),
            "aggregation": r.aggregation,
            "value": r.value,
            "n": r.n,
            "low": r.low,
            "high": r.high,
            "confidence": r.confidence,
        }
        for r in rows
    ]
    return conform(pd.DataFrame.from_records(records, columns=list(SUMMARY_COLUMNS)))


def conform(frame: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """``frame`` with exactly the summary columns (plus ``extra``, kept in front) in schema order and dtype.

    ``ValueError`` when a column is missing or a (metric, tags, aggregation) repeats (per run, when
    ``run_id`` is among ``extra``).
    """
    missing = [c for c in (*extra, *SUMMARY_COLUMNS) if c not in frame.columns]
    if missing:
        raise ValueError(f"summary lacks column(s): {', '.join(missing)}")
    out = frame.loc[:, [*extra, *SUMMARY_COLUMNS]].astype(SUMMARY_COLUMNS).reset_index(drop=True)
    key = [c for c in ("run_id", *KEY_COLUMNS) if c in out.columns]
    duplicated = out.duplicated(subset=key)
    if duplicated.any():
        first = out.loc[duplicated, key].iloc[0].tolist()
        raise ValueError(f"summary repeats row {first}")
    return out


def write_summary(frame: pd.DataFrame, path: Path) -> None:
    """Write a summary as Parquet (pyarrow), schema-checked."""
    conform(frame).to_parquet(path, engine="pyarrow", index=False)


def read_summary(path: Path) -> pd.DataFrame:
    """Read a summary written by ``write_summary`` (schema-checked); a missing, corrupt or foreign file is a
    one-line ``ConfigError`` naming it."""
    try:
        return conform(pd.read_parquet(path, engine="pyarrow"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(path, None, f"not a readable quotaquake summary: {reason}") from None


# --- evaluation -----------------------------------------------------------------------------------------


def _decide(low: float, high: float, operator: str, limit: float) -> stats.Status:
    """Pass when the bound on the good side satisfies ``operator limit``; fail when the bound on the bad side
    proves the opposite; unknown otherwise (NaN bounds are always unknown)."""
    if operator == "<":
        proven, violated = high < limit, low >= limit
    elif operator == "<=":
        proven, violated = high <= limit, low > limit
    elif operator == ">":
        proven, violated = low > limit, high <= limit
    elif operator == ">=":
        proven, violated = low >= limit, high < limit
    elif operator == "==":
        proven, violated = low == high == limit, limit < low or limit > high
    elif operator == "!=":
        proven, violated = limit < low or limit > high, low == high == limit
    else:
        raise ValueError(f"unknown operator {operator!r}")
    return "pass" if proven else "fail" if violated else "unknown"


def summary_rows(frame: pd.DataFrame) -> list[SummaryRow]:
    """The rows of a summary frame as ``SummaryRow`` objects (tags parsed back into sorted pairs)."""
    table = conform(frame)
    return [
        SummaryRow(
            metric=str(metric),
            tags=parse_tags_key(str(tags)),
            aggregation=str(aggregation),
            value=float(value),
            n=int(n),
            low=float(low),
            high=float(high),
            confidence=float(confidence),
        )
        for metric, tags, aggregation, value, n, low, high, confidence in zip(
            *(table[c].tolist() for c in SUMMARY_COLUMNS), strict=True
        )
    ]


def evaluate(thresholds: Iterable[Threshold], summary: pd.DataFrame) -> list[ThresholdResult]:
    """Judge every threshold against the summary row of its (metric, tags, aggregation).

    Pass only when the row's confidence bound proves the threshold (exact rows: when the value satisfies
    it); fail when the opposite bound proves the violation; unknown otherwise, including a missing row or
    a row with ``n = 0`` (never pass for lack of data).
    """
    rows = {(r.metric, r.tags, r.aggregation): r for r in summary_rows(summary)}
    return [_evaluate_one(t, rows.get((t.metric, t.tags, t.aggregation))) for t in thresholds]


def _evaluate_one(threshold: Threshold, row: SummaryRow | None) -> ThresholdResult:
    if row is None:
        return ThresholdResult(threshold, "unknown", None, None, None, None, None, "no summary row: not measured")
    if row.n == 0:
        return ThresholdResult(threshold, "unknown", None, None, None, 0, None, "no samples in the run")
    status = _decide(row.low, row.high, threshold.operator, threshold.value)
    needed = None if status != "unknown" else _needed_n(threshold, row)
    return ThresholdResult(
        threshold, status, row.value, row.low, row.high, row.n, needed, _reason(threshold, row, status, needed)
    )


def _needed_n(threshold: Threshold, row: SummaryRow) -> int | None:
    if threshold.operator in ("==", "!=") or row.value == threshold.value:
        return None
    if METRICS[threshold.metric].kind == "rate":
        return stats.needed_rate_n(row.value, row.n, threshold.value, row.confidence)
    if threshold.aggregation == "avg":
        return _needed_avg_about(threshold.value, row)
    q = _percentile_of(threshold.aggregation)
    if q is not None and 0.0 < q < 100.0 and threshold.operator in ("<", "<="):
        return _needed_percentile_at_least(threshold.value, row, q)
    return None


def _needed_avg_about(limit: float, row: SummaryRow) -> int:
    """About how many samples shrink the t-interval's relevant half-width below the distance to the limit
    (half-widths scale as 1/sqrt(n)); ``MIN_AVG_SAMPLES`` when no interval was computed yet."""
    half = row.high - row.value if row.value < limit else row.value - row.low
    if not math.isfinite(half):
        return stats.MIN_AVG_SAMPLES
    return max(math.ceil(row.n * (half / abs(limit - row.value)) ** 2), row.n + 1)


def _needed_percentile_at_least(limit: float, row: SummaryRow, q: float) -> int | None:
    """A lower bound on the samples needed for ``p(q) < limit``: the summary only tells that the count of
    values within the limit lies between the ranks of its order statistics, so take the most favourable
    count (just under the upper-bound rank when leaning to pass, the lower-bound rank when leaning to fail).
    """
    lower, upper = stats.order_statistic_ranks(row.n, q, row.confidence)
    leaning_pass = (upper - 1) / row.n if upper is not None else 1.0
    within = leaning_pass if row.value < limit else (lower or 0) / row.n
    return stats.needed_percentile_n(within, q, row.confidence, row.n)


def _reason(threshold: Threshold, row: SummaryRow, status: stats.Status, needed: int | None) -> str:
    measured = f"{threshold.aggregation}={_fmt(row.value)}"
    if row.low != row.high:
        measured += f" (bounds {_fmt(row.low)}..{_fmt(row.high)}, {100 * row.confidence:.4g}% one-sided)"
    text = f"{measured} vs {threshold.operator}{format_number(threshold.value)}, n={row.n}"
    if status != "unknown":
        return f"{text}: {'proven' if status == 'pass' else 'violated'}"
    if needed is None:
        return f"{text}: the bounds straddle the limit"
    qualifier = "about " if threshold.aggregation == "avg" else "" if threshold.aggregation == "rate" else "at least "
    return f"{text}: the bounds straddle the limit; {qualifier}{needed} samples would decide"


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def needed_aggregations(thresholds: Iterable[Threshold], metric: str) -> tuple[str, ...]:
    """The default trend aggregations plus every ``p(N)`` the thresholds ask of ``metric``."""
    extra = [t.aggregation for t in thresholds if t.metric == metric and t.percentile is not None]
    names = list(DEFAULT_TREND_AGGREGATIONS)
    names += [name for name in dict.fromkeys(extra) if name not in names]
    return tuple(names)
