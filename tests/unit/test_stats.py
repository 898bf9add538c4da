"""quotaquake.stats against answers computed by hand (closed forms for zero failures, binomial tables for
order-statistic ranks, exact Mann–Whitney p-values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quotaquake import stats

# --- rates ----------------------------------------------------------------------------------------------


def test_zero_failures_in_3000_passes_a_0_1_percent_limit_at_95_percent() -> None:
    # one-sided Clopper–Pearson upper bound for 0/n: 1 - 0.05^(1/n) = 0.000998 < 0.001 (the "rule of three")
    judgement = stats.judge_rate(0, 3000, 0.001, 0.95)
    assert judgement.status == "pass"
    assert judgement.high == pytest.approx(1 - 0.05 ** (1 / 3000), rel=1e-9)
    assert judgement.high < 0.001
    assert judgement.low == 0.0
    assert judgement.estimate == 0.0
    assert judgement.needed_n is None


def test_zero_failures_in_1000_is_unknown_and_needs_2995() -> None:
    # smallest n with 1 - 0.05^(1/n) < 0.001: n > ln(0.05) / ln(0.999) = 2994.2
    judgement = stats.judge_rate(0, 1000, 0.001)
    assert judgement.status == "unknown"
    assert judgement.high == pytest.approx(1 - 0.05 ** (1 / 1000), rel=1e-9)
    assert judgement.needed_n == 2995
    assert stats.judge_rate(0, 2995, 0.001).status == "pass"
    assert stats.judge_rate(0, 2994, 0.001).status == "unknown"


def test_no_requests_is_unknown_with_the_fewest_requests_that_could_pass() -> None:
    judgement = stats.judge_rate(0, 0, 0.001)
    assert judgement.status == "unknown"
    assert math.isnan(judgement.estimate)
    assert (judgement.low, judgement.high) == (0.0, 1.0)
    assert judgement.needed_n == 2995


def test_five_failures_in_1000_fail_a_0_1_percent_limit() -> None:
    judgement = stats.judge_rate(5, 1000, 0.001)
    assert judgement.status == "fail"
    assert judgement.low > 0.001
    assert judgement.estimate == 0.005


def test_observed_rate_on_the_limit_never_decides() -> None:
    judgement = stats.judge_rate(1, 1000, 0.001)
    assert judgement.status == "unknown"
    assert judgement.needed_n is None


def test_needed_n_for_a_rate_below_the_limit_is_where_the_projected_bound_decides() -> None:
    judgement = stats.judge_rate(2, 1000, 0.005)  # 0.2 % observed, upper bound 0.63 % > 0.5 %
    assert judgement.status == "unknown"
    needed = judgement.needed_n
    assert needed is not None and needed > 1000
    assert stats.projected_rate_bounds(0.002, needed)[1] < 0.005
    assert stats.projected_rate_bounds(0.002, needed - 1)[1] >= 0.005


def test_needed_n_for_a_rate_above_the_limit_uses_the_lower_bound() -> None:
    judgement = stats.judge_rate(3, 1000, 0.001)  # 0.3 %: lower bound 0.082 % < 0.1 %
    assert judgement.status == "unknown"
    needed = judgement.needed_n
    assert needed is not None
    assert stats.projected_rate_bounds(0.003, needed)[0] > 0.001
    assert stats.projected_rate_bounds(0.003, needed - 1)[0] <= 0.001


def test_wilson_bound_for_zero_failures_is_z_squared_over_n_plus_z_squared() -> None:
    z = 1.6448536269514722  # one-sided 95 %
    low, high = stats.rate_bounds(0, 3000, 0.95, "wilson")
    assert low == pytest.approx(0.0, abs=1e-15)
    assert high == pytest.approx(z * z / (3000 + z * z), rel=1e-9)


def test_clopper_pearson_all_failures_lower_bound_is_the_nth_root_of_alpha() -> None:
    low, high = stats.rate_bounds(20, 20, 0.95)
    assert low == pytest.approx(0.05 ** (1 / 20), rel=1e-9)
    assert high == 1.0


@pytest.mark.parametrize("method", ["clopper-pearson", "wilson"])
@pytest.mark.parametrize(("failures", "n"), [(0, 50), (3, 1000), (17, 400), (400, 400)])
def test_projected_bounds_equal_scipy_bounds_at_whole_counts(method: stats.RateMethod, failures: int, n: int) -> None:
    projected = stats.projected_rate_bounds(failures / n, n, 0.95, method)
    assert projected == pytest.approx(stats.rate_bounds(failures, n, 0.95, method), rel=1e-7, abs=1e-12)


def test_bad_inputs_are_value_errors() -> None:
    with pytest.raises(ValueError, match="failures"):
        stats.rate_bounds(5, 3)
    with pytest.raises(ValueError, match="confidence"):
        stats.rate_bounds(0, 10, confidence=0.4)
    with pytest.raises(ValueError, match="percentile"):
        stats.order_statistic_ranks(10, 100.0)


# --- percentiles ----------------------------------------------------------------------------------------


def test_order_statistic_ranks_for_the_median_of_20() -> None:
    # Binomial(20, 0.5): cdf(5) = 0.0207 <= 0.05 < cdf(6) = 0.0577 -> l = 6;
    # cdf(13) = 0.9423 < 0.95 <= cdf(14) = 0.9793 -> u - 1 = 14, u = 15
    assert stats.order_statistic_ranks(20, 50.0, 0.95) == (6, 15)
    assert stats.percentile_bounds(np.arange(1.0, 21.0), 50.0) == (6.0, 15.0)


def test_order_statistic_ranks_for_tiny_samples() -> None:
    # n = 5: cdf(0) = 1/32 <= 0.05 -> l = 1; cdf(4) = 31/32 >= 0.95 -> u = 5 (the extremes)
    assert stats.order_statistic_ranks(5, 50.0) == (1, 5)
    # n = 4: 1/16 > 0.05 and 15/16 < 0.95: no order statistic bounds the median
    assert stats.order_statistic_ranks(4, 50.0) == (None, None)
    assert stats.percentile_bounds([1.0, 2.0, 3.0, 4.0], 50.0) == (-math.inf, math.inf)
    assert stats.order_statistic_ranks(0, 50.0) == (None, None)


def test_sample_max_bounds_p99_from_299_samples() -> None:
    # 1 - 0.99^n >= 0.95  <=>  n >= ln(0.05) / ln(0.99) = 298.07
    assert stats.min_n_for_upper_bound(99.0) == 299
    assert stats.min_n_for_upper_bound(95.0) == 59
    assert stats.min_n_for_upper_bound(50.0) == 5
    assert stats.order_statistic_ranks(298, 99.0)[1] is None
    assert stats.order_statistic_ranks(299, 99.0)[1] == 299


def test_p99_with_no_slow_request_is_unknown_until_299_samples() -> None:
    too_few = stats.judge_percentile(np.full(298, 10.0), 99.0, 50.0)
    assert too_few.status == "unknown"
    assert too_few.high == math.inf
    assert too_few.needed_n == 299
    enough = stats.judge_percentile(np.full(299, 10.0), 99.0, 50.0)
    assert enough.status == "pass"
    assert enough.high == 10.0


def test_no_samples_need_the_minimum_for_an_upper_bound() -> None:
    judgement = stats.judge_percentile(np.zeros(0), 99.0, 50.0)
    assert judgement.status == "unknown"
    assert judgement.n == 0
    assert judgement.needed_n == 299


def test_a_proven_slow_p95_fails() -> None:
    values = np.concatenate([np.full(900, 10.0), np.full(100, 100.0)])  # 10 % of requests at 100 ms
    judgement = stats.judge_percentile(values, 95.0, 50.0)
    assert judgement.status == "fail"
    assert judgement.estimate == 100.0
    assert judgement.low == 100.0


def test_strictness_decides_values_exactly_on_the_limit() -> None:
    on_limit = np.full(1000, 50.0)
    assert stats.judge_percentile(on_limit, 95.0, 50.0, strict=True).status == "fail"
    assert stats.judge_percentile(on_limit, 95.0, 50.0, strict=False).status == "pass"


def test_unknown_percentile_projects_the_same_fraction_within_the_limit() -> None:
    values = np.concatenate([np.full(985, 10.0), np.full(15, 100.0)])  # 98.5 % within 50 ms, p99 limit
    judgement = stats.judge_percentile(values, 99.0, 50.0)
    assert judgement.status == "unknown"
    needed = judgement.needed_n
    assert needed is not None and needed > 1000
    lower, _ = stats.order_statistic_ranks(needed, 99.0)
    assert lower is not None and lower > math.ceil(0.985 * needed)


def test_nan_values_are_ignored_and_the_estimate_is_the_nearest_rank() -> None:
    values = np.array([np.nan, 5.0, 1.0, 3.0, 2.0, 4.0])
    judgement = stats.judge_percentile(values, 50.0, 10.0)
    assert judgement.n == 5
    assert judgement.estimate == 3.0  # ceil(0.5 x 5) = 3rd smallest
    assert judgement.status == "pass"  # upper bound x_(5) = 5 < 10


def test_mean_bounds_need_30_samples() -> None:
    assert stats.mean_bounds(np.arange(29.0)) == (-math.inf, math.inf)
    low, high = stats.mean_bounds(np.arange(100.0))
    assert low < 49.5 < high
    assert high - 49.5 == pytest.approx(49.5 - low)
    assert stats.mean_bounds(np.full(40, 7.0)) == (7.0, 7.0)


# --- change ---------------------------------------------------------------------------------------------


def test_mann_whitney_exact_p_value_of_one_run_above_five() -> None:
    result = stats.mann_whitney([10.0], [1.0, 2.0, 3.0, 4.0, 5.0], "greater")
    assert result.p_value == pytest.approx(1 / 6)
    assert result.statistic == 5.0
    assert (result.n_x, result.n_y) == (1, 5)


def test_mann_whitney_smallest_p_values_and_needed_counts() -> None:
    assert stats.mann_whitney_min_p(1, 5) == pytest.approx(1 / 6)
    assert stats.mann_whitney_min_p(2, 5) == pytest.approx(1 / 21)
    assert stats.mann_whitney_min_p(0, 5) == 1.0
    assert stats.mann_whitney_needed(1) == 19  # 1 / 20 <= 0.05
    assert stats.mann_whitney_needed(2) == 5  # C(7, 2) = 21
    assert stats.mann_whitney_needed(3) == 3  # C(6, 3) = 20


def test_hodges_lehmann_ratio_and_its_rank_test_bounds() -> None:
    assert stats.hodges_lehmann_ratio([1.0, 2.0, 4.0], [2.0]) == 1.0
    baseline = np.arange(95.0, 115.0)  # 20 runs
    low, high = stats.mann_whitney_ratio_bounds(baseline, [104.5])
    assert low == pytest.approx(104.5 / 114.0)
    assert high == pytest.approx(104.5 / 95.0)
    assert stats.mann_whitney_ratio_bounds(baseline[:5], [104.5]) == (0.0, math.inf)
    with pytest.raises(ValueError, match="> 0"):
        stats.hodges_lehmann_ratio([0.0, 1.0], [1.0])


def test_ratio_bootstrap_is_seeded_and_brackets_a_known_ratio() -> None:
    rng = np.random.default_rng(7)
    baseline = rng.lognormal(3.0, 0.3, 4000)
    current = baseline * 1.25
    first = stats.ratio_bootstrap(baseline, current, 95.0, seed=3)
    again = stats.ratio_bootstrap(baseline, current, 95.0, seed=3)
    assert first == again
    assert first.ratio == pytest.approx(1.25)
    assert first.low < 1.25 < first.high
    assert first.low > 1.1 and first.high < 1.4
    mean = stats.ratio_bootstrap(baseline, current, "mean", seed=3)
    assert mean.ratio == pytest.approx(1.25)


def test_ratio_bootstrap_with_a_zero_baseline_statistic_is_undefined() -> None:
    interval = stats.ratio_bootstrap(np.zeros(50), np.ones(50), 50.0)
    assert math.isnan(interval.ratio) and math.isnan(interval.low) and math.isnan(interval.high)


def test_ratio_bootstrap_subsamples_large_inputs() -> None:
    rng = np.random.default_rng(1)
    interval = stats.ratio_bootstrap(rng.normal(100, 5, 5000), rng.normal(100, 5, 5000), 50.0, max_samples=1000)
    assert (interval.n_baseline, interval.n_current) == (1000, 1000)
    assert interval.low < 1.0 < interval.high
