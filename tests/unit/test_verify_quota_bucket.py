"""Token-bucket quota accuracy on tiny histories with hand-computed answers.

Tier ``small``: per_minute 6 -> refill r = 0.1 token/s, capacity C = 1.5 x 6 = 9; per_month 100.
Latency 1 ms everywhere unless stated, so w = 0.001 s and the over-admission capacity C' = 9.0001.
"""

from __future__ import annotations

import pytest

from quotaquake.policy import Policy
from quotaquake.runfolder.models import FaultWindow
from quotaquake.verify.checks.quota_token_bucket import check_quota_token_bucket
from quotaquake.verify.thresholds import Thresholds
from tests.support.synthetic import START_S, frame_from_rows, run_data

POLICY = Policy.model_validate(
    {
        "bucket": {"burst_factor": 1.5},
        "tiers": {"small": {"per_minute": 6, "per_month": 100}, "open": {}},
        "endpoints": {"/identify": {"cost": 1.0}, "/compare": {"cost": 2.0}, "/health": {"cost": 0.0}},
        "anonymous": {"per_minute": 6},
    }
)


def burst(n: int, start: float = 0.0, step: float = 0.1, **fields: object) -> list[dict[str, object]]:
    base: dict[str, object] = {"consumer": "c1", "tier": "small"}
    return [{**base, **fields, "t": start + i * step} for i in range(n)]


def judge(rows: list[dict[str, object]], **kwargs: object):
    return check_quota_token_bucket(run_data(frame_from_rows(rows), POLICY, **kwargs), Thresholds())  # type: ignore[arg-type]


def consumer_row(verdict, name: str = "c1") -> dict[str, object]:
    return next(r for r in verdict.evidence["consumers"] if r["consumer"] == name)


def test_full_bucket_admitted_passes():
    verdict = judge(burst(9))
    assert verdict.status == "pass"
    assert consumer_row(verdict)["admitted_cost"] == 9.0


def test_tenth_request_in_one_second_is_over_admitted():
    # before the 10th: 9.0001 - 9 + 0.1 x 0.9 = 0.0901 < 1
    verdict = judge(burst(10))
    assert verdict.status == "fail"
    assert consumer_row(verdict)["over_admitted"] == 1
    assert verdict.evidence["offenders"] == ["c1"]
    assert verdict.evidence["over_admitted_rows"][0]["row"] == 9


def test_cost_counts():
    # five /compare (cost 2) in 0.4 s: before the 5th 9.0001 - 8 + 0.04 = 1.04 < 2
    verdict = judge(burst(5, endpoint="/compare", cost=2.0))
    assert consumer_row(verdict)["over_admitted_cost"] == 2.0


def test_zero_cost_requests_are_exempt():
    assert judge(burst(9) + burst(20, start=1.0, endpoint="/health", cost=0.0)).status == "pass"


def test_send_to_decision_delay_widens_the_bucket():
    # one response took 10 s: w = 10, C' = 9 + 0.1 x 10 = 10, so the 10th fits (10 - 9 + 0.09 >= 1)
    rows = burst(10)
    rows[0]["latency_ms"] = 10_000.0
    verdict = judge(rows)
    assert verdict.status == "pass"
    assert consumer_row(verdict)["w_ms"] == 10_000.0


def test_429_with_refilled_token_is_false_rejection():
    # after 9 at 0..0.8 (0.08 refilled meanwhile), at t = 11: 0.08 + 0.1 x 10.2 - r x w = 1.0999 >= 1
    verdict = judge([*burst(9), {"t": 11.0, "consumer": "c1", "tier": "small", "status": 429}])
    assert verdict.status == "fail"
    assert consumer_row(verdict)["false_rejections"] == 1


def test_429_without_a_whole_token_is_correct():
    # at t = 10: 0.08 + 0.92 - r x w = 0.9999 tokens
    assert judge([*burst(9), {"t": 10.0, "consumer": "c1", "tier": "small", "status": 429}]).status == "pass"


def test_requests_sent_just_after_a_429_may_have_taken_its_token():
    rows = [
        *burst(9),
        {"t": 11.0, "consumer": "c1", "tier": "small", "status": 429},
        {"t": 11.0005, "consumer": "c1", "tier": "small"},  # within w = 1 ms after: may be decided first
    ]
    assert judge(rows).status == "pass"


