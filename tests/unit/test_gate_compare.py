"""Comparing the latest run(s) against a baseline window: too few runs is unknown (with the counts that
would decide), only significant regressions beyond the floor fail, unchanged must be proven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from quotaquake.gate.compare import (
    STEP_SUMMARY_LIMIT_BYTES,
    ComparePolicy,
    Comparison,
    classify,
    compare_latest,
    compare_runs,
    compare_samples,
    compare_values,
    markdown_summary,
)
from quotaquake.gate.expressions import Worse

START = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
NOISY_NIGHTS = np.arange(95.0, 115.0)  # 20 baseline nights of a p95 between 95 and 114 ms
P95 = ("http_req_duration", (("tier", "pro"),), "p(95)")


def runs(
    values: list[float] | np.ndarray,
    first_night: int = 0,
    metric: str = "http_req_duration",
    aggregation: str = "p(95)",
    tags: str = "tier:pro",
) -> pd.DataFrame:
    """A store-like frame with one row per run (identity columns as far as compare needs them)."""
    return pd.DataFrame(
        {
            "run_id": [f"night-{first_night + i:03d}" for i in range(len(values))],
            "time": [START + timedelta(days=first_night + i) for i in range(len(values))],
            "metric": metric,
            "tags": tags,
            "aggregation": aggregation,
            "value": np.asarray(values, dtype=float),
            "n": 1000,
            "low": np.nan,
            "high": np.nan,
            "confidence": 0.95,
        }
    )


def compare_p95(
    baseline: list[float] | np.ndarray, current: list[float], policy: ComparePolicy | None = None
) -> Comparison:
    return compare_values(*P95, baseline, current, policy)


def test_five_nights_and_one_current_run_are_too_few_and_say_what_would_do() -> None:
    result = compare_p95([100.0, 101.0, 99.0, 102.0, 98.0], [150.0])
    assert result.change == "unknown" and result.status == "unknown"
    assert (result.needed_baseline, result.needed_current) == (20, 2)  # 1/C(20,1) = 0.05 is not < 0.05; 1/21 is
    assert "too few" in result.reason
    assert result.baseline_value == 100.0 and result.current_value == 150.0


def test_below_the_minimum_baseline_is_unknown_even_if_a_test_were_possible() -> None:
    result = compare_p95([100.0, 101.0, 99.0], [150.0, 151.0, 152.0, 153.0])
    assert result.change == "unknown"
    assert result.needed_baseline == 5


def test_a_significant_regression_beyond_the_floor_fails() -> None:
    result = compare_p95(NOISY_NIGHTS, [130.0])
    assert result.change == "regressed" and result.status == "fail"
    assert result.p_value == pytest.approx(1 / 21)
    assert result.ratio == pytest.approx(130.0 / 104.5, rel=0.01)
    assert result.low == pytest.approx(130.0 / 114.0) and result.high == pytest.approx(130.0 / 95.0)
    assert result.method == "mann-whitney" and result.min_effect == 0.10


def test_within_the_floor_is_unchanged_only_when_proven() -> None:
    unchanged = compare_p95(NOISY_NIGHTS, [104.0])  # below every night x 1.1 (>= 104.5)
    assert unchanged.change == "unchanged" and unchanged.status == "pass"
    inconclusive = compare_p95(NOISY_NIGHTS, [112.0])  # neither significantly worse nor proven within 10 %
    assert inconclusive.change == "unknown"
    assert "cannot tell" in inconclusive.reason


def test_a_large_significant_improvement() -> None:
    result = compare_p95(NOISY_NIGHTS, [60.0, 62.0])
    assert result.change == "improved" and result.status == "pass"


def test_the_floor_can_be_set_per_metric() -> None:
    policy = ComparePolicy(min_effect_by_metric={"http_req_duration": 0.5})
    result = compare_p95(NOISY_NIGHTS, [130.0], policy)
    assert result.change == "unchanged"  # +24 % is significant but proven below +50 %
    assert result.min_effect == 0.5


def test_lower_is_worse_for_throughput() -> None:
    nights = NOISY_NIGHTS * 10  # requests per second
    drop = compare_values("http_reqs", (), "rate", nights, [800.0])
    assert drop.change == "regressed"
    rise = compare_values("http_reqs", (), "rate", nights, [1300.0])
    assert rise.change == "improved"


def test_zero_everywhere_is_unchanged_and_a_zero_baseline_is_not_a_ratio() -> None:
    zeros = np.zeros(20)
    same = compare_values("qq_over_admitted_cost", (), "count", zeros, [0.0])
    assert same.change == "unchanged" and same.ratio == 1.0
    rise = compare_values("qq_over_admitted_cost", (), "count", zeros, [3.0])
    assert rise.change == "unknown" and "absolute threshold" in rise.reason


@pytest.mark.parametrize(
    ("worse_significant", "better_significant", "non_inferior", "ratio", "worse", "expected"),
    [
        (True, False, False, 1.2, "higher", "regressed"),
        (True, False, False, 1.05, "higher", "unknown"),  # significant but maybe below the floor
        (True, False, True, 1.05, "higher", "unchanged"),  # significant and proven below the floor
        (False, True, True, 0.8, "higher", "improved"),
        (False, False, False, 1.2, "higher", "unknown"),  # big but not significant: noise
        (True, False, False, 0.8, "lower", "regressed"),
        (False, True, True, 1.2, "lower", "improved"),
    ],
)
def test_classify(
    worse_significant: bool, better_significant: bool, non_inferior: bool, ratio: float, worse: Worse, expected: str
) -> None:
    assert classify(worse_significant, better_significant, non_inferior, ratio, 0.1, worse) == expected


def test_compare_runs_matches_keys_and_reports_missing_sides() -> None:
    baseline = pd.concat([runs(NOISY_NIGHTS), runs(NOISY_NIGHTS, aggregation="med")])
    current = pd.concat([runs([130.0], first_night=20), runs([1.0], first_night=20, metric="qq_generator_lag_ms")])
    results = {(r.metric, r.aggregation): r for r in compare_runs(baseline, current)}
    assert results["http_req_duration", "p(95)"].change == "regressed"
    missing_current = results["http_req_duration", "med"]
    assert missing_current.change == "unknown" and missing_current.n_current == 0
    missing_baseline = results["qq_generator_lag_ms", "p(95)"]
    assert missing_baseline.change == "unknown" and missing_baseline.n_baseline == 0
    assert results["http_req_duration", "p(95)"].tags == (("tier", "pro"),)


def test_compare_latest_splits_the_newest_runs_from_a_window() -> None:
    store = runs([*NOISY_NIGHTS, 130.0, 131.0])
    (two_newest,) = compare_latest(store, k=2)
    assert two_newest.change == "regressed"
    assert (two_newest.n_baseline, two_newest.n_current) == (20, 2)
    (windowed,) = compare_latest(store, k=2, window=5)
    assert windowed.n_baseline == 5 and windowed.change == "regressed"  # 1/C(7,2) < 0.05
    (one_newest,) = compare_latest(store, k=1, window=5)
    assert one_newest.change == "unknown" and one_newest.needed_baseline == 20


def test_a_run_with_two_rows_for_one_key_is_an_error() -> None:
    doubled = pd.concat([runs([1.0]), runs([2.0])])
    with pytest.raises(ValueError, match="two rows"):
        compare_runs(doubled, doubled)


# --- per-request samples --------------------------------------------------------------------------------


def test_samples_bootstrap_detects_a_20_percent_slowdown_reproducibly() -> None:
    rng = np.random.default_rng(11)
    baseline = rng.lognormal(3.0, 0.4, 5000)
    current = rng.lognormal(3.0, 0.4, 5000) * 1.2
    result = compare_samples("http_req_duration", {"tier": "pro"}, "p(95)", baseline, current)
    assert result.change == "regressed" and result.method == "bootstrap"
    assert result.low is not None and result.low > 1.0
    assert compare_samples("http_req_duration", {"tier": "pro"}, "p(95)", baseline, current) == result


def test_samples_from_the_same_distribution_are_unchanged() -> None:
    rng = np.random.default_rng(12)
    result = compare_samples(
        "http_req_duration", {}, "med", rng.lognormal(3.0, 0.4, 5000), rng.lognormal(3.0, 0.4, 5000)
    )
    assert result.change == "unchanged"
    assert result.high is not None and result.high < 1.1


def test_too_few_samples_for_p99_say_how_many() -> None:
    result = compare_samples("http_req_duration", {}, "p(99)", np.ones(1000), np.ones(100))
    assert result.change == "unknown"
    assert (result.needed_baseline, result.needed_current) == (299, 299)


def test_samples_reject_aggregations_without_a_statistic() -> None:
    with pytest.raises(ValueError, match="avg, med or p"):
        compare_samples("http_req_duration", {}, "max", np.ones(500), np.ones(500))


# --- markdown -------------------------------------------------------------------------------------------


def test_markdown_summary_lists_the_worst_first_with_icons() -> None:
    results = [
        compare_p95(NOISY_NIGHTS, [104.0]),
        compare_p95(NOISY_NIGHTS, [130.0]),
        compare_p95([100.0] * 5, [150.0]),
    ]
    text = markdown_summary(results)
    lines = text.splitlines()
    assert lines[0] == "### quotaquake performance gate"
    assert "❌ 1 regressed · ❔ 1 unknown · ✅ 0 improved · ✅ 1 unchanged" in text
    table = [line for line in lines if line.startswith("| ") and line[2] in "❌❔✅"]
    assert [row[2] for row in table] == ["❌", "❔", "✅"]
    assert "tier:pro" in table[0] and "+24." in table[0] and "20 / 1" in table[0]


def test_markdown_summary_escapes_cells_and_fits_in_one_mebibyte() -> None:
    base = compare_p95(NOISY_NIGHTS, [130.0])
    long_reason = "a|b " + "x" * 2000
    results = [
        Comparison(**{**base.__dict__, "reason": long_reason, "aggregation": f"p({i % 100})"}) for i in range(1000)
    ]
    text = markdown_summary(results)
    assert len(text.encode()) <= STEP_SUMMARY_LIMIT_BYTES
    assert "a\\|b" in text
    assert "more row(s) not shown" in text


def test_nineteen_nights_and_one_current_run_cannot_reach_p_below_five_percent() -> None:
    result = compare_p95(NOISY_NIGHTS[:19], [500.0])  # beyond every night, yet p = 1/20 = 0.05
    assert result.change == "unknown" and result.needed_baseline == 20
    assert compare_p95(NOISY_NIGHTS, [500.0]).change == "regressed"  # 20 nights: p = 1/21


def test_benjamini_hochberg_across_keys_needs_a_broad_or_a_strong_regression() -> None:
    baseline = pd.concat([runs(NOISY_NIGHTS[:10], aggregation=f"p({q})") for q in (50, 90, 95, 99)])
    one_key = pd.concat(
        [runs([130.0, 131.0], first_night=10, aggregation="p(50)")]
        + [runs([99.0, 100.5], first_night=10, aggregation=f"p({q})") for q in (90, 95, 99)]
    )
    raw = {r.aggregation: r for r in compare_runs(baseline, one_key)}
    assert raw["p(50)"].change == "regressed" and raw["p(50)"].p_value == pytest.approx(1 / 66)
    family = {r.aggregation: r for r in compare_runs(baseline, one_key, ComparePolicy(fdr=True))}
    assert family["p(50)"].change == "unknown"  # 4 x 1/66 > 0.05: one key of four is not enough
    assert family["p(50)"].p_adjusted == pytest.approx(4 / 66)
    broad = pd.concat([runs([130.0, 131.0], first_night=10, aggregation=f"p({q})") for q in (50, 90, 95, 99)])
    assert {r.change for r in compare_runs(baseline, broad, ComparePolicy(fdr=True))} == {"regressed"}
