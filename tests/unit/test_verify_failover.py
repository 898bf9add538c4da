"""Failover verdicts on tiny histories with hand-computed answers.

Tier ``small`` (as in test_verify_quota_bucket): capacity C = 9, refill r = 0.1 token/s, latency 1 ms.
The primary dies at 10 s, the Sentinels promote its replica at 12.3 s (timeout 1 + 3 s), the window runs
from 9.7 s (the action starts sampling) to 20 s; the policy's retry is 1 s and its Redis timeout 50 ms,
so the limiter must follow within 1 + 2 x 0.05 + 0.25 = 1.35 s of the promotion. Before the fault c1 spends
its whole bucket: 9 shared admissions at 1.0 .. 1.8 s (the level is then 0.08, refilling 0.1 a second).
"""

from __future__ import annotations

from typing import Any

import pytest

from quotaquake.policy import Policy
from quotaquake.runfolder.models import Expectation, FaultKind, FaultWindow, ServiceRole
from quotaquake.verify.checks.failover import check_failover
from quotaquake.verify.checks.quota_token_bucket import check_quota_token_bucket
from quotaquake.verify.thresholds import Thresholds
from tests.support.synthetic import START_S, frame_from_rows, run_data

POLICY = Policy.model_validate(
    {
        "bucket": {"burst_factor": 1.5},
        "tiers": {"small": {"per_minute": 6, "per_month": 100}},
        "endpoints": {"/identify": {"cost": 1.0}},
        "degradation": {"on_redis_unavailable": "fail-open-local", "redis_timeout_ms": 50, "redis_retry_seconds": 1},
    }
)
DEGRADED = "redis-unavailable"


def row(t: float, status: int = 200, **fields: Any) -> dict[str, Any]:
    return {"t": t, "consumer": "c1", "tier": "small", "status": status, "rl_limit": 6.0, **fields}


def spent_bucket() -> list[dict[str, Any]]:
    return [row(1.0 + 0.1 * i) for i in range(9)]


def outage() -> list[dict[str, Any]]:
    """Degraded (local) admissions between the fault and the promotion."""
    return [row(10.5, degraded=DEGRADED), row(11.0, degraded=DEGRADED)]


def window(**details: Any) -> FaultWindow:
    recorded = {
        "primary": "redis-1", "promoted": "redis-2", "fault_at": START_S + 10.0, "promoted_at": START_S + 12.3,
        "down_after_ms": 1000, "failover_timeout_ms": 3000, "replicated_until": START_S + 9.99,
        "primary_offset": 500, "replicated_offset": 500,
    }  # fmt: skip
    recorded.update(details)
    return FaultWindow(name="kill-redis-primary", kind=FaultKind.FAILOVER, service="redis-1",
                       role=ServiceRole.RATE_LIMIT_STORE, expect=Expectation.FAIL_OPEN_LOCAL,
                       start=START_S + 9.7, end=START_S + 20.0, details=recorded or None)  # fmt: skip


def data(rows: list[dict[str, Any]], fault: FaultWindow | None = None):  # type: ignore[no-untyped-def]
    return run_data(frame_from_rows(rows), POLICY, faults=[fault or window()], initial_state="reset")


def correct_history() -> list[dict[str, Any]]:
    # after the promotion: one admission at 12.5 (level 0.08 + 1.07 = 1.15), then 429s (0.2, 1.2 - 1 ... < 1)
    return [*spent_bucket(), *outage(), row(12.5), row(13.0, 429), row(14.0, 429), row(15.0, 429)]


def test_a_followed_failover_passes_with_its_times() -> None:
    verdict = check_failover(data(correct_history()), Thresholds())
    assert verdict.status == "pass", verdict.summary
    (judged,) = verdict.evidence["windows"]
    assert (judged["promotion_s"], judged["recovery_s"], judged["since_fault_s"]) == (2.3, 0.2, 2.5)
    assert judged["availability"] == 1.0 and judged["outage_degraded_admissions"] == 2
    quota = verdict.evidence["quota"]
    assert (quota["bound_cost"], quota["measured_over_admitted_cost"], quota["double_spends"]) == (0.0, 0.0, 0)


def test_the_quota_check_carries_the_state_across_a_bounded_failover() -> None:
    # 429s after the window (20.5 s, 20.8 s: the bucket holds 0.95, 0.98) are judged right when the state is
    # carried across; with no bound they are unjudged: from a full bucket after an unknown-state fault
    # they look false. Inside the window they are judged only when bridged (else left to degradation).
    rows = [*correct_history(), row(20.5, 429), row(20.8, 429)]
    bridged = check_quota_token_bucket(data(rows), Thresholds())
    assert bridged.status == "pass", bridged.summary
    assert bridged.evidence["bridged_faults"][0]["fault"] == "kill-redis-primary"
    assert bridged.evidence["consumers"][0]["judged_429"] == 5
    unbounded = check_quota_token_bucket(data(rows, window(replicated_until=None)), Thresholds())
    assert unbounded.status == "unknown" and unbounded.evidence["unjudged_429"] == 2


