"""k6's arrival schedule: executors per load shape, tick times as k6 computes them, intended send times."""

from __future__ import annotations

import numpy as np
import pytest

from quotaquake.load.k6.schedule import (
    ArrivalSchedule,
    Stage,
    intended_times,
    mark_dropped,
    schedule_for,
)
from quotaquake.load.profiles import FRACTIONS

MS = 1_000_000
S = 1_000_000_000


def constant(rate: int, unit: int = 1) -> ArrivalSchedule:
    return ArrivalSchedule("constant-arrival-rate", unit, 10 * S, rate=rate)


def test_constant_ticks_start_at_zero_with_a_truncated_period() -> None:
    assert constant(200).tick_offsets(3).tolist() == [0, 5 * MS, 10 * MS]
    assert constant(3000).tick_offsets(4).tolist() == [0, 333_333, 666_666, 999_999]  # 1e9/3000 truncated
    assert constant(333_333, unit=1000).tick_offsets(2).tolist() == [0, 3_000_003]  # 333.333 req/s


def test_ramping_ticks_solve_the_integrated_rate() -> None:
    # 0 -> 10/s over 2 s: arrivals(t) = 2.5 t^2, tick i at sqrt(i / 2.5) s; then 10/s held for 1 s
    ramp = ArrivalSchedule("ramping-arrival-rate", 1, 3 * S, start_rate=0, stages=(Stage(10, 2 * S), Stage(10, 1 * S)))
    offsets = ramp.tick_offsets(20)
    assert offsets[0] == pytest.approx(np.sqrt(1 / 2.5) * S, abs=1)
    assert offsets[9] == 2 * S
    assert offsets[10:].tolist() == [2 * S + n * S // 10 for n in range(1, 11)]
    assert len(ramp.tick_offsets(25)) == 25  # beyond the schedule: the last rate goes on


def stage_rate(schedule: ArrivalSchedule, t_ns: int) -> float:
    """The rate (req/s) a ramping schedule's stages give at ``t_ns``."""
    start, rate = 0, schedule.start_rate
    for stage in schedule.stages:
        if t_ns < start + stage.duration_ns:
            share = (t_ns - start) / stage.duration_ns
            return (rate + (stage.target - rate) * share) / schedule.time_unit_s
        start, rate = start + stage.duration_ns, stage.target
    return rate / schedule.time_unit_s


@pytest.mark.parametrize("shape", ["ramp", "step", "spike"])
def test_each_shape_follows_its_profile(shape: str) -> None:
    schedule = schedule_for(shape, 400.0, 20.0)
    assert schedule.executor == "ramping-arrival-rate" and schedule.peak_rate == 400.0
    for t_s in np.arange(0.05, 20.0, 0.1):  # between the instants where a step or spike jumps
        assert stage_rate(schedule, round(t_s * S)) == pytest.approx(400.0 * FRACTIONS[shape](t_s, 20.0)), t_s


def test_steady_is_constant_and_fractional_rates_count_per_1000_s() -> None:
    steady = schedule_for("steady", 250.0, 30.0)
    assert steady.scenario() == {
        "executor": "constant-arrival-rate",
        "rate": 250,
        "timeUnit": "1s",
        "duration": "30000ms",
    }
    assert schedule_for("steady", 0.5, 30.0).scenario()["rate"] == 500
    assert schedule_for("steady", 0.5, 30.0).scenario()["timeUnit"] == "1000s"
    spike = schedule_for("spike", 30.0, 10.0).scenario()  # 20 % of 30 = 6 req/s: whole numbers
    assert spike["startRate"] == 6 and spike["timeUnit"] == "1s"
    assert spike["stages"][1] == {"target": 30, "duration": "0ms"}


def test_intended_times_without_drops_are_the_ticks_in_send_order() -> None:
    schedule = constant(1000)
    origin = 1_700_000_000_000 * MS + 400_000  # the executor started 0.4 ms into the ms the script saw
    lag = np.array([0, 300_000, 20_000, 900_000, 50_000], dtype=np.int64)  # each below the 1 ms period
    sent = origin + schedule.tick_offsets(5) + lag
    shuffled = np.array([3, 0, 4, 1, 2])
    intended, found = intended_times(schedule, sent[shuffled], np.zeros(0, dtype=np.int64), 1_700_000_000_000)
    assert found == origin
    assert (intended == (origin + schedule.tick_offsets(5))[shuffled]).all()


def test_dropped_ticks_are_skipped_and_no_request_precedes_its_tick() -> None:
    schedule = constant(1000)
    origin = 1_700_000_000_000 * MS
    ticks = origin + schedule.tick_offsets(8)
    dropped = [3, 4]  # no VU free: k6 records each drop right after its tick
    kept = [n for n in range(8) if n not in dropped]
    sent = ticks[kept] + 40_000
    sent[0] -= 40_000  # the first request left at its tick
    drops = ticks[dropped] + 5_000
    intended, _ = intended_times(schedule, sent, drops, 1_700_000_000_000)
    assert (intended == ticks[kept]).all()
    assert (sent - intended >= 0).all()


def test_two_requests_sent_in_the_other_order_swap_intended_times_not_sign() -> None:
    schedule = constant(1000)
    origin = 1_700_000_000_000 * MS
    ticks = origin + schedule.tick_offsets(3)
    sent = np.array([ticks[0], ticks[2] + 1_100_000, ticks[2] + 100_000])  # tick 1's VU was slow to start
    intended, _ = intended_times(schedule, sent, np.zeros(0, dtype=np.int64), 1_700_000_000_000)
    assert intended.tolist() == [ticks[0], ticks[2], ticks[1]]
    assert (sent - intended >= 0).all()


def test_origin_stays_within_what_the_script_saw() -> None:
    start_ms = 1_700_000_000_000
    late = np.array([start_ms * MS + 5 * MS])  # the only request left 5 ms after startTime
    assert intended_times(constant(10), late, np.zeros(0, dtype=np.int64), start_ms)[1] == start_ms * MS + MS
    ramp = schedule_for("ramp", 10.0, 10.0)  # ramping: the executor's clock starts after VU activation
    first = start_ms * MS + 8 * MS + int(ramp.tick_offsets(1)[0])
    assert intended_times(ramp, np.array([first]), np.zeros(0, dtype=np.int64), start_ms)[1] == start_ms * MS + 8 * MS


def test_a_drop_after_an_already_dropped_tick_marks_the_one_before() -> None:
    offsets = np.arange(6, dtype=np.int64) * 10
    marked = mark_dropped(offsets, np.array([41, 42], dtype=np.int64), 0)  # both after tick 4
    assert np.nonzero(marked)[0].tolist() == [3, 4]
    assert np.nonzero(mark_dropped(offsets, np.array([1, 2], dtype=np.int64), 0))[0].tolist() == [0, 1]
