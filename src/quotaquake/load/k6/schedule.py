"""k6's arrival schedule: the executor a load shape becomes, its tick times, and the intended send times.

**Executors.** A steady shape is k6's ``constant-arrival-rate``; ramp, step and spike are
``ramping-arrival-rate`` with stages that follow ``quotaquake.load.profiles`` (a stage of duration 0 is
an instant jump). Both are open model: k6 starts an iteration at each *tick* of a schedule fixed before
the run, on the first free VU; when no VU is free the tick is *dropped* (no request; one
``dropped_iterations`` sample at that moment). Rates are whole iterations per ``time_unit`` (k6 takes
integers), so a fractional rate is written per 1000 s.

**Ticks** (k6 v1.1.0, ``lib/executor/constant_arrival_rate.go``, ``ramping_arrival_rate.go``), as offsets
in nanoseconds from the executor's start:

* constant: tick ``g`` at ``g * period`` for g = 0, 1, ...; ``period = int(time_unit / rate)`` ns (k6's
  ``getTickerPeriod`` truncates to the nanosecond);
* ramping: tick ``i`` (i = 1, 2, ...) when the arrivals integrated over the stages reach ``i``
  (``RampingArrivalRateConfig.cal``: the rate is linear within a stage, so the time solves a quadratic).

**Intended send time.** A k6 script cannot read its tick: ``exec.scenario.iterationInTest`` numbers only
the iterations that started (a dropped tick takes no number, and two VUs may take numbers in the other
order), and ``exec.scenario.startTime`` is in whole milliseconds. So ``intended_times`` rebuilds them
after the run:

1. every ``dropped_iterations`` sample marks the tick due last before it (the executor records a drop
   right after the tick fired; a tick already marked passes the mark to the one before);
2. the ticks left, in order, are matched with the requests in send order: the j-th request sent is the
   j-th tick not dropped (iterations start in tick order; two sends in the other order only swap the
   intended times of requests a few microseconds apart);
3. the origin is the latest consistent with "no request left before its tick", ``min_j(sent_j -
   offset_j)``, kept within what the script saw: not before ``startTime`` (floored to the ms) and, for
   the constant executor, whose ticks count from that very start, not after it + 1 ms. (The ramping
   executor starts its clock after activating the pre-allocated VUs, so only the lower bound holds.)

Lag ``sent - intended`` is then the delay between the tick and the request leaving: the executor's hand-off
to a VU, the script's work before the request, waiting for a connection. It is understated by at most the
least-lagged request's own lag (tens of microseconds: the origin estimate absorbs it). A dropped tick has
no lag to show: its request never left, and ``dropped_iterations`` counts it.

Checked with k6 1.1.0 on this machine. ``startTime + iterationInTest x period`` as the intended time:
5,002 requests at 1,000/s (20 VUs, no drop) had 4 sent up to 1.03 ms *before* that time (two VUs took
their numbers in the other order); with 240 of 601 ticks dropped (3 VUs, 20 ms responses, 200/s) it put
the lag p50 at 602 ms, every drop pushing the later numbers back a period. The matching above gave, for
the same runs, no negative lag, and lag p50 0.53 / 0.59 ms, p99 3.2 / 1.6 ms; the origin it found was
0.14 ms after ``startTime`` (constant executor).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
import numpy.typing as npt

from quotaquake.load.profiles import SPIKE_BASE, SPIKE_WINDOW, STEP_COUNT

NS_PER_S = 1_000_000_000
MS = 1_000_000  # ns
RATE_DENOMINATOR_S = 1000  # a fractional rate is written as iterations per 1000 s

I64 = npt.NDArray[np.int64]
Executor = Literal["constant-arrival-rate", "ramping-arrival-rate"]


@dataclass(frozen=True)
class Stage:
    """A ramping stage: the rate goes linearly to ``target`` (iterations per time unit) over ``duration_ns``."""

    target: int
    duration_ns: int


@dataclass(frozen=True)
class ArrivalSchedule:
    """One k6 arrival-rate scenario's schedule. Rates are whole iterations per ``time_unit_s`` seconds."""

    executor: Executor
    time_unit_s: int
    duration_ns: int
    rate: int = 0  # constant executor
    start_rate: int = 0  # ramping executor
    stages: tuple[Stage, ...] = ()

    @property
    def peak_rate(self) -> float:
        """The highest rate of the schedule, req/s."""
        counts = [self.rate] if self.executor == "constant-arrival-rate" else [self.start_rate, *self.stage_targets]
        return max(counts) / self.time_unit_s

    @property
    def stage_targets(self) -> list[int]:
        return [stage.target for stage in self.stages]

    def scenario(self) -> dict[str, object]:
        """The executor's fields of a k6 ``scenarios`` entry (VUs and graceful stop are added by the plan)."""
        unit = f"{self.time_unit_s}s"
        if self.executor == "constant-arrival-rate":
            return {
                "executor": self.executor,
                "rate": self.rate,
                "timeUnit": unit,
                "duration": _k6_duration(self.duration_ns),
            }
        return {
            "executor": self.executor,
            "startRate": self.start_rate,
            "timeUnit": unit,
            "stages": [{"target": s.target, "duration": _k6_duration(s.duration_ns)} for s in self.stages],
        }

    def tick_offsets(self, count: int) -> I64:
        """The first ``count`` tick offsets (ns from the executor's start), as k6 computes them.

        Past the end of a ramping schedule (which k6 never reaches) ticks go on at the last rate.
        """
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        unit_ns = self.time_unit_s * NS_PER_S
        if self.executor == "constant-arrival-rate":
            period = int(float(Fraction(unit_ns, self.rate)))
            return np.arange(count, dtype=np.int64) * period
        return _ramping_offsets(self.start_rate / unit_ns, self.stages, unit_ns, count)