def test_a_rolled_back_state_over_admits_beyond_what_replication_could_lose() -> None:
    # the new primary admits 9 more at 12.5 .. 13.3: only the first fits (10 <= 9 + 0.1 x 11.5); nothing
    # was admitted between 9.99 s and the fault, so the bound is 0 and the other 8 are beyond it
    rows = [*spent_bucket(), *outage(), *(row(12.5 + 0.1 * i) for i in range(9)), row(14.0, 429)]
    verdict = check_failover(data(rows), Thresholds())
    assert verdict.status == "fail"
    quota = verdict.evidence["quota"]
    assert (quota["bound_cost"], quota["measured_over_admitted_cost"], quota["over_admitted_beyond_bound_cost"]) == (
        0.0, 8.0, 8.0,
    )  # fmt: skip
    assert check_quota_token_bucket(data(rows), Thresholds()).status == "fail"


def test_what_replication_may_have_lost_bounds_the_over_admission() -> None:
    # the replica had only what was acknowledged before 1.45 s: the admissions at 1.5 .. 1.8 may be lost
    # (bound 4); the new primary admits 5 at 12.5 .. 12.9: 4 over a no-loss bucket, none beyond the bound
    rows = [*spent_bucket(), *outage(), *(row(12.5 + 0.1 * i) for i in range(5)), row(14.0, 429)]
    verdict = check_failover(data(rows, window(replicated_until=START_S + 1.45)), Thresholds())
    assert verdict.status == "pass", verdict.summary
    quota = verdict.evidence["quota"]
    assert (quota["bound_cost"], quota["measured_over_admitted_cost"], quota["over_admitted_beyond_bound_cost"]) == (
        4.0, 4.0, 0.0,
    )  # fmt: skip
    assert quota["possibly_lost_admissions"] == 4


def test_a_429_the_bucket_had_room_for_after_the_failover_is_a_double_spend() -> None:
    # at 30 s the bucket holds 0.08 + 0.1 x 28.2 - 1 (the 12.5 s admission) = 1.9: a 429 there is false
    rows = [*correct_history(), row(30.0, 429)]
    verdict = check_failover(data(rows), Thresholds())
    assert verdict.status == "fail" and verdict.evidence["quota"]["double_spends"] == 1


def test_a_limiter_that_does_not_follow_the_promotion_fails() -> None:
    # still degraded at 14 s and 15 s: later than 12.3 + 1.35
    rows = [*spent_bucket(), *outage(), row(13.0, degraded=DEGRADED), row(14.0, degraded=DEGRADED),
            row(15.0, 429, degraded=DEGRADED)]  # fmt: skip
    verdict = check_failover(data(rows), Thresholds())
    assert verdict.status == "fail"
    (judged,) = verdict.evidence["windows"]
    assert judged["late_degraded"] == 2 and judged["recovery_s"] is None
    assert "did not follow the promotion" in verdict.summary


@pytest.mark.parametrize(
    ("details", "problem"),
    [({"promoted_at": None}, "no promotion"),
     ({"promoted_at": START_S + 15.0}, "promotion took 5.00 s > the Sentinels' 4 s")],
)  # fmt: skip
def test_a_missing_or_slow_promotion_fails(details: dict[str, Any], problem: str) -> None:
    verdict = check_failover(data(correct_history(), window(**details)), Thresholds())
    assert verdict.status == "fail" and problem in verdict.summary


def test_errors_during_the_failover_cost_availability() -> None:
    rows = [*correct_history(), *(row(16.0 + 0.01 * i, 502) for i in range(3))]
    verdict = check_failover(data(rows), Thresholds())
    assert verdict.status == "fail" and "availability" in verdict.summary


def test_no_record_is_unknown_never_pass() -> None:
    bare = FaultWindow(name="kill-redis-primary", kind=FaultKind.FAILOVER, service="redis-1",
                       role=ServiceRole.RATE_LIMIT_STORE, expect=Expectation.FAIL_OPEN_LOCAL,
                       start=START_S + 9.7, end=START_S + 20.0)  # fmt: skip
    verdict = check_failover(data(correct_history(), bare), Thresholds())
    assert verdict.status == "unknown"


def test_a_replica_lagging_beyond_every_sample_leaves_the_bound_unknown() -> None:
    verdict = check_failover(data(correct_history(), window(replicated_until=None)), Thresholds())
    assert verdict.status == "unknown" and "not bounded" in verdict.summary


def test_no_request_after_the_promotion_cannot_show_the_limiter_followed() -> None:
    verdict = check_failover(data([*spent_bucket(), *outage()]), Thresholds())
    assert verdict.status == "unknown"


def test_a_latency_window_is_bridged_with_its_quick_degraded_answers_still_maybe_spent() -> None:
    # a Redis delay from 10 s to 20 s: the degraded admission at 12 s answered in 5 ms, yet its call may
    # have run in Redis (a timeout fails every call waiting on the connection): the 429 at 20.5 s is right
    # if it did (0.08 + 1.02 - 1 + 0.85 = 0.95 < 1), so no reading may call it false
    slow = FaultWindow(name="delay-redis-50ms", kind=FaultKind.LATENCY, service="redis-proxy",
                       role=ServiceRole.RATE_LIMIT_STORE, expect=Expectation.FAIL_OPEN_LOCAL,
                       start=START_S + 10.0, end=START_S + 20.0, details={"delay_ms": 50})  # fmt: skip
    rows = [*spent_bucket(), row(12.0, degraded=DEGRADED, latency_ms=5.0), row(20.5, 429)]
    verdict = check_quota_token_bucket(data(rows, slow), Thresholds())
    assert verdict.status == "pass", verdict.summary
    assert verdict.evidence["bridged_faults"][0] == {
        "fault": "delay-redis-50ms",
        "kind": "latency",
        "lost": "nothing",
    }
