"""Open-model scheduler: rate plan, intended times, lag accounting, load profiles."""

from __future__ import annotations

import pytest

from quotaquake.load.profiles import ramp_fraction, shape_tick, spike_fraction, steady_fraction, step_fraction
from quotaquake.load.schedule import NS_PER_S, ArrivalSchedule, RatePlan, SendCounters


def test_rate_plan_splits_peak_rate_over_whole_users() -> None:
    plan = RatePlan(peak_rate=1000, max_user_rate=20)
    assert plan.users == 50
    assert plan.user_rate == pytest.approx(20.0)
    assert plan.interval_ns == 50_000_000


def test_rate_plan_rounds_users_up_so_no_user_exceeds_its_cap() -> None:
    plan = RatePlan(peak_rate=1010, max_user_rate=20)
    assert plan.users == 51
    assert plan.user_rate <= 20
    assert plan.users * plan.user_rate == pytest.approx(1010)


def test_rate_plan_small_rate_has_one_user_at_that_rate() -> None:
    plan = RatePlan(peak_rate=2.5)
    assert (plan.users, plan.user_rate) == (1, 2.5)


def test_users_for_a_fraction_of_the_peak() -> None:
    plan = RatePlan(peak_rate=1000, max_user_rate=20)
    assert plan.users_for(500) == 25
    assert plan.users_for(0) == 0
    assert plan.users_for(5000) == 50  # never above the peak's users


def test_rate_plan_rejects_non_positive_rates() -> None:
    with pytest.raises(ValueError):
        RatePlan(peak_rate=0)


def test_intended_times_follow_the_fixed_rate_schedule() -> None:
    schedule = ArrivalSchedule(start_ns=1_000, interval_ns=100, phase=0.5)
    intended = [schedule.take(now_ns=schedule.next_ns) for _ in range(4)]
    assert intended == [1_050, 1_150, 1_250, 1_350]
    assert schedule.late == 0
    assert schedule.max_lag_ns == 0


def test_waits_until_due_and_reports_zero_when_late() -> None:
    schedule = ArrivalSchedule(start_ns=0, interval_ns=NS_PER_S // 10, phase=0.0)
    schedule.take(now_ns=0)
    assert schedule.seconds_until_due(now_ns=40_000_000) == pytest.approx(0.06)
    assert not schedule.is_due(now_ns=40_000_000)
    assert schedule.seconds_until_due(now_ns=150_000_000) == 0.0
    assert schedule.is_due(now_ns=150_000_000)


def test_late_sends_keep_their_intended_times_and_count_the_lag() -> None:
    """A stalled generator sends its backlog back to back: nothing skipped, lag recorded."""
    schedule = ArrivalSchedule(start_ns=0, interval_ns=10, phase=0.0)
    sends = [(schedule.take(now_ns=35), 35) for _ in range(4)]  # stalled until t=35: 4 sends due by now
    assert [intended for intended, _ in sends] == [0, 10, 20, 30]
    assert [sent - intended for intended, sent in sends] == [35, 25, 15, 5]
    assert schedule.late == 4
    assert schedule.max_lag_ns == 35
    assert schedule.sent == 4
    assert schedule.next_ns == 40  # back on schedule, not shifted by the stall


def test_schedule_rejects_bad_phase() -> None:
    with pytest.raises(ValueError):
        ArrivalSchedule(start_ns=0, interval_ns=10, phase=1.0)


def test_profiles() -> None:
    assert steady_fraction(5, 60) == 1.0
    assert ramp_fraction(0, 60) == 0.0
    assert ramp_fraction(15, 60) == pytest.approx(0.5)
    assert ramp_fraction(45, 60) == 1.0
    assert [step_fraction(t, 40) for t in (0, 10, 25, 39)] == [0.25, 0.5, 0.75, 1.0]
    assert spike_fraction(10, 100) == pytest.approx(0.2)
    assert spike_fraction(50, 100) == 1.0
    assert spike_fraction(150, 100) == 1.0  # repeats without a run time


def test_shape_tick_turns_the_profile_into_users_and_stops_at_run_time() -> None:
    plan = RatePlan(peak_rate=1000, max_user_rate=20)  # 50 users at the peak
    assert shape_tick(plan, steady_fraction, t=3, run_time=20) == (50, 50.0)
    assert shape_tick(plan, ramp_fraction, t=5, run_time=20) == (25, 50.0)  # half way up the 10 s ramp
    assert shape_tick(plan, spike_fraction, t=1, run_time=20) == (10, 50.0)  # 20 % outside the spike
    assert shape_tick(plan, steady_fraction, t=20, run_time=20) is None
    assert shape_tick(plan, step_fraction, t=16, run_time=None) == (25, 50.0)  # no run time: 60 s scale, 2/4


def test_shape_tick_stops_at_the_duration_cap_without_a_run_time() -> None:
    plan = RatePlan(peak_rate=100, max_user_rate=20)
    assert shape_tick(plan, steady_fraction, t=7199, run_time=None) == (5, 5.0)
    assert shape_tick(plan, steady_fraction, t=7200, run_time=None) is None  # MAX_DURATION_S, 2 h
    assert shape_tick(plan, steady_fraction, t=3, run_time=None, cap_s=3) is None


def test_in_flight_cap_per_user_is_the_run_cap_over_the_peak_users() -> None:
    plan = RatePlan(peak_rate=500, max_user_rate=20)  # 25 users
    assert plan.in_flight_per_user(1000) == 40
    assert plan.in_flight_per_user(30) == 1  # 30 // 25
    assert plan.in_flight_per_user(10) == 1  # never below one per user


def test_due_counts_sent_and_backlog() -> None:
    schedule = ArrivalSchedule(start_ns=0, interval_ns=10, phase=0.0)  # intended 0, 10, 20, ...
    assert schedule.due(now_ns=0) == 1
    schedule.take(now_ns=0)
    assert schedule.due(now_ns=9) == 1  # the next one (10) is not due yet
    assert schedule.due(now_ns=35) == 4  # 10, 20, 30 due and not sent
    schedule.take(now_ns=35)
    assert schedule.due(now_ns=35) == 4 and schedule.sent == 2


def test_send_counters_add_users_and_slot_waits() -> None:
    counters = SendCounters()
    counters.waited(5_000_000)
    counters.waited(20_000_000)
    first = ArrivalSchedule(start_ns=0, interval_ns=10, phase=0.0)
    for now in (0, 10, 20):
        first.take(now_ns=now)
    counters.user_stopped(first, now_ns=45, in_flight_peak=3)  # due: 0..40 (5), sent 3
    second = ArrivalSchedule(start_ns=0, interval_ns=100, phase=0.0)
    second.take(now_ns=0)
    counters.user_stopped(second, now_ns=50, in_flight_peak=1)
    assert (counters.scheduled, counters.sent) == (6, 4)
    assert (counters.slot_waits, counters.slot_wait_ns, counters.slot_wait_max_ns) == (2, 25_000_000, 20_000_000)
    assert counters.in_flight_peak == 3