def _k6_duration(ns: int) -> str:
    return f"{ns // MS}ms"


def _ramping_offsets(start_rate: float, stages: Sequence[Stage], unit_ns: int, count: int) -> I64:
    """A port of k6's ``RampingArrivalRateConfig.cal`` for one instance (offsets 1, 1, ...), vectorised.

    Rates are iterations per ns; ``i`` is the cumulative arrival count at which a tick is due.
    """
    offsets: list[npt.NDArray[np.float64]] = []
    done_so_far = end_count = 0.0
    rate_from = start_rate
    stage_start = 0
    i = 1.0
    produced = 0
    for stage in stages:
        rate_to = stage.target / unit_ns
        duration = float(stage.duration_ns)
        if rate_from != rate_to:
            end_count += duration * ((rate_to - rate_from) / 2 + rate_from)
            area = _arrivals(i, end_count)
            root = np.sqrt(
                np.maximum(
                    duration * (rate_from * rate_from * duration + 2 * (area - done_so_far) * (rate_to - rate_from)),
                    0.0,
                )
            )
            times = (rate_from * duration - root) / (rate_from - rate_to)
        else:
            end_count += duration * rate_to
            area = _arrivals(i, end_count)
            times = (area - done_so_far) / rate_to if rate_to > 0 else area[:0]
        offsets.append(np.trunc(times) + stage_start)
        produced += len(area)
        i += len(area)
        done_so_far = end_count
        rate_from = rate_to
        stage_start += stage.duration_ns
        if produced >= count:
            break
    ticks = np.concatenate(offsets).astype(np.int64) if offsets else np.zeros(0, dtype=np.int64)
    if len(ticks) < count:  # beyond the schedule: continue at the final rate (never used by a k6 run)
        period = int(1 / rate_from) if rate_from > 0 else NS_PER_S
        last = int(ticks[-1]) if len(ticks) else 0
        extra = last + period * np.arange(1, count - len(ticks) + 1, dtype=np.int64)
        ticks = np.concatenate([ticks, extra])
    return ticks[:count]


def _arrivals(first: float, end_count: float) -> npt.NDArray[np.float64]:
    """``first, first + 1, ...`` while ``<= end_count`` (k6's ``for ; i <= endCount; i++``)."""
    if first > end_count:
        return np.zeros(0)
    return first + np.arange(math.floor(end_count - first) + 1, dtype=np.float64)


def rate_count(rate: float, time_unit_s: int) -> int:
    """``rate`` req/s as whole iterations per ``time_unit_s`` (rounded)."""
    return round(rate * time_unit_s)


