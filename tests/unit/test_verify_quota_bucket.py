"""Token-bucket quota accuracy on tiny histories with hand-computed answers.

Tier ``small``: per_minute 6 -> refill r = 0.1 token/s, capacity C = 1.5 x 6 = 9; per_month 100.
Latency 1 ms everywhere unless stated: requests i..j are flagged when cost(i..j) > 9 + 0.1 x (s_j - s_i +
0.001). Unless a test says otherwise the run reset its consumers (``initial_state=reset``: full bucket,
month 0); the lower bound of the bucket takes each deduction at its latest decision time, sent + 1 ms.
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


def judge(rows: list[dict[str, object]], state: str = "reset", **kwargs: object):
    data = run_data(frame_from_rows(rows), POLICY, initial_state=state, **kwargs)  # type: ignore[arg-type]
    return check_quota_token_bucket(data, Thresholds())


def consumer_row(verdict, name: str = "c1") -> dict[str, object]:
    return next(r for r in verdict.evidence["consumers"] if r["consumer"] == name)


def test_full_bucket_admitted_passes():
    verdict = judge(burst(9))
    assert verdict.status == "pass"
    assert consumer_row(verdict)["admitted_cost"] == 9.0


@pytest.mark.parametrize("state", ["reset", "unknown"])
def test_tenth_request_in_one_second_is_over_admitted(state: str):
    # requests 0..9: 10 > 9 + 0.1 x (0.9 + 0.001) = 9.0901, from a full bucket: whatever the state was
    verdict = judge(burst(10), state)
    assert verdict.status == "fail"
    assert consumer_row(verdict)["over_admitted"] == 1
    assert verdict.evidence["offenders"] == ["c1"]
    assert verdict.evidence["over_admitted_rows"][0]["row"] == 9


def test_cost_counts():
    # five /compare (cost 2) in 0.4 s: 10 > 9 + 0.1 x 0.401
    verdict = judge(burst(5, endpoint="/compare", cost=2.0))
    assert consumer_row(verdict)["over_admitted_cost"] == 2.0


def test_zero_cost_requests_are_exempt():
    assert judge(burst(9) + burst(20, start=1.0, endpoint="/health", cost=0.0)).status == "pass"


def test_send_to_decision_delay_widens_the_window_it_belongs_to():
    # request 0 took 10 s: window 0..9 allows 9 + 0.1 x (0.9 + 10) = 10.09 >= 10
    rows = burst(10)
    rows[0]["latency_ms"] = 10_000.0
    verdict = judge(rows)
    assert verdict.status == "pass"
    assert consumer_row(verdict)["w_ms"] == 10_000.0


def test_429_with_refilled_token_is_false_rejection():
    # 9 deducted at 0.001..0.801 (0.08 refilled meanwhile), at t = 11: 0.08 + 0.1 x 10.199 = 1.0999 >= 1
    verdict = judge([*burst(9), {"t": 11.0, "consumer": "c1", "tier": "small", "status": 429}])
    assert verdict.status == "fail"
    assert consumer_row(verdict)["false_rejections"] == 1


def test_429_without_a_whole_token_is_correct():
    # at t = 10: 0.08 + 0.1 x 9.199 = 0.9999 tokens
    assert judge([*burst(9), {"t": 10.0, "consumer": "c1", "tier": "small", "status": 429}]).status == "pass"


def test_requests_sent_just_after_a_429_may_have_taken_its_token():
    rows = [
        *burst(9),
        {"t": 11.0, "consumer": "c1", "tier": "small", "status": 429},
        {"t": 11.0005, "consumer": "c1", "tier": "small"},  # within w = 1 ms after: may be decided first
    ]
    assert judge(rows).status == "pass"


def test_indeterminate_outcomes_may_have_been_admitted():
    # nine timeouts then a 429 at 10 s: read as spent, 0.9999 < 1 token is left (and 9 in 0.8 s fit)
    rows = [*burst(9, status=0), {"t": 10.0, "consumer": "c1", "tier": "small", "status": 429}]
    assert judge(rows).status == "pass"
    # ... whereas after nine 429s the bucket is full: those 429s are false
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


# -- unknown initial state -------------------------------------------------------------------------


def rejected(t: float, **fields: object) -> dict[str, object]:
    return {"t": t, "consumer": "c1", "tier": "small", "status": 429, **fields}


def admitted(t: float, **fields: object) -> dict[str, object]:
    return {"t": t, "consumer": "c1", "tier": "small", **fields}


def test_early_429_from_a_partly_spent_bucket_is_unjudged_not_false():
    # a second run on the same limiter: 3 admitted, then a 429 while a full bucket would still hold ~6
    rows = [*burst(3), rejected(0.3)]
    verdict = judge(rows, "unknown")
    assert verdict.status == "unknown"
    row = consumer_row(verdict)
    assert (row["unjudged_429"], row["judged_429"], row["false_rejections"]) == (1, 0, 0)
    assert row["initial_state"].startswith("unknown")
    assert "bucket level" in row["unjudged_why"]
    assert "quotaquake run resets" in verdict.summary and verdict.evidence["decide"]
    assert verdict.evidence["unjudged_rows"][0]["row"] == 3
    # the same history after a reset is a proven false rejection
    assert judge(rows, "reset").status == "fail"


def test_a_reset_after_the_first_request_does_not_count():
    rows = [*burst(3), rejected(0.3)]
    assert judge(rows, "reset", initial_state_at=0.05).status == "unknown"


def test_least_possible_level_refilled_pins_the_bucket_but_not_the_month():
    # unknown start; after the admission at 0 (decided by 0.001) the bucket holds >= 0.1 x 19.999 = 1.9999
    rows = [admitted(0.0), rejected(20.0)]
    verdict = judge(rows, "unknown")
    assert verdict.status == "unknown"  # the month usage is unknown: the limiter may have been at its quota
    assert consumer_row(verdict)["unjudged_why"].endswith("1 of them only for want of the month usage")
    # a seed pins the month (set at the engine's start): now the 429 is false
    assert judge(rows, "unknown", monthly_seeds={"c1": 0.0}).status == "fail"
    # at t = 5 the bucket holds >= 0.4999 only: not provably false, would be from a full bucket
    early = judge([admitted(0.0), rejected(5.0)], "unknown", monthly_seeds={"c1": 0.0})
    assert early.status == "unknown" and consumer_row(early)["unjudged_429"] == 1


def test_later_admission_proves_the_month_had_room():
    # minute room is pinned (>= 1.0199 at t = 11); the admission at 12 found m + 1 <= 100, so m(11) <= 99
    rows = [*burst(9), rejected(11.0), admitted(12.0)]
    verdict = judge(rows, "unknown")
    assert verdict.status == "fail"
    row = consumer_row(verdict)
    assert row["false_rejections"] == 1 and row["unjudged_429"] == 0
    # ... or the 429 was right and the month was exhausted: then the admission over-admitted it
    assert verdict.evidence["month_offenders"] == ["c1"]
    assert [r["row"] for r in verdict.evidence["false_rejection_rows"]] == [9]
    assert [r["row"] for r in verdict.evidence["month_over_rows"]] == [10]


def test_later_admissions_must_cover_the_rejected_cost():
    # a 429 of cost 2 at t = 21 (bucket >= 0.1 x 20.199 = 2.0199): one later admission of cost 1 proves
    # room for 1 only; two (whichever was decided last saw m + 1 <= 100 after the other's 1) prove room for 2
    base = [*burst(9), rejected(21.0, endpoint="/compare", cost=2.0)]
    assert judge([*base, admitted(22.0)], "unknown").status == "unknown"
    assert judge([*base, admitted(22.0), admitted(23.0)], "unknown").status == "fail"
    assert judge([*base, admitted(22.0, endpoint="/compare", cost=2.0)], "unknown").status == "fail"


def test_a_429_with_certain_minute_room_pins_the_month_exhausted():
    # the 429 at t = 20 had minute room (>= 1.9999), so the month must have been exhausted...
    rows = [admitted(0.0), rejected(20.0)]
    assert judge(rows, "unknown", monthly_seeds={"c1": 99.0}).status == "pass"  # 99 + 1 + 1 > 100: right
    # ... a later admission shows it was not (or was over-admitted)
    verdict = judge([*rows, admitted(30.0)], "unknown")
    assert verdict.status == "fail" and verdict.evidence["month_offenders"] == ["c1"]


def test_seeded_month_is_known_without_a_reset():
    within = [*burst(5, step=20.0), rejected(120.0)]
    assert judge(within, "unknown", monthly_seeds={"c1": 95.0}).status == "pass"
    assert judge(within, "unknown", monthly_seeds={"c1": 90.0}).status == "fail"


def test_over_admission_is_judged_from_the_most_generous_state():
    assert judge(burst(9), "unknown").status == "pass"
    assert judge(burst(6, step=20.0), "unknown", monthly_seeds={"c1": 95.0}).status == "fail"


def test_after_a_fault_the_state_is_unknown_again():
    fault = FaultWindow(
        name="kill redis",
        kind="outage",
        service="redis",
        role="rate-limit-store",
        expect="fail-open-local",
        start=START_S + 1.0,
        end=START_S + 2.0,
    )
    rows = [admitted(0.0), *burst(3, start=3.0), rejected(3.3)]
    assert judge(rows).status == "fail"  # reset, no fault: 9 - 4 tokens left
    verdict = judge(rows, faults=[fault])
    assert verdict.status == "unknown"
    assert "after a fault window" in consumer_row(verdict)["unjudged_why"]


# -- per-request timing tolerance ------------------------------------------------------------------


def test_one_slow_request_does_not_widen_other_windows():
    # the 10 s request at t = 0 is in no window of the burst at t = 100..100.9: 10 > 9.0901
    rows = [admitted(0.0, latency_ms=10_000.0), *burst(10, start=100.0)]
    verdict = judge(rows, "unknown")
    assert verdict.status == "fail"
    assert [r["row"] for r in verdict.evidence["over_admitted_rows"]] == [10]


def test_slow_request_inside_the_window_widens_only_it():
    # request 5 took 10 s: every window holding it allows 9 + 0.1 x (s_j - s_i + 10) >= 10
    rows = burst(10)
    rows[5]["latency_ms"] = 10_000.0
    assert judge(rows).status == "pass"
    # ... but 10 requests after it (t = 0.6..1.5) are a window of their own: 10 > 9.0901
    assert judge([*rows[:6], *burst(10, start=0.6)]).status == "fail"


def test_a_request_whose_decision_may_fall_into_a_fault_is_in_no_window():
    # the 10th (t = 0.85, 200 ms) may be decided after the fault began at 0.9 (Redis lost its state)
    rows = [*burst(9), admitted(0.85, latency_ms=200.0)]
    assert judge(rows).status == "fail"  # 10 > 9 + 0.1 x (0.85 + 0.2)
    fault = FaultWindow(name="kill redis", kind="outage", service="redis", start=START_S + 0.9, end=START_S + 2.0)
    assert judge(rows, faults=[fault]).status == "pass"


# -- one reading for indeterminate requests --------------------------------------------------------
# t = 0: timeout T1; 0.01..0.08: 8 admitted; 0.09: a 429. With T1 not spent the bucket holds
# 9 - 8 + 0.1 x 0.079 = 1.0079 at 0.09 (the 429 is false); with T1 spent 0.0079 (right).


def timeout(t: float) -> dict[str, object]:
    return {"t": t, "consumer": "c1", "tier": "small", "status": 0}


BEFORE_429 = [timeout(0.0), *burst(8, start=0.01, step=0.01), rejected(0.09)]


def test_a_timeout_read_as_spent_explains_a_429():
    verdict = judge(BEFORE_429)
    assert verdict.status == "pass"
    assert consumer_row(verdict)["reading"] == "all-spent"


def test_no_reading_explains_the_history():
    # an admission at 0.1: with T1 spent, 10 in [0, 0.101] > 9.0101 (over-admitted); not spent, the 429 is
    # false. The former pass (over-admission read it as not spent, false rejections as spent) was wrong.
    verdict = judge([*BEFORE_429, admitted(0.1)])
    assert verdict.status == "fail"
    row = consumer_row(verdict)
    assert row["over_admitted"] + row["false_rejections"] == 1


def test_a_mixed_reading_is_modelled():
    # T2 at 0.1 must not be spent (10 in [0, 0.101]), T1 must: neither all-spent nor none-spent explains;
    # a limiter deciding at the send times would have spent T1 (9 tokens) and not T2 (0.0081)
    verdict = judge([*BEFORE_429, timeout(0.1)])
    assert verdict.status == "pass"
    assert consumer_row(verdict)["reading"] == "modelled"


def test_a_mixed_reading_is_searched():
    # T2 (0.095, 1 ms) must not be spent: 10 in [0.01, 0.096] > 9.0087. T (0.1) must be, though at its
    # send time the bucket held 0.0085: decided as late as 20.1 it explains the 429 at 15 (without it
    # 0.1 x 14.909 = 1.49 tokens; with it in flight 0.49). Only the search finds that reading.
    rows = [*burst(9, start=0.01, step=0.01), timeout(0.095), {**timeout(0.1), "latency_ms": 20_000.0}, rejected(15.0)]
    verdict = judge(rows)
    assert verdict.status == "pass"
    assert consumer_row(verdict)["reading"] == "searched"
    assert judge([*rows[:9], rows[10], rows[11]]).status == "pass"  # T alone: all-spent explains


def test_too_many_undecided_requests_is_unknown():
    rows = [*BEFORE_429, admitted(0.1), *[timeout(0.2 + 0.01 * k) for k in range(17)]]
    verdict = judge(rows)
    assert verdict.status == "unknown"
    assert verdict.evidence["search_too_large"] == ["c1"]
    assert "too many to search (18" in verdict.summary


def test_parts_where_the_bucket_is_provably_full_again_are_searched_apart():
    # 2 x 10 undecided requests (20 > 16), but the bucket is full again between the parts (>= 90 s quiet)
    part = [*BEFORE_429, timeout(0.1), *[timeout(0.5 + 0.01 * k) for k in range(8)]]
    shifted = [{**row, "t": float(row["t"]) + 200.0} for row in part]  # type: ignore[arg-type]
    verdict = judge([*part, *shifted])
    assert verdict.status == "pass"
    assert consumer_row(verdict)["indeterminate"] == 20


def test_a_request_sent_in_a_fault_may_still_spend_after_it():
    # sent at 1.9 inside the fault, answered 30 s later: it may be decided at t = 25 and hold 2 tokens, so
    # the 429 at 25 (>= 0.1 x 21.999 = 2.1999 refilled since the admission at 3) is not provably false;
    # the admission at 40 proves the month had room, the full state would have had room: unjudged
    fault = FaultWindow(name="kill redis", kind="outage", service="redis", start=START_S + 1.0, end=START_S + 2.0)
    in_fault = admitted(1.9, endpoint="/compare", cost=2.0, latency_ms=30_000.0)
    rows = [in_fault, admitted(3.0), rejected(25.0), admitted(40.0)]
    verdict = judge(rows, faults=[fault])
    assert verdict.status == "unknown"
    assert consumer_row(verdict)["unjudged_429"] == 1
    quick = {**in_fault, "latency_ms": 1.0}  # decided inside the fault: the 429 is false
    assert judge([quick, *rows[1:]], faults=[fault]).status == "fail"


def test_a_right_429_bounds_the_bucket_for_the_requests_after_it():
    # unknown bucket, month known (seeded): the 429 at 0 had month room, so the bucket held < 1 token;
    # after it (decided by 0.001) the 2nd admission at 0.02 exceeds 1 + 0.1 x (0.02 + 0.001)
    rows = [rejected(0.0), *burst(5, start=0.01, step=0.01)]
    verdict = judge(rows, "unknown", monthly_seeds={"c1": 0.0})
    assert verdict.status == "fail"
    assert consumer_row(verdict)["over_admitted"] == 4
    # with the month unknown too: the admissions after the 429 prove the month had room for it
    assert judge(rows, "unknown").status == "fail"
    # ... and without the 429 nothing bounds the unknown bucket: 5 in 0.04 s fit a full one
    assert judge(rows[1:], "unknown").status == "pass"
