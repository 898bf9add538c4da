"""Latency model and error injection of the stub API: pure functions, seeded, no server."""

from __future__ import annotations

import math
import statistics

import pytest

from quotaquake.services.stub_api.faults import ErrorInjector, LatencyModel, lognormal_delays_ms

SAMPLES = 20_001


def test_median_of_seeded_sample_is_within_2_percent_of_configured_median() -> None:
    # Standard error of a sample median of a lognormal(sigma=0.5) at n=20001 is ~0.45 %: 2 % is ~4.5 SE.
    delays = lognormal_delays_ms(median_ms=2.0, sigma=0.5, seed=7, count=SAMPLES)
    assert statistics.median(delays) == pytest.approx(2.0, rel=0.02)


def test_p99_follows_sigma() -> None:
    delays = sorted(lognormal_delays_ms(median_ms=2.0, sigma=0.5, seed=11, count=SAMPLES))
    expected_p99 = 2.0 * math.exp(2.3263 * 0.5)  # ~6.39 ms
    assert delays[int(0.99 * SAMPLES)] == pytest.approx(expected_p99, rel=0.08)


def test_same_seed_same_delays_other_seed_other_delays() -> None:
    first = lognormal_delays_ms(2.0, 0.5, seed=1, count=50)
    assert first == lognormal_delays_ms(2.0, 0.5, seed=1, count=50)
    assert first != lognormal_delays_ms(2.0, 0.5, seed=2, count=50)


def test_zero_sigma_is_constant_and_zero_median_never_delays() -> None:
    assert set(lognormal_delays_ms(3.0, 0.0, seed=0, count=10)) == {3.0}
    assert set(lognormal_delays_ms(0.0, 0.5, seed=0, count=10)) == {0.0}
    assert not LatencyModel(0.0, 0.5).enabled


def test_delays_are_seconds() -> None:
    assert LatencyModel(median_ms=250.0, sigma=0.0).next_delay_s() == 0.25


@pytest.mark.parametrize(("median", "sigma"), [(-1.0, 0.5), (2.0, -0.1)])
def test_negative_latency_parameters_are_rejected(median: float, sigma: float) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        LatencyModel(median, sigma)


def test_error_rate_is_respected_within_tolerance() -> None:
    # 10 000 Bernoulli(0.25) draws: standard error 0.0043; tolerance 0.02 is ~4.6 SE (and the seed is fixed).
    injector = ErrorInjector(rate=0.25, seed=3)
    failures = sum(injector.should_fail() for _ in range(10_000))
    assert failures / 10_000 == pytest.approx(0.25, abs=0.02)


def test_error_rate_zero_never_and_one_always_fails() -> None:
    never, always = ErrorInjector(rate=0.0, seed=1), ErrorInjector(rate=1.0, seed=1)
    assert not any(never.should_fail() for _ in range(1000))
    assert all(always.should_fail() for _ in range(1000))


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_error_rate_outside_unit_interval_is_rejected(rate: float) -> None:
    with pytest.raises(ValueError, match=r"error rate must be in \[0, 1\]"):
        ErrorInjector(rate=rate)