def time_unit_for(rates: Sequence[float]) -> int:
    """1 s when every rate is a whole number of req/s, else ``RATE_DENOMINATOR_S`` (milli-req/s precision)."""
    whole = all(abs(r - round(r)) < 1e-9 for r in rates)
    return 1 if whole else RATE_DENOMINATOR_S


def schedule_for(shape: str, peak_rate: float, duration_s: float) -> ArrivalSchedule:
    """The k6 schedule of a ``--qq-shape`` at ``peak_rate`` req/s over ``duration_s`` (``load.profiles``)."""
    duration_ns = round(duration_s * NS_PER_S)
    if shape == "steady":
        unit = time_unit_for([peak_rate])
        return ArrivalSchedule("constant-arrival-rate", unit, duration_ns, rate=rate_count(peak_rate, unit))
    levels, stages = _stage_plan(shape, duration_ns)
    unit = time_unit_for([peak_rate * level for level in levels])
    count = [rate_count(peak_rate * level, unit) for level in levels]
    return ArrivalSchedule(
        "ramping-arrival-rate",
        unit,
        duration_ns,
        start_rate=count[0],
        stages=tuple(Stage(count[level], ns) for level, ns in stages),
    )


def _stage_plan(shape: str, duration_ns: int) -> tuple[list[float], list[tuple[int, int]]]:
    """(levels as fractions of the peak, stages as (level index, duration ns)); the first level starts."""
    if shape == "ramp":  # 0 -> peak over the first half, then hold (profiles.ramp_fraction)
        half = duration_ns // 2
        return [0.0, 1.0], [(1, half), (1, duration_ns - half)]
    if shape == "step":  # STEP_COUNT equal steps (profiles.step_fraction)
        levels = [(n + 1) / STEP_COUNT for n in range(STEP_COUNT)]
        bounds = [duration_ns * n // STEP_COUNT for n in range(STEP_COUNT + 1)]
        stages: list[tuple[int, int]] = []
        for n in range(STEP_COUNT):
            if n:
                stages.append((n, 0))
            stages.append((n, bounds[n + 1] - bounds[n]))
        return levels, stages
    if shape == "spike":  # SPIKE_BASE of the peak, the peak within SPIKE_WINDOW (profiles.spike_fraction)
        start, end = (round(duration_ns * edge) for edge in SPIKE_WINDOW)
        return [SPIKE_BASE, 1.0], [(0, start), (1, 0), (1, end - start), (0, 0), (0, duration_ns - end)]
    raise ValueError(f"no k6 schedule for shape {shape!r}")


def mark_dropped(offsets: I64, drops_ns: I64, origin_ns: int) -> npt.NDArray[np.bool_]:
    """Which of ``offsets`` were dropped: each drop marks the tick due last before it (step 1 above)."""
    dropped = np.zeros(len(offsets), dtype=np.bool_)
    due = np.searchsorted(offsets, np.sort(drops_ns) - origin_ns, side="right") - 1
    for tick in due.tolist():
        tick = min(max(tick, 0), len(offsets) - 1)
        while tick > 0 and dropped[tick]:
            tick -= 1
        while tick < len(offsets) - 1 and dropped[tick]:  # every earlier tick taken: the next free one
            tick += 1
        dropped[tick] = True
    return dropped


def intended_times(schedule: ArrivalSchedule, sent_ns: I64, drops_ns: I64, start_ms: int) -> tuple[I64, int]:
    """Intended send times of requests sent at ``sent_ns`` (any order; result in the same order) and the
    origin used (epoch ns). ``start_ms``: the scenario's start as the script saw it (epoch ms)."""
    count = len(sent_ns)
    if count == 0:
        return np.zeros(0, dtype=np.int64), start_ms * MS
    offsets = schedule.tick_offsets(count + len(drops_ns))
    order = np.argsort(sent_ns, kind="stable")
    lowest, highest = start_ms * MS, None
    if schedule.executor == "constant-arrival-rate":
        highest = lowest + MS
    origin = lowest
    for _ in range(2):  # drops are placed with the origin known, and the origin with the drops placed
        kept = offsets[~mark_dropped(offsets, drops_ns, origin)][:count]
        origin = int(np.min(sent_ns[order] - kept))
        origin = max(origin, lowest) if highest is None else min(max(origin, lowest), highest)
    intended = np.empty(count, dtype=np.int64)
    intended[order] = origin + kept
    return intended, origin
