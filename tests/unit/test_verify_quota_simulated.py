"""quota-accuracy on simulated limiters (``tests/support/synthetic.py``): a correct limiter is never failed,
whatever state it starts from; the seeded defects fail where the run established what they contradict."""

from __future__ import annotations

from pathlib import Path

import pytest

from quotaquake.policy import load_policy
from quotaquake.verify.checks.quota_token_bucket import check_quota_token_bucket
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Verdict
from tests.support.synthetic import SyntheticRun, mixed_consumers, run_data, simulate

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")


def judge(recorded: str | None = None, **spec: object) -> Verdict:
    """60 s of 2 consumers per tier at 3x their per-minute rate; ``recorded``: run.json's initial_state
    (default: what the simulation did, ``reset`` iff buckets start full and months fresh)."""
    run = SyntheticRun(policy=POLICY, consumers=mixed_consumers(POLICY, 2, overload=3.0), duration_s=60, seed=3, **spec)  # type: ignore[arg-type]
    data = run_data(
        simulate(run), POLICY, initial_state=recorded or run.recorded_initial_state, monthly_seeds=run.monthly_seeds
    )
    return check_quota_token_bucket(data, Thresholds())


def test_correct_limiter_from_a_reset_passes():
    assert judge().status == "pass"


def test_correct_limiter_that_served_traffic_before_is_never_failed():
    verdict = judge(start_tokens=0.2)
    assert verdict.status == "unknown"
    assert verdict.evidence["unjudged_429"] > 0 and verdict.evidence["false_rejections"] == 0
    # the same history claimed to start from a reset: the early 429s are false
    assert judge("reset", start_tokens=0.2).status == "fail"


def test_correct_limiter_near_its_monthly_quota_is_never_failed():
    assert judge(start_month_used={"free-1": 49_990.0, "free-2": 49_950.0}).status != "fail"


@pytest.mark.parametrize("lost", [0.02, 0.05])
def test_lost_responses_get_one_reading_that_explains_them(lost: float):
    verdict = judge(indeterminate=lost)
    assert verdict.status == "pass", verdict.summary
    assert sum(row["indeterminate"] for row in verdict.evidence["consumers"]) > 0


@pytest.mark.parametrize("spec", [{}, {"start_tokens": 0.3}, {"indeterminate": 0.05}])
def test_racy_limiter_fails(spec: dict[str, object]):
    verdict = judge(defect="racy", **spec)
    assert verdict.status == "fail"
    assert verdict.evidence["over_admitted_cost"] > 0


def test_limiter_rejecting_while_it_had_room_fails_when_the_state_is_known():
    assert judge(defect="hoarding").status == "fail"
    # from an unknown state the same history could come from a correct limiter with half-empty buckets
    assert judge("unknown", defect="hoarding").status == "unknown"
