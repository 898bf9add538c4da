"""The report's time series and per endpoint x tier table on a handful of rows with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from quotaquake.report.endpoints import ALL, ALL_TIERS, endpoint_table
from quotaquake.report.grouped import grouped_percentiles
from quotaquake.report.series import STATUS_CLASSES, status_classes, time_series, timeline_of, wall_clock
from tests.support.synthetic import START_S, frame_from_rows


def test_status_classes_keep_4xx_apart_from_successes():
    status = np.array([200, 204, 404, 403, 429, 401, 503, 500, 0, 302])
    names = [STATUS_CLASSES[c] for c in status_classes(status)]
    assert names == ["2xx", "2xx", "other 4xx", "other 4xx", "429", "401", "5xx", "5xx", "no response", "other"]


def test_nearest_rank_percentiles_per_group():
    groups = np.array([0, 0, 0, 0, 1, 2, 2])
    values = np.array([4.0, 1.0, 3.0, 2.0, 7.0, np.nan, 5.0])
    out = grouped_percentiles(groups, values, 4)
    # group 0 sorted 1,2,3,4: p50 rank ceil(2) = 2 -> 2; p95 rank ceil(3.8) = 4 -> 4; group 3 is empty
    np.testing.assert_allclose(out["p50"], [2.0, 7.0, 5.0, np.nan])
    np.testing.assert_allclose(out["p95"], [4.0, 7.0, 5.0, np.nan])


def test_scattered_groups_give_the_same_percentiles_as_runs():
    rng = np.random.default_rng(1)
    groups = rng.integers(-1, 7, 5_000)
    values = np.where(rng.random(5_000) < 0.05, np.nan, rng.lognormal(1.0, 1.0, 5_000))
    scattered = grouped_percentiles(groups, values, 8)
    order = np.argsort(groups, kind="stable")
    runs = grouped_percentiles(groups[order], values[order], 8)
    for q in ("p50", "p95", "p99"):
        np.testing.assert_array_equal(scattered[q], runs[q])
        expected = [np.percentile(values[(groups == g) & ~np.isnan(values)], float(q[1:]), method="inverted_cdf")
                    for g in range(7)]  # fmt: skip
        np.testing.assert_array_equal(scattered[q][:7], expected)
    assert np.isnan(scattered["p50"][7])


def test_bins_widen_so_a_long_run_keeps_at_most_600():
    timeline = timeline_of(np.array([0, 1_200 * 10**9], dtype=np.int64))
    assert timeline is not None and (timeline.bin_s, timeline.n) == (2.0, 601)
    assert timeline_of(np.zeros(0, dtype=np.int64)) is None


def test_wall_clock_is_utc():
    assert wall_clock(np.array([START_S + 1.5])) == ["2026-01-01T00:00:01.500"]


ROWS = [
    {"t": 0.1, "consumer": "a", "tier": "free", "latency_ms": 10.0, "lag_ms": 2.0},
    {"t": 0.5, "consumer": "a", "tier": "free", "latency_ms": 20.0, "status": 404},
    {"t": 1.2, "consumer": "b", "tier": "pro", "latency_ms": 5.0, "status": 429, "endpoint": "/compare"},
    {"t": 1.3, "consumer": "b", "tier": "pro", "latency_ms": 3000.0, "status": 0, "lag_ms": 50.0},
    {"t": 2.7, "consumer": "b", "tier": "pro", "latency_ms": 8.0, "status": 503, "degraded": "redis-unavailable"},
]


def test_time_series_per_one_second_bin():
    history = frame_from_rows(ROWS)
    timeline = timeline_of(history["sent_ns"].to_numpy())
    assert timeline is not None and (timeline.bin_s, timeline.n) == (1.0, 3)
    series = time_series(history, timeline)
    assert set(series.by_status) == {"2xx", "other 4xx", "429", "no response", "5xx"}  # classes never seen: left out
    np.testing.assert_array_equal(series.by_status["2xx"], [1, 0, 0])
    np.testing.assert_array_equal(series.by_status["other 4xx"], [1, 0, 0])
    np.testing.assert_array_equal(series.by_status["no response"], [0, 1, 0])
    # the last bin is covered from 2.1 s (t0 + 2) to the last send at 2.7 s: 0.6 s
    np.testing.assert_allclose(series.by_tier["pro"], [0, 2, 1 / 0.6])
    np.testing.assert_allclose(series.degraded, [0, 0, 1 / 0.6])
    # latency over responses (the status-0 row is no latency): bin 0 holds 10 and 20 ms
    np.testing.assert_allclose(series.latency["p50"], [10.0, 5.0, 8.0])
    np.testing.assert_allclose(series.latency["p99"], [20.0, 5.0, 8.0])
    np.testing.assert_allclose(series.latency["p50 from intended"], [12.0, 5.0, 8.0])  # 10 ms + 2 ms lag
    np.testing.assert_allclose(series.lag["max"], [2.0, 50.0, 0.0])


def test_a_last_bin_under_half_covered_shows_no_rate():
    history = frame_from_rows([{"t": t, "consumer": "a", "tier": "free"} for t in (0.0, 1.2)])
    timeline = timeline_of(history["sent_ns"].to_numpy())
    assert timeline is not None
    rates = time_series(history, timeline).by_tier["free"]
    np.testing.assert_allclose(rates, [1.0, np.nan])  # the last bin, 0.2 s covered: neither a dip nor a spike


def test_endpoint_by_tier_table():
    rows = endpoint_table(frame_from_rows(ROWS))
    cells = [(r.endpoint, r.tier) for r in rows]
    assert cells == [
        ("/identify", ALL_TIERS),
        ("/identify", "free"),
        ("/identify", "pro"),
        ("/compare", ALL_TIERS),
        ("/compare", "pro"),
        (ALL, ALL),
    ]
    identify, free, pro, _, compare, total = rows
    assert (identify.requests, free.requests, pro.requests, compare.requests, total.requests) == (4, 2, 2, 1, 5)
    assert total.rate == pytest.approx(5 / 2.6)  # over the history's span, 0.1 s to 2.7 s
    assert (free.statuses["2xx"], free.statuses["other 4xx"], free.errors) == (1, 1, 0)
    assert (pro.statuses["no response"], pro.statuses["5xx"], pro.errors, pro.error_share) == (1, 1, 2, 1.0)
    assert compare.statuses["429"] == 1 and compare.errors == 0
    assert (free.p50_ms, free.p99_ms, free.p99_intended_ms) == (10.0, 20.0, 20.0)
    assert pro.p50_ms == 8.0  # the status-0 row has no latency
    assert total.subtotal and identify.subtotal and not free.subtotal


def test_empty_history_has_no_table():
    assert endpoint_table(frame_from_rows([]).iloc[0:0]) == []
