"""Kong 3.9 rate-limiting model on tiny hand-computed histories.

Each test names the Kong source line (tag 3.9.3, commit a643428b, github.com/Kong/kong) whose rule it encodes;
``docs/kong-3.9.md`` holds the fact sheet. Times are seconds after ``T0`` = 2026-01-01T00:00:00Z (a minute,
day, month and year boundary); latency is 1 ms unless stated, so a request is counted within 1 ms of its send.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np
import pytest

from quotaquake.verify.models.kong import (
    FLAG_FALSE_REJECTION,
    FLAG_HEADER_VIOLATION,
    FLAG_IN_OVER_WINDOW,
    FLAG_OVER_ADMITTED,
    FLAG_UNDECIDED,
    ConsumerRequests,
    ConsumerVerdict,
    JudgeOptions,
    KongRateLimiting,
    judge_consumer,
    kong_decision,
    redis_key,
    reset_seconds,
    window_end_ns,
    window_start_ns,
)

T0_S = 1_767_225_600  # 2026-01-01T00:00:00Z
T0 = T0_S * 1_000_000_000
NAN = float("nan")
FAULT_FREE = JudgeOptions(store_fault_free=True)


def history(
    times: Sequence[float],
    statuses: Sequence[int],
    known: bool = True,
    latency_ms: float | Sequence[float] = 1.0,
    t0: int = T0,
    **remaining: Sequence[float],
) -> ConsumerRequests:
    """Requests sent ``times`` seconds after ``t0``; ``remaining`` maps a period to its header values."""
    n = len(times)
    latency = np.full(n, latency_ms) if isinstance(latency_ms, float) else np.array(latency_ms, dtype=np.float64)
    return ConsumerRequests(
        sent_ns=np.array([t0 + round(t * 1e9) for t in times], dtype=np.int64),
        status=np.array(statuses, dtype=np.int64),
        latency_ms=latency,
        remaining={p: np.array(v, dtype=np.float64) for p, v in remaining.items()},
        known_start={p: known for p in ("second", "minute", "hour", "day", "month", "year")},
    )


def judge(req: ConsumerRequests, options: JudgeOptions | None = None, /, **config: object) -> ConsumerVerdict:
    limits = config.pop("limits", {"minute": 3})
    return judge_consumer(req, KongRateLimiting(limits, **config), options)  # type: ignore[arg-type]


def hidden(limits: dict[str, int], **config: object) -> dict[str, object]:
    return {"limits": limits, "hide_client_headers": True, **config}


# ------------------------------------------------------------------------------------- Kong formulas


def test_windows_are_aligned_to_the_utc_calendar():
    # kong/tools/timestamp.lua:46-69: second, minute, hour, day, 1st of month, 1 January (UTC)
    t = np.array([T0 + 30 * 86_400 * 10**9 + 3_723_500_000_000], dtype=np.int64)  # 2026-01-31T01:02:03.5Z
    assert window_start_ns("second", t)[0] == t[0] - 500_000_000
    assert window_start_ns("minute", t)[0] == t[0] - 3_500_000_000
    assert window_start_ns("day", t)[0] == T0 + 30 * 86_400 * 10**9
    assert window_start_ns("month", t)[0] == T0
    assert window_end_ns("month", window_start_ns("month", t))[0] == T0 + 31 * 86_400 * 10**9
    assert window_start_ns("year", t)[0] == T0


def test_reset_uses_fixed_window_sizes():
    # handler.lua:181 with expiration.lua:1-8: max(1, window - seconds elapsed); month = 30 days fixed
    assert reset_seconds("minute", T0_S + 15) == 45
    assert reset_seconds("second", T0_S + 15) == 1
    assert reset_seconds("month", T0_S + 30 * 86_400 + 5) == 1  # day 31 of January: floor at 1
    feb = T0_S + 31 * 86_400
    assert reset_seconds("month", feb) == 2_592_000  # overstates February's 28 days


def test_redis_key_uses_zero_uuids_for_an_unscoped_plugin():
    # policies/init.lua:16,50-73: ratelimit:<route>:<service>:<identifier>:<period start ms>:<period>
    zero = "00000000-0000-0000-0000-000000000000"
    assert redis_key("c1", "minute", T0_S + 75) == f"ratelimit:{zero}:{zero}:c1:{(T0_S + 60) * 1000}:minute"
    assert redis_key("c1", "month", T0_S, service_id="s") == f"ratelimit:{zero}:s:c1:{T0_S * 1000}:month"


def test_headers_of_a_sequence_match_kongs_own_spec():
    # spec/03-plugins/23-rate-limiting/04-access_spec.lua:97-125: minute=6, seven requests
    shown, statuses = [], []
    for count in range(7):
        decision = kong_decision({"minute": 6}, {"minute": count}, T0_S + 1)
        statuses.append(200 if decision.admitted else 429)
        shown.append(int(decision.headers["X-RateLimit-Remaining-Minute"]))
        assert decision.headers["RateLimit-Limit"] == "6"
        assert ("Retry-After" in decision.headers) is (not decision.admitted)  # handler.lua:194-198
    assert shown == [5, 4, 3, 2, 1, 0, 0]
    assert statuses == [200] * 6 + [429]


def test_on_a_429_only_the_stopping_period_is_decremented():
    # handler.lua:164-167: other periods show max(0, limit - count_before)
    decision = kong_decision({"minute": 2, "month": 10}, {"minute": 2, "month": 2}, T0_S + 15)
    assert not decision.admitted
    assert decision.headers["X-RateLimit-Remaining-Minute"] == "0"
    assert decision.headers["X-RateLimit-Remaining-Month"] == "8"
    # handler.lua:169-176: least remaining, ties to the longer window; Retry-After = that reset (196)
    assert decision.headers["RateLimit-Remaining"] == "0"
    assert decision.headers["Retry-After"] == decision.headers["RateLimit-Reset"] == "45"
    tie = kong_decision({"minute": 2, "month": 2}, {"minute": 2, "month": 2}, T0_S + 15)
    assert tie.headers["RateLimit-Reset"] == str(2_592_000 - 15)


def test_hidden_headers_are_all_suppressed():
    # handler.lua:155,195 (fix #13722): no X-RateLimit-*, RateLimit-* or Retry-After
    assert kong_decision({"minute": 1}, {"minute": 1}, T0_S, hide_client_headers=True).headers == {}


def test_configuration_is_validated_like_the_schema():
    with pytest.raises(ValueError, match=r"schema\.lua:10-23"):
        KongRateLimiting({"minute": 10, "hour": 5})
    with pytest.raises(ValueError, match=r"schema\.lua:25-27"):
        KongRateLimiting({"minute": 10}, policy="local", sync_rate_s=1.0)
    with pytest.raises(ValueError, match=r"schema\.lua:29-33"):
        KongRateLimiting({"minute": 10}, sync_rate_s=0.01)


# ------------------------------------------------------------------------------------------ redis-sync


def test_limit_per_window_passes_and_the_witness_is_the_count_sequence():
    # policies/init.lua:406-415 (INCR returns the count before) and handler.lua:100-110 (admit iff < limit)
    verdict = judge(history([1, 2, 3, 4], [200, 200, 200, 429], minute=[2, 1, 0, 0]))
    assert verdict.status == "pass"
    assert verdict.witness["minute"].tolist() == [0, 1, 2, 3]


def test_seeded_defect_admitting_limit_plus_one_fails():
    # handler.lua:108-110: the 4th request saw count 3 >= limit 3 and must be stopped
    verdict = judge(history([1, 2, 3, 4], [200] * 4), FAULT_FREE, **hidden({"minute": 3}))
    assert verdict.status == "fail"
    assert verdict.flags.tolist() == [0, 0, 0, FLAG_OVER_ADMITTED]
    assert verdict.windows[0].min_excess_admissions == 1


def test_seeded_defect_not_counting_rejected_requests_fails():
    # policies/init.lua:406-415: a 429 is counted in every period; the month header shows it (handler.lua:164-165)
    kong = history([1, 2, 3, 4, 61], [200, 200, 429, 429, 200], minute=[1, 0, 0, 0, 1], month=[9, 8, 8, 7, 5])
    defect = history([1, 2, 3, 4, 61], [200, 200, 429, 429, 200], minute=[1, 0, 0, 0, 1], month=[9, 8, 8, 8, 7])
    limits = {"minute": 2, "month": 10}
    assert judge(kong, limits=limits).status == "pass"
    verdict = judge(defect, limits=limits)
    assert verdict.status == "fail"
    assert verdict.flags.tolist() == [0, 0, 0, FLAG_HEADER_VIOLATION, FLAG_HEADER_VIOLATION]


def test_not_counting_rejections_is_invisible_with_a_single_period():
    # with one period a 429 only follows count >= limit, and every later request in the window is stopped
    # either way: the defect above cannot be observed, so the model must not claim it
    verdict = judge(history([1, 2, 3, 4, 5], [200, 200, 200, 429, 429], minute=[2, 1, 0, 0, 0]))
    assert verdict.status == "pass"


def test_concurrent_requests_may_be_counted_in_any_order():
    # Redis linearizes the INCRs of overlapping requests (policies/init.lua:407-415): 3 requests in flight
    # together, limit 2 -> exactly two see a count below 2, whichever they are
    together = [1.0, 1.0001, 1.0002]
    options = FAULT_FREE
    assert judge(history(together, [429, 200, 200], latency_ms=10.0), options, **hidden({"minute": 2})).status == "pass"
    verdict = judge(history(together, [200, 200, 200], latency_ms=10.0), options, **hidden({"minute": 2}))
    assert verdict.status == "fail"
    assert verdict.flags.tolist() == [FLAG_IN_OVER_WINDOW] * 3  # one of them is the excess; which is unknowable


def test_429_with_room_is_a_false_rejection():
    # handler.lua:108: stop only when remaining <= 0
    verdict = judge(history([1, 2], [200, 429]), FAULT_FREE, **hidden({"minute": 3}))
    assert verdict.status == "fail"
    assert verdict.flags.tolist() == [0, FLAG_FALSE_REJECTION]


def test_a_later_admission_in_the_window_proves_an_earlier_429_false():
    # counts only rise within a window (INCR, policies/init.lua:409), even when the start count is unknown
    verdict = judge(history([1, 2, 3], [200, 429, 200], known=False), FAULT_FREE, **hidden({"minute": 3}))
    assert verdict.status == "fail"
    assert verdict.flags.tolist() == [0, FLAG_FALSE_REJECTION, 0]


def test_an_admission_that_is_itself_over_is_no_evidence_of_room():
    # limit 1: A R A -- the 429 saw count 1 (correct); the last admission saw 2 (over)
    verdict = judge(history([1, 2, 3], [200, 429, 200]), FAULT_FREE, **hidden({"minute": 1}))
    assert verdict.flags.tolist() == [0, 0, FLAG_OVER_ADMITTED]


def test_a_429_needing_a_pre_run_count_is_unknown():
    # the window holding the first request starts at an unknown count >= 0: "A R" with limit 3 is Kong
    # behaviour only if >= 2 requests were counted before the run, which the run did not observe
    verdict = judge(history([1, 2], [200, 429], known=False), FAULT_FREE, **hidden({"minute": 3}))
    assert verdict.status == "unknown"
    assert verdict.flags.tolist() == [0, FLAG_UNDECIDED]
    assert "before the run" in verdict.reasons[0]


def test_headers_pin_an_unknown_start_count():
    # Remaining = limit - count_before - 1 (handler.lua:100,165-167) reveals the pre-run count: 2 here
    verdict = judge(history([1, 2], [200, 429], known=False, minute=[0, 0]))
    assert verdict.status == "pass"
    assert verdict.witness["minute"].tolist() == [2, 3]


def test_a_new_window_starts_from_zero():
    # a new period start gives a new key (policies/init.lua:68-73), created by the first INCR
    times = [55, 56, 57, 61, 62, 63]
    assert judge(history(times, [200] * 6, known=False), FAULT_FREE, **hidden({"minute": 3})).status == "pass"
    verdict = judge(history([*times, 64], [200] * 7, known=False), FAULT_FREE, **hidden({"minute": 3}))
    assert verdict.status == "fail"
    assert verdict.flags.tolist()[-1] == FLAG_OVER_ADMITTED  # minute 1 began after the first request: known 0


def test_a_request_straddling_a_boundary_may_count_in_either_window():
    # the window comes from ngx.time() at access (handler.lua:127), some instant in [sent, response]
    full_then_straddler = [1, 2, 3, 59.9995]
    options = FAULT_FREE
    assert judge(history(full_then_straddler, [200] * 4), options, **hidden({"minute": 3})).status == "pass"
    verdict = judge(history([*full_then_straddler, 61, 62, 63], [200] * 7), options, **hidden({"minute": 3}))
    assert verdict.status == "fail"
    assert verdict.windows[1].min_excess_admissions == 1


def test_clock_skew_widens_the_window_choice():
    # ngx.time() is the Kong node's clock (handler.lua:127): a request sent 5 ms after the boundary is in the
    # new minute by the generator's clock, but a node 10 ms behind may have counted it in the old one
    req = history([1, 2, 60.005, 61, 62, 63], [200] * 6)
    assert judge(req, FAULT_FREE, **hidden({"minute": 3})).status == "fail"
    skewed = JudgeOptions(store_fault_free=True, clock_skew_ms=10.0)
    assert judge(req, skewed, **hidden({"minute": 3})).status == "pass"


def test_a_lost_request_may_or_may_not_have_been_counted():
    # status 0: Kong may have run the INCR (policies/init.lua:407) before the client gave up
    not_counted = history([1, 2, 3], [200, 0, 200], latency_ms=[1.0, NAN, 1.0], minute=[2, NAN, 1])
    counted = history([1, 2, 3], [200, 0, 200], latency_ms=[1.0, NAN, 1.0], minute=[2, NAN, 0])
    assert judge(not_counted).status == "pass"
    verdict = judge(counted)
    assert verdict.status == "pass"
    assert verdict.witness["minute"].tolist() == [0, 1, 2]
    jumped = judge(history([1, 3], [200, 200], minute=[2, 0]))  # nothing explains the skipped count
    assert jumped.status == "fail"
    assert jumped.flags.tolist() == [0, FLAG_HEADER_VIOLATION]


def test_one_reading_of_a_lost_request_for_all_periods():
    # the client gave up after 5 ms, so Kong counted it in every period before the next request or in none.
    # The minute header says counted, the month header says not: no single reading -> never pass.
    options = JudgeOptions(lost_request_horizon_ms=5.0)
    req = history([1, 2, 3], [200, 0, 200], latency_ms=[1.0, 5.0, 1.0], minute=[9, NAN, 7], month=[99, NAN, 98])
    verdict = judge(req, options, limits={"minute": 10, "month": 100})
    assert verdict.status == "unknown"
    consistent = history([1, 2, 3], [200, 0, 200], latency_ms=[1.0, 5.0, 1.0], minute=[9, NAN, 7], month=[99, NAN, 97])
    assert judge(consistent, options, limits={"minute": 10, "month": 100}).status == "pass"


def test_a_fault_tolerant_pass_through_has_no_headers_and_no_limit():
    # handler.lua:143-152: store error + fault_tolerant -> proxied without usage, headers or check
    req = history([1, 2, 3, 4, 5], [200] * 5, minute=[2, 1, 0, NAN, NAN])
    assert judge(req).status == "pass"
    # fault_tolerant = false: every proxied response went through the check and carries headers (160-205)
    strict = judge(req, fault_tolerant=False)
    assert strict.status == "fail"
    assert strict.flags.tolist() == [0, 0, 0, FLAG_HEADER_VIOLATION, FLAG_HEADER_VIOLATION]


def test_the_plugins_own_500_may_have_counted_some_periods():
    # handler.lua:145-146 error(err) -> kong/init.lua:405-410: 500 after some periods' INCR (get_usage stops
    # at the first error, handler.lua:94-97)
    req = history([1, 2, 3], [200, 500, 200], minute=[2, NAN, 0])
    assert judge(req, fault_tolerant=False).status == "pass"


def test_hidden_headers_with_fault_tolerance_cannot_judge_admissions():
    # handler.lua:144-152: without headers a pass-through looks like any admission
    req = history([1, 2, 3, 4], [200] * 4)
    verdict = judge(req, **hidden({"minute": 3}))
    assert verdict.status == "unknown"
    assert "fault_tolerant" in verdict.reasons[0]
    assert judge(req, FAULT_FREE, **hidden({"minute": 3})).status == "fail"


def test_unauthenticated_requests_never_reach_the_limiter():
    # key-auth (PRIORITY 1250, key-auth/handler.lua:22) answers 401 before rate-limiting (910, handler.lua:57)
    req = history([1, 2, 3, 4, 5], [401, 200, 401, 200, 200], minute=[NAN, 2, NAN, 1, 0])
    assert judge(req).status == "pass"


def test_a_429_always_shows_zero_for_the_stopping_period():
    # handler.lua:164-167: the stop period is decremented and clamped to 0
    req = history([1, 2], [200, 429], minute=[9, 8], month=[99, 98])
    verdict = judge(req, limits={"minute": 10, "month": 100})
    assert verdict.status == "fail"
    assert verdict.flags[1] & FLAG_HEADER_VIOLATION


def test_a_month_stopped_by_a_pre_run_count_is_pinned_by_its_header():
    # Remaining-Month 0 on an admission means count_before = limit - 1 (handler.lua:100,167)
    req = history([1, 2], [200, 429], known=False, minute=[9, 9], month=[0, 0])
    verdict = judge(req, limits={"minute": 10, "month": 100})
    assert verdict.status == "pass"
    assert verdict.witness["month"].tolist() == [99, 100]


def test_a_seeded_month_starts_at_the_seed():
    # E4: the run set the month key to 99 (policies/init.lua:68-73) before its first request; Kong then admits
    # one more (count_before 99 < 100, handler.lua:100-110) and stops the next on the month period
    seeded = {"month": (T0, 99)}
    req = history([15, 16], [200, 429], minute=[9, 9], month=[0, 0])
    req = ConsumerRequests(req.sent_ns, req.status, req.latency_ms, req.remaining, req.known_start, seeded)
    assert judge(req, limits={"minute": 10, "month": 100}).status == "pass"
    # a Kong that never read the seed shows the month count it had (0): no consistent count explains it
    fresh = history([15, 16], [200, 200], minute=[9, 8], month=[99, 98])
    fresh = ConsumerRequests(fresh.sent_ns, fresh.status, fresh.latency_ms, fresh.remaining, fresh.known_start, seeded)
    verdict = judge(fresh, limits={"minute": 10, "month": 100})
    assert verdict.status == "fail"
    assert verdict.flags[1] & FLAG_OVER_ADMITTED


def test_a_429_with_hidden_headers_and_two_periods_is_undecided_without_a_full_window():
    # either period may have stopped it (handler.lua:108-110); only a pre-run count could explain it here
    verdict = judge(history([1, 2], [200, 429], known=False), FAULT_FREE, **hidden({"minute": 10, "month": 100}))
    assert verdict.status == "unknown"
    assert verdict.flags[1] & FLAG_UNDECIDED


def test_the_month_counter_may_expire_on_day_31():
    # expiration.lua:6 (30 days) is set at the key's first INCR (policies/init.lua:410-412): on the 31st of a
    # 31-day month the month count may restart at 0, so those requests are not judged for the month
    day31 = T0 + 30 * 86_400 * 10**9
    req = history([1, 2, 3], [200] * 3, t0=day31, minute=[9, 8, 7], month=[99, 98, 97])
    verdict = judge(req, limits={"minute": 10, "month": 100})
    assert verdict.status == "unknown"
    assert "month counter may have expired" in verdict.reasons[0]


def test_a_request_spanning_several_windows_is_not_judged():
    # 2.5 s of latency against 1-second windows: the window of the clock reading cannot be pinned to two
    adjacent = history([1, 2], [200, 200], latency_ms=1500.0, second=[0, 0])
    assert judge(adjacent, limits={"second": 1}).status == "pass"  # 1.5 s: either of two windows
    verdict = judge(history([1, 2], [200, 200], latency_ms=2500.0, second=[0, 0]), limits={"second": 1})
    assert verdict.status == "unknown"
    assert verdict.flags.tolist() == [FLAG_UNDECIDED, FLAG_UNDECIDED]


def test_an_exhausted_search_budget_is_unknown():
    verdict = judge(history([1, 2], [200, 200], minute=[2, 1]), JudgeOptions(search_budget=0))
    assert verdict.status == "unknown"
    assert "budget" in verdict.reasons[0]


def test_window_summary_reports_capacity_and_evidence():
    verdict = judge(history([1, 2, 3, 4], [200, 200, 200, 200]), FAULT_FREE, **hidden({"minute": 3}))
    (window,) = verdict.windows
    assert (window.period, window.start_ns, window.end_ns, window.limit) == ("minute", T0, T0 + 60 * 10**9, 3)
    assert (window.start_known, window.capacity, window.admitted_certain) == (True, 3.0, 4)
    assert (window.min_excess_admissions, window.status) == (1, "fail")


# ---------------------------------------------------------------------------------- lagged policies


def lagged(policy: str, limit: int, **config: object) -> dict[str, object]:
    return {"limits": {"minute": limit}, "policy": policy, "hide_client_headers": True, **config}


def test_local_counts_per_node():
    # policies/init.lua:302-329: shared dict per node; 3 nodes, limit 2, sequential requests: <= 3 x 2
    six = history(range(1, 7), [200] * 6)
    assert judge(six, FAULT_FREE, **lagged("local", 2, replicas=3, increment_lag_ms=100.0)).status == "pass"
    seven = history(range(1, 8), [200] * 7)
    verdict = judge(seven, FAULT_FREE, **lagged("local", 2, replicas=3, increment_lag_ms=100.0))
    assert verdict.status == "fail"
    assert verdict.windows[0].capacity == 6.0


def test_local_races_concurrent_requests():
    # handler.lua:211-215: the increment runs in a timer after the check, so requests in flight together
    # all read the old count: one node, limit 1, three overlapping admissions is Kong behaviour
    together = history([1.0, 1.001, 1.002], [200] * 3, latency_ms=10.0)
    assert judge(together, FAULT_FREE, **lagged("local", 1, increment_lag_ms=0.0)).status == "pass"
    apart = history([1, 2, 3], [200] * 3)
    verdict = judge(apart, FAULT_FREE, **lagged("local", 1, increment_lag_ms=100.0))
    assert verdict.status == "fail"
    assert verdict.flags.tolist() == [0, FLAG_OVER_ADMITTED, FLAG_OVER_ADMITTED]  # they explain the excess


def test_cluster_shares_one_counter_whatever_the_replicas():
    # policies/init.lua:330-365: one database row per window; the lag bounds when an increment is visible
    req = history([1, 2, 3], [200] * 3)
    verdict = judge(req, FAULT_FREE, **lagged("cluster", 2, replicas=3, increment_lag_ms=100.0))
    assert verdict.flags.tolist() == [0, 0, FLAG_OVER_ADMITTED]
    slow = judge(req, FAULT_FREE, **lagged("cluster", 2, replicas=3, increment_lag_ms=1500.0))
    assert slow.status == "pass"  # the first increment may not have landed before the third request


def test_lagged_policies_do_not_count_429s():
    # handler.lua:194-200 returns before the increment (208-216): the month header of the next admission
    # leaves the 429s out under local, while redis-sync must count them (policies/init.lua:406-415)
    req = history([1, 2, 3, 4, 61], [200, 200, 429, 429, 200], minute=[1, 0, 0, 0, 1], month=[9, 8, 8, 8, 7])
    limits = {"minute": 2, "month": 10}
    assert judge(req, limits=limits, policy="local", increment_lag_ms=100.0).status == "pass"
    assert judge(req, limits=limits).status == "fail"
    # and a 429 still needs limit admissions on its node: one admission before it is not enough
    verdict = judge(history([1, 2, 3], [200, 429, 200]), FAULT_FREE, **lagged("local", 2, replicas=2))
    assert verdict.flags.tolist() == [0, FLAG_FALSE_REJECTION, 0]


def test_redis_with_sync_rate_admits_one_extra_per_worker():
    # policies/init.lua:431-435: after a cache refill the worker's view misses its own first request, so a
    # worker admits up to limit + 1 per window; here one node with one worker, limit 2
    three = history([1, 2, 3, 4], [200, 200, 200, 429])
    assert judge(three, FAULT_FREE, **lagged("redis", 2, sync_rate_s=1.0)).status == "pass"
    four = history([1, 2, 3, 4], [200] * 4)
    verdict = judge(four, FAULT_FREE, **lagged("redis", 2, sync_rate_s=1.0, workers_per_replica=1))
    assert verdict.status == "fail"
    assert verdict.windows[0].capacity == 3.0


def test_redis_with_sync_rate_may_show_remaining_equal_to_the_limit():
    # policies/init.lua:435 leaves delta -1 after a stopped cache miss: the view can be -1, so an admission
    # may show Remaining = limit (impossible with sync_rate -1, where it is at most limit - 1)
    req = history([1, 2], [429, 200], minute=[0, 2], month=[0, 4])
    assert req.remaining["minute"][1] == 2
    sync = judge(req, limits={"minute": 2, "month": 5})
    assert sync.flags[1] & FLAG_HEADER_VIOLATION
    asynchronous = judge(req, limits={"minute": 2, "month": 5}, sync_rate_s=1.0)
    assert not asynchronous.flags[1] & FLAG_HEADER_VIOLATION


# --------------------------------------------------------------------------- simulated Kong histories


def simulate_redis_sync(
    rng: np.random.Generator, limits: dict[str, int], n: int, defect: str | None = None
) -> ConsumerRequests:
    """Kong's algorithm with random overlap: clock read at a random instant of each request, INCRs at a later
    random instant (policies/init.lua:407-415), decision and headers by ``kong_decision`` (handler.lua)."""
    sent = np.sort(T0 + 50 * 10**9 + rng.integers(0, 20 * 10**9, n)).astype(np.int64)  # crosses 00:01:00
    latency = rng.choice([1.0, 50.0, 400.0], n)
    done = sent + (latency * 1e6).astype(np.int64)
    clock = sent + (rng.random(n) * (done - sent)).astype(np.int64)
    incr = clock + (rng.random(n) * (done - clock)).astype(np.int64)
    counters: collections.Counter[tuple[str, int]] = collections.Counter()
    status = np.zeros(n, dtype=np.int64)
    shown = {p: np.full(n, np.nan) for p in limits}
    for i in np.argsort(incr, kind="stable"):
        keys = {p: (p, int(window_start_ns(p, clock[i : i + 1])[0])) for p in limits}
        decision = kong_decision(limits, {p: counters[keys[p]] for p in limits}, int(clock[i] // 10**9))
        admitted = decision.admitted or (defect == "limit+1" and all(counters[keys[p]] <= limits[p] for p in limits))
        for p in limits:
            counters[keys[p]] += 0 if (defect == "no-count-429" and not decision.admitted) else 1
            shown[p][i] = float(decision.headers[f"X-RateLimit-Remaining-{p.capitalize()}"])
        status[i] = 200 if admitted else 429
    return ConsumerRequests(sent, status, latency, shown, dict.fromkeys(limits, True))


def test_simulated_kong_histories_never_fail_and_seeded_defects_do():
    rng = np.random.default_rng(20260101)
    limits = {"minute": 3, "month": 40}
    outcomes = collections.Counter(
        judge_consumer(simulate_redis_sync(rng, limits, int(rng.integers(5, 30))), KongRateLimiting(limits)).status
        for _ in range(40)
    )
    assert outcomes["fail"] == 0
    assert outcomes["pass"] >= 35
    for defect in ("limit+1", "no-count-429"):
        verdicts = [
            judge_consumer(simulate_redis_sync(rng, limits, 25, defect), KongRateLimiting(limits)).status
            for _ in range(10)
        ]
        assert verdicts.count("fail") == 10, defect
