"""Admitted vs allowed: the token bucket's ceiling (arrival curve) and the fixed window's, per consumer and
per tier, on hand-computed cases; a correct bucket never crosses its ceiling, an over-admitting one does."""

from __future__ import annotations

import numpy as np
import pytest

from quotaquake.report.allowance import admitted_vs_allowed, bucket_ceiling
from quotaquake.runfolder.models import Expectation, FaultKind, FaultWindow, ServiceRole
from tests.support.synthetic import START_S, frame_from_rows, run_data
from tests.unit.test_verify_quota_bucket import POLICY  # small: 6/min (C = 9, r = 0.1/s); open: unlimited

NONE = np.zeros(0)


def test_bucket_ceiling_by_hand():
    # C = 2, r = 1/s; admissions of 1 at 0, 0.1, 0.2 s.
    # U(0.2) = min(A(0-) + 2 + 0.2, A(0.1-) + 2 + 0.1, A(0.2-) + 2) = min(2.2, 3.1, 4) = 2.2 < A(0.2) = 3
    # U(1.2) = min(2 + 1.2, ..., A(1.2-) + 2 = 5) = 3.2
    times, weights = np.array([0.0, 0.1, 0.2]), np.ones(3)
    grid = np.array([0.0, 0.1, 0.2, 1.2])
    np.testing.assert_allclose(bucket_ceiling(times, weights, grid, 2.0, 1.0, NONE), [2.0, 2.1, 2.2, 3.2])
    # a fault ending at 0.5 s refills the bucket: U(1.2) = A(1.2-) + C = 5, no earlier moment counts
    np.testing.assert_allclose(bucket_ceiling(times, weights, grid, 2.0, 1.0, np.array([0.5])), [2.0, 2.1, 2.2, 5.0])


def test_no_admission_leaves_a_full_bucket():
    np.testing.assert_allclose(bucket_ceiling(NONE, NONE, np.array([0.0, 10.0]), 9.0, 0.1, NONE), [9.0, 9.0])


def greedy_bucket(arrivals: np.ndarray, costs: np.ndarray, capacity: float, rate: float) -> np.ndarray:
    """A correct token bucket (full at the start): which arrivals it admits."""
    tokens, last, admitted = capacity, arrivals[0], np.zeros(len(arrivals), dtype=bool)
    for i, (t, cost) in enumerate(zip(arrivals, costs, strict=True)):
        tokens = min(capacity, tokens + rate * (t - last))
        last = t
        if tokens >= cost:
            tokens -= cost
            admitted[i] = True
    return admitted


@pytest.mark.parametrize("seed", range(5))
def test_a_correct_bucket_stays_inside_the_band(seed: int):
    rng = np.random.default_rng(seed)
    arrivals = np.sort(rng.uniform(0, 120, 600))
    costs = rng.choice([1.0, 2.0], 600)
    admitted = greedy_bucket(arrivals, costs, 9.0, 0.5)
    times, weights = arrivals[admitted], costs[admitted]
    grid = np.concatenate((times, np.linspace(0, 130, 300)))
    grid.sort()
    ceiling = bucket_ceiling(times, weights, grid, 9.0, 0.5, NONE)
    total = np.cumsum(weights)
    at = np.searchsorted(times, grid, side="right")
    line = np.where(at > 0, total[np.maximum(at - 1, 0)], 0.0)
    assert np.all(line <= ceiling + 1e-9)  # never above the band
    assert np.all(line >= ceiling - 9.0 - 1e-9)  # never below it: at most one bucket of headroom
    # overloaded (7.5 cost/s asked, 0.5/s refilled): mostly within one request (cost <= 2) of the top edge
    assert np.mean(ceiling - line < 2.0) > 0.8


def test_an_over_admitting_limiter_crosses_the_ceiling():
    times, weights = np.array([0.0, 0.0, 0.0, 0.0]), np.ones(4)  # 4 at once into a bucket of 3
    assert bucket_ceiling(times, weights, np.array([0.0]), 3.0, 1.0, NONE)[0] == 3.0 < 4.0


