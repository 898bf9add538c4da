"""Table-driven tests of the decision arithmetic with an injected clock (as redis-cell tests GCRA).

``CASES`` is shared with tests/integration/test_limiter_lua.py, which replays every row against
``decide.lua`` in a real Redis: the Python model and the Lua script must agree to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from quotaquake.services.limiter.bucket import (
    LocalBuckets,
    Outcome,
    Quota,
    decide,
    refilled,
    reset_seconds,
    retry_after_seconds,
)

# per_minute 6 -> capacity 9 (burst 1.5), refill 0.1 token/s
SMALL = Quota(per_minute=6.0, capacity=9.0, refill_per_second=0.1, per_month=100.0)
MONTHLY = Quota(per_minute=600.0, capacity=900.0, refill_per_second=10.0, per_month=5.0)
MONTH_ONLY = Quota(per_minute=None, capacity=None, refill_per_second=None, per_month=3.0)
MINUTE_ONLY = Quota(per_minute=6.0, capacity=9.0, refill_per_second=0.1, per_month=None)
TIGHT_MONTH = Quota(per_minute=6.0, capacity=9.0, refill_per_second=0.1, per_month=1.0)


@dataclass(frozen=True)
class Step:
    at: float  # seconds since the case started
    cost: float
    allowed: bool
    tokens: float | None  # tokens after the decision
    month_used: float
    bucket_short: bool = False
    month_short: bool = False


CASES: dict[str, tuple[Quota, list[Step]]] = {
    "burst, reject without consuming, refill": (
        SMALL,
        [
            Step(0, 5, True, 4, 5),
            Step(0, 4, True, 0, 9),
            Step(0, 1, False, 0, 9, bucket_short=True),
            Step(5, 1, False, 0.5, 9, bucket_short=True),
            Step(10, 1, True, 0, 10),
            Step(1000, 0, True, 9, 10),  # refill caps at capacity; cost 0 changes nothing
            Step(1000, 9, True, 0, 19),
        ],
    ),
    "monthly cut-off": (
        MONTHLY,
        [
            Step(0, 2, True, 898, 2),
            Step(0, 2, True, 896, 4),
            Step(0, 2, False, 896, 4, month_short=True),
            Step(0, 1, True, 895, 5),
            Step(0, 1, False, 895, 5, month_short=True),
            Step(0, 0, True, 895, 5),  # exempt endpoints pass even over the month
        ],
    ),
    "clock going backwards adds nothing": (
        SMALL,
        [Step(10, 9, True, 0, 9), Step(5, 1, False, 0, 9, bucket_short=True), Step(20, 1, True, 0, 10)],
    ),
    "month only": (
        MONTH_ONLY,
        [
            Step(0, 1, True, None, 1),
            Step(0, 2, True, None, 3),
            Step(0, 1, False, None, 3, month_short=True),
        ],
    ),
    "minute only: month never counted": (
        MINUTE_ONLY,
        [Step(0, 9, True, 0, 0), Step(0, 1, False, 0, 0, bucket_short=True), Step(10, 1, True, 0, 0)],
    ),
    "both limits short": (
        TIGHT_MONTH,
        [Step(0, 1, True, 8, 1), Step(0, 9, False, 8, 1, bucket_short=True, month_short=True)],
    ),
    "cost above capacity never fits": (
        SMALL,
        [Step(0, 10, False, 9, 0, bucket_short=True), Step(500, 10, False, 9, 0, bucket_short=True)],
    ),
}


def expected_outcome(step: Step) -> Outcome:
    return Outcome(step.allowed, step.tokens, step.month_used, step.bucket_short, step.month_short)


def assert_matches(outcome: Outcome, step: Step, where: str) -> None:
    assert outcome.allowed == step.allowed, where
    assert (outcome.bucket_short, outcome.month_short) == (step.bucket_short, step.month_short), where
    if step.tokens is None:
        assert outcome.tokens is None, where
    else:
        assert outcome.tokens == pytest.approx(step.tokens, abs=1e-9), where
    assert outcome.month_used == pytest.approx(step.month_used, abs=1e-9), where


@pytest.mark.parametrize("name", list(CASES))
def test_local_buckets_follow_the_table(name: str) -> None:
    quota, steps = CASES[name]
    buckets = LocalBuckets()
    base = 1_800_000_000.0
    for index, step in enumerate(steps):
        outcome = buckets.decide("consumer", quota, step.cost, base + step.at)
        assert_matches(outcome, step, f"{name} step {index}")


def test_missing_state_is_a_full_bucket() -> None:
    assert refilled(SMALL, None, None, 123.0) == 9.0
    assert refilled(MONTH_ONLY, 3.0, 0.0, 10.0) is None


def test_refill_is_linear_and_capped() -> None:
    assert refilled(SMALL, 1.0, 100.0, 130.0) == pytest.approx(4.0)
    assert refilled(SMALL, 1.0, 100.0, 10_000.0) == 9.0


def test_decide_rejects_without_consuming() -> None:
    outcome = decide(SMALL, 2.0, 1.5, 7.0)
    assert outcome == Outcome(False, 1.5, 7.0, bucket_short=True)


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [(9.0, 0), (8.0, 10), (8.95, 1), (0.0, 90), (None, 0)],
)
def test_reset_seconds_rounds_up_to_full(tokens: float | None, expected: int) -> None:
    assert reset_seconds(SMALL, tokens) == expected


@pytest.mark.parametrize(
    ("outcome", "cost", "to_month_end", "expected"),
    [
        (Outcome(False, 0.0, 9, bucket_short=True), 1.0, 1e6, 10),  # 1 token at 0.1/s
        (Outcome(False, 0.95, 9, bucket_short=True), 1.0, 1e6, 1),  # 0.5 s rounds up to 1
        (Outcome(False, 0.0, 9, bucket_short=True), 2.0, 1e6, 20),
        (Outcome(False, 9.0, 0, bucket_short=True), 10.0, 1e6, 1),  # cost > capacity: never; full bucket now
        (Outcome(False, 5.0, 100, month_short=True), 1.0, 3600.2, 3601),
        (Outcome(False, 0.0, 100, bucket_short=True, month_short=True), 1.0, 5.0, 10),
    ],
)
def test_retry_after_seconds(outcome: Outcome, cost: float, to_month_end: float, expected: int) -> None:
    assert retry_after_seconds(SMALL, outcome, cost, to_month_end) == expected


def test_local_month_floor_keeps_an_exhausted_month_exhausted() -> None:
    buckets = LocalBuckets()
    outcome = buckets.decide("c", MONTHLY, 1.0, 0.0, month_floor=5.0)
    assert not outcome.allowed and outcome.month_short


def test_local_buckets_are_per_consumer_and_clearable() -> None:
    buckets = LocalBuckets()
    assert buckets.decide("a", SMALL, 9.0, 0.0).allowed
    assert buckets.decide("b", SMALL, 9.0, 0.0).allowed
    assert not buckets.decide("a", SMALL, 1.0, 0.0).allowed
    buckets.clear()
    assert len(buckets) == 0
    assert buckets.decide("a", SMALL, 9.0, 0.0).allowed