def test_indeterminate_outcomes_may_have_been_admitted():
    # nine timeouts then a 429 at 10 s: if the timeouts were admitted, 0.08 + 0.92 - r x w < 1 token is left
    rows = [*burst(9, status=0), {"t": 10.0, "consumer": "c1", "tier": "small", "status": 429}]
    assert judge(rows).status == "pass"
    # ... whereas after nine 429s the bucket is full: that 429 is false
    rows = [*burst(9, status=429), {"t": 10.0, "consumer": "c1", "tier": "small", "status": 429}]
    assert judge(rows).status == "fail"


def test_indeterminate_outcomes_are_not_counted_as_admitted():
    assert judge(burst(9, status=503) + burst(9, start=1.0)).status == "pass"


def test_unlimited_tier_is_never_rejected():
    open_rows = [{"t": i * 0.01, "consumer": "e1", "tier": "open"} for i in range(100)]
    assert judge(open_rows).status == "pass"
    verdict = judge([*open_rows, {"t": 2.0, "consumer": "e1", "tier": "open", "status": 429}])
    assert verdict.status == "fail"
    assert verdict.evidence["offenders"] == ["e1"]


def test_anonymous_ip_is_judged_with_the_anonymous_limits():
    rows = [{"t": i * 0.1, "consumer": "anon:10.1.2.3", "tier": "anonymous"} for i in range(10)]
    verdict = judge(rows)
    assert verdict.status == "fail"
    assert verdict.evidence["offenders"] == ["anon:10.1.2.3"]


def test_monthly_quota_with_seeded_usage():
    spaced = burst(6, step=20.0)  # minute bucket never empty
    verdict = judge(spaced, monthly_seeds={"c1": 95.0})
    assert verdict.status == "fail"
    assert verdict.evidence["month_offenders"] == ["c1"]
    within = [*burst(5, step=20.0), {"t": 120.0, "consumer": "c1", "tier": "small", "status": 429}]
    assert judge(within, monthly_seeds={"c1": 95.0}).status == "pass"


def test_429_with_month_room_and_minute_room_is_false():
    rows = [*burst(5, step=20.0), {"t": 120.0, "consumer": "c1", "tier": "small", "status": 429}]
    assert judge(rows, monthly_seeds={"c1": 90.0}).status == "fail"


def test_degraded_and_in_fault_rows_are_excluded():
    rows = burst(10)
    rows[9]["degraded"] = "redis-unavailable"
    assert judge(rows).status == "pass"
    fault = FaultWindow(
        name="kill redis",
        kind="outage",
        service="redis",
        role="rate-limit-store",
        expect="fail-open-local",
        start=START_S + 0.85,
        end=START_S + 0.95,
    )
    assert judge(burst(10), faults=[fault]).status == "pass"


def test_bucket_refills_after_a_fault_rollback():
    rows = burst(9) + burst(9, start=3.0)
    assert judge(rows).status == "fail"
    fault = FaultWindow(
        name="kill redis",
        kind="outage",
        service="redis",
        role="rate-limit-store",
        expect="fail-open-local",
        start=START_S + 1.0,
        end=START_S + 2.0,
    )
    assert judge(rows, faults=[fault]).status == "pass"


def test_no_data_is_unknown():
    assert judge([]).status == "unknown"
    assert judge([{"t": 0.0, "consumer": "invalid", "tier": "invalid", "status": 401}]).status == "unknown"


def test_unknown_tier_is_unknown():
    verdict = judge([{"t": 0.0, "consumer": "x", "tier": "gold"}])
    assert verdict.status == "unknown"
    assert verdict.evidence["unknown_tiers"] == {"x": "gold"}


@pytest.mark.parametrize("allowed, expected", [(0.0, "fail"), (1.0, "pass")])
def test_allowance_threshold(allowed: float, expected: str):
    thresholds = Thresholds.model_validate({"quota": {"allowed_over_admitted_cost": allowed}})
    verdict = check_quota_token_bucket(run_data(frame_from_rows(burst(10)), POLICY), thresholds)
    assert verdict.status == expected


def test_routes_that_bypass_the_limiter_are_not_counted():
    assert judge(burst(9) + burst(30, start=1.0, endpoint="/calibrate")).status == "pass"
