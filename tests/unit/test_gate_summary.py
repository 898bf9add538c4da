"""The summary table (schema, Parquet round trip, row builders) and threshold evaluation: pass only when
a bound proves it, fail when a bound proves the violation, unknown otherwise (with the samples needed)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quotaquake.gate.expressions import Threshold, parse_thresholds
from quotaquake.gate.summary import (
    SUMMARY_COLUMNS,
    ThresholdResult,
    conform,
    counter_rows,
    evaluate,
    gauge_rows,
    needed_aggregations,
    rate_rows,
    read_summary,
    summary_frame,
    summary_rows,
    trend_rows,
    write_summary,
)

PRO = {"endpoint": "/identify", "tier": "pro"}


def one(thresholds: Mapping[str, Sequence[object]], summary: pd.DataFrame) -> ThresholdResult:
    (result,) = evaluate(parse_thresholds(thresholds), summary)
    return result


def test_trend_rows_from_1_to_20() -> None:
    rows = {r.aggregation: r for r in trend_rows("http_req_duration", PRO, np.arange(1.0, 21.0))}
    med = rows["med"]
    assert (med.value, med.low, med.high, med.n) == (10.0, 6.0, 15.0, 20)  # nearest rank 10; ranks (6, 15)
    assert (rows["min"].value, rows["min"].low, rows["min"].high) == (1.0, 1.0, 1.0)
    assert (rows["max"].value, rows["max"].low, rows["max"].high) == (20.0, 20.0, 20.0)
    assert rows["p(99)"].value == 20.0 and rows["p(99)"].high == math.inf  # 20 samples cannot bound p99
    assert rows["avg"].value == 10.5 and rows["avg"].high == math.inf  # under 30 samples: no t-interval
    assert rows["p(95)"].tags == (("endpoint", "/identify"), ("tier", "pro"))


def test_trend_rows_without_samples_are_nan() -> None:
    (row,) = trend_rows("http_req_duration", {}, np.array([np.nan]), ("p(95)",))
    assert row.n == 0 and math.isnan(row.value) and math.isnan(row.high)


def test_exact_rows_have_equal_bounds() -> None:
    count, rate = counter_rows("http_reqs", {}, 6000, observed=6000, duration_s=60.0)
    assert (count.aggregation, count.value, count.low, count.high) == ("count", 6000.0, 6000.0, 6000.0)
    assert (rate.aggregation, rate.value, rate.low, rate.high) == ("rate", 100.0, 100.0, 100.0)
    (gauge,) = gauge_rows("qq_recovery_s", {"fault": "redis-kill"}, 4.2)
    assert (gauge.value, gauge.low, gauge.high, gauge.n) == (4.2, 4.2, 4.2, 1)


def test_rate_rows_carry_clopper_pearson_bounds() -> None:
    (row,) = rate_rows("http_req_failed", {}, 0, 3000)
    assert row.value == 0.0 and row.low == 0.0
    assert row.high == pytest.approx(1 - 0.05 ** (1 / 3000))


def test_builders_reject_unknown_metrics_and_unsafe_tag_values() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        counter_rows("qq_nonsense", {}, 1, 1)
    with pytest.raises(ValueError, match="unknown tag key"):
        counter_rows("http_reqs", {"region": "eu"}, 1, 1)
    with pytest.raises(ValueError, match="without ','"):
        counter_rows("http_reqs", {"endpoint": "/a,b"}, 1, 1)
    with pytest.raises(ValueError, match="unknown trend aggregation"):
        trend_rows("http_req_duration", {}, np.ones(3), ("p95",))


def test_summary_schema_and_parquet_round_trip(tmp_path: Path) -> None:
    rows = trend_rows("http_req_duration", PRO, np.arange(1.0, 101.0)) + rate_rows("http_req_failed", {}, 2, 100)
    frame = summary_frame(rows)
    assert list(frame.columns) == list(SUMMARY_COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == SUMMARY_COLUMNS
    assert frame.loc[0, "tags"] == "endpoint:/identify,tier:pro"
    write_summary(frame, tmp_path / "summary.parquet")
    back = read_summary(tmp_path / "summary.parquet")
    pd.testing.assert_frame_equal(back, frame)
    assert summary_rows(back) == rows


def test_conform_rejects_missing_columns_and_repeated_rows() -> None:
    frame = summary_frame(gauge_rows("qq_recovery_s", {}, 1.0))
    with pytest.raises(ValueError, match="lacks column"):
        conform(frame.drop(columns="high"))
    with pytest.raises(ValueError, match="repeats row"):
        conform(pd.concat([frame, frame]))


# --- evaluation -----------------------------------------------------------------------------------------


def test_zero_errors_in_3000_requests_pass_and_in_1000_are_unknown() -> None:
    limit = {"http_req_failed": ["rate<0.001"]}
    passed = one(limit, summary_frame(rate_rows("http_req_failed", {}, 0, 3000)))
    assert passed.status == "pass" and passed.needed_n is None
    unknown = one(limit, summary_frame(rate_rows("http_req_failed", {}, 0, 1000)))
    assert unknown.status == "unknown"
    assert unknown.needed_n == 2995
    assert "2995 samples would decide" in unknown.reason
    failed = one(limit, summary_frame(rate_rows("http_req_failed", {}, 5, 1000)))
    assert failed.status == "fail" and "violated" in failed.reason


def test_availability_above_a_floor_uses_the_lower_bound() -> None:
    summary = summary_frame(rate_rows("qq_fault_availability", {"fault": "redis-kill"}, 10_000, 10_000))
    result = one({"qq_fault_availability{fault:redis-kill}": ["rate>0.99"]}, summary)
    assert result.status == "pass"
    assert result.low == pytest.approx(0.05 ** (1 / 10_000))


def test_exact_counts_decide_by_their_value() -> None:
    assert (
        one(
            {"qq_over_admitted_cost": ["count==0"]}, summary_frame(counter_rows("qq_over_admitted_cost", {}, 0, 5000))
        ).status
        == "pass"
    )
    over = one(
        {"qq_over_admitted_cost": ["count==0"]}, summary_frame(counter_rows("qq_over_admitted_cost", {}, 3, 5000))
    )
    assert over.status == "fail" and over.value == 3.0
    throughput = summary_frame(counter_rows("http_reqs", {}, 6000, 6000, duration_s=60.0))
    assert one({"http_reqs": ["rate>=100"]}, throughput).status == "pass"
    assert one({"http_reqs": ["rate>100"]}, throughput).status == "fail"
    assert one({"qq_recovery_s": ["value<10"]}, summary_frame(gauge_rows("qq_recovery_s", {}, 4.2))).status == "pass"


def test_percentile_thresholds_use_order_statistic_bounds() -> None:
    fast = summary_frame(trend_rows("http_req_duration", PRO, np.full(1000, 10.0)))
    key = "http_req_duration{tier:pro,endpoint:/identify}"
    assert one({key: ["p(95)<50"]}, fast).status == "pass"
    slow = summary_frame(
        trend_rows("http_req_duration", PRO, np.concatenate([np.full(900, 10.0), np.full(100, 100.0)]))
    )
    assert one({key: ["p(95)<50"]}, slow).status == "fail"
    assert one({key: ["max<1000"]}, slow).status == "pass"


def test_p99_from_100_fast_samples_needs_at_least_299() -> None:
    summary = summary_frame(trend_rows("qq_limiter_decision_ms", {}, np.full(100, 0.5)))
    result = one({"qq_limiter_decision_ms": [{"threshold": "p(99)<2", "abortOnFail": True}]}, summary)
    assert result.status == "unknown"
    assert result.high == math.inf
    assert result.needed_n == 299
    assert "at least 299 samples" in result.reason


def test_percentile_straddling_the_limit_gives_a_lower_bound_on_the_samples_needed() -> None:
    values = np.concatenate([np.full(985, 10.0), np.full(15, 100.0)])
    summary = summary_frame(trend_rows("http_req_duration", {}, values))
    result = one({"http_req_duration": ["p(99)<50"]}, summary)
    assert result.status == "unknown"
    assert result.needed_n is not None and result.needed_n > 1000


def test_average_thresholds_use_the_t_interval() -> None:
    rng = np.random.default_rng(5)
    summary = summary_frame(trend_rows("http_req_duration", {}, rng.normal(40.0, 5.0, 400)))
    assert one({"http_req_duration": ["avg<45"]}, summary).status == "pass"
    assert one({"http_req_duration": ["avg<35"]}, summary).status == "fail"
    (row,) = (r for r in summary_rows(summary) if r.aggregation == "avg")
    close = one({"http_req_duration": [f"avg<{(row.value + row.high) / 2:.4f}"]}, summary)
    assert close.status == "unknown"
    assert close.needed_n is not None and close.needed_n > 400
    assert "about" in close.reason


def test_missing_rows_and_empty_samples_are_unknown_never_pass() -> None:
    summary = summary_frame(trend_rows("http_req_duration", {"tier": "free"}, np.zeros(0)))
    missing = one({"http_req_duration{tier:pro}": ["p(95)<50"]}, summary)
    assert missing.status == "unknown" and missing.value is None and "not measured" in missing.reason
    empty = one({"http_req_duration{tier:free}": ["p(95)<50"]}, summary)
    assert empty.status == "unknown" and empty.n == 0


def test_equality_on_an_estimate_is_unknown() -> None:
    summary = summary_frame(rate_rows("qq_rejected_ratio", {"tier": "free"}, 50, 1000))
    result = one({"qq_rejected_ratio{tier:free}": ["rate==0.05"]}, summary)
    assert result.status == "unknown" and result.needed_n is None
    assert one({"qq_rejected_ratio{tier:free}": ["rate!=0.5"]}, summary).status == "pass"


@pytest.mark.parametrize(
    ("operator", "limit", "expected"),
    [
        ("<", 11.0, "pass"),
        ("<", 10.0, "unknown"),
        ("<", 5.0, "fail"),
        ("<=", 10.0, "pass"),
        ("<=", 4.0, "fail"),
        (">", 4.0, "pass"),
        (">", 5.0, "unknown"),
        (">", 10.0, "fail"),
        (">=", 5.0, "pass"),
        (">=", 11.0, "fail"),
        ("==", 7.0, "unknown"),
        ("==", 12.0, "fail"),
        ("!=", 12.0, "pass"),
        ("!=", 7.0, "unknown"),
    ],
)
def test_operators_against_bounds_5_to_10(operator: str, limit: float, expected: str) -> None:
    summary = pd.DataFrame(
        [{"metric": "http_req_duration", "tags": "", "aggregation": "p(95)", "value": 7.0, "n": 500}]
    ).assign(low=5.0, high=10.0, confidence=0.95)
    threshold = Threshold("http_req_duration", (), "p(95)", 95.0, operator, limit)
    (result,) = evaluate([threshold], summary)
    assert result.status == expected


def test_needed_aggregations_add_the_percentiles_thresholds_ask_for() -> None:
    thresholds = parse_thresholds(
        {"http_req_duration": ["p(99.9)<500", "p(95)<50"], "qq_generator_lag_ms": ["p(97)<5"]}
    )
    names = needed_aggregations(thresholds, "http_req_duration")
    assert names[-1] == "p(99.9)" and names.count("p(95)") == 1 and "p(97)" not in names