def rows(consumer: str, tier: str, times: list[float], **fields: object) -> list[dict[str, object]]:
    return [{"t": t, "consumer": consumer, "tier": tier, **fields} for t in times]


def test_per_consumer_and_per_tier_curves():
    history = frame_from_rows(
        rows("s1", "small", [0, 1, 2])
        + rows("s1", "small", [3], status=429)  # rejected: not admitted
        + rows("s2", "small", [5], cost=2.0, endpoint="/compare")
        + rows("s2", "small", [6], degraded="redis-unavailable")  # degraded: judged elsewhere
        + rows("s2", "small", [7], endpoint="/health", cost=0.0)  # cost 0: counts nothing
        + rows("o1", "open", [1, 2])
    )
    run = run_data(history, POLICY)
    grid = START_S + np.array([0.0, 10.0])
    result = admitted_vs_allowed(run, grid, offenders=["s2"], n_consumers=2)
    assert result.unit == "cost units" and result.model == "token-bucket"
    small, open_ = result.tiers
    assert (small.name, small.consumers, open_.name) == ("small", 2, "open")
    np.testing.assert_allclose(small.admitted, [1.0, 5.0])  # s1: 1 then 3; s2: 0 then 2
    # s1: U(10) = min(A(0-) + 9 + 0.1 x 10 = 10, ..., A(10-) + 9 = 12) = 10;
    # s2, its only admission at 5 s: U(10) = min(A(5-) + 9 + 0.1 x (10 - 5), A(10-) + 9) = min(9.5, 11) = 9.5
    np.testing.assert_allclose(small.ceiling, [9.0 + 9.0, 10.0 + 9.5])
    np.testing.assert_allclose(small.floor, small.ceiling - 18.0)
    assert (small.depth, small.rate) == (9.0, pytest.approx(0.1))
    assert open_.ceiling is None and open_.floor is None
    np.testing.assert_allclose(open_.admitted, [0.0, 2.0])
    assert [c.name for c in result.consumers] == ["s2", "s1"]  # the named offender first, then least headroom


def test_rows_inside_a_fault_window_do_not_count_and_the_bucket_refills_after():
    window = FaultWindow(
        name="kill redis",
        kind=FaultKind.OUTAGE,
        service="redis",
        role=ServiceRole.RATE_LIMIT_STORE,
        expect=Expectation.FAIL_OPEN_LOCAL,
        start=START_S + 10,
        end=START_S + 20,
    )
    history = frame_from_rows(rows("s1", "small", [0.0, 15.0, 21.0]))
    run = run_data(history, POLICY, faults=[window])
    result = admitted_vs_allowed(run, START_S + np.array([9.0, 19.0, 30.0]), offenders=[])
    (small,) = result.tiers
    np.testing.assert_allclose(small.admitted, [1.0, 1.0, 2.0])  # the row at 15 s is in the fault window
    # U(9) = min(A(0-) + 9 + 0.9, A(9-) + 9) = 9.9; U(19) = min(10.9, A(19-) + 9 = 10): full again;
    # U(30), the bucket restarted full at 20 s: min(A(20-) + 9 + 1, A(21-) + 9 + 0.9, A(30-) + 9) = 10.9
    np.testing.assert_allclose(small.ceiling, [9.9, 10.0, 10.9])


def test_fixed_window_allows_per_minute_requests_per_utc_minute():
    history = frame_from_rows(rows("s1", "small", [1, 2, 3, 61]))  # START_S is a UTC minute boundary
    run = run_data(history, POLICY, model="fixed-window")
    result = admitted_vs_allowed(run, START_S + np.array([30.0, 90.0]), offenders=[])
    assert result.unit == "requests"
    (small,) = result.tiers
    np.testing.assert_allclose(small.admitted, [3.0, 4.0])
    np.testing.assert_allclose(small.floor, [0.0, 3.0])  # admitted before the minute began
    np.testing.assert_allclose(small.ceiling, [6.0, 9.0])
    assert small.depth == 6.0 and small.rate is None
