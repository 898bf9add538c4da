"""Load profiles: the arrival rate over time as a fraction of the peak rate (pure functions of t, duration).

``t`` and ``duration`` are seconds; ``quotaquake.load.shapes`` turns them into Locust shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from quotaquake.load.safety import MAX_DURATION_S
from quotaquake.load.schedule import RatePlan

DEFAULT_TIME_SCALE_S = 60.0
SPIKE_BASE = 0.2  # fraction of the peak outside the spike
SPIKE_WINDOW = (0.4, 0.6)  # spike during this part of the run (fractions of the duration)
STEP_COUNT = 4


def steady_fraction(t: float, duration: float) -> float:
    """The peak rate all the time."""
    return 1.0


def ramp_fraction(t: float, duration: float) -> float:
    """Linear ramp from 0 to the peak over the first half of the run, then hold."""
    return min(1.0, t / (0.5 * duration))


def step_fraction(t: float, duration: float) -> float:
    """``STEP_COUNT`` equal steps (1/4, 2/4, 3/4, 4/4 of the peak), each a quarter of the run."""
    return min(1.0, (math.floor(t / (duration / STEP_COUNT)) + 1) / STEP_COUNT)


def spike_fraction(t: float, duration: float) -> float:
    """``SPIKE_BASE`` of the peak, with the full peak between 40 % and 60 % of the run (repeating)."""
    phase = (t % duration) / duration
    return 1.0 if SPIKE_WINDOW[0] <= phase < SPIKE_WINDOW[1] else SPIKE_BASE


FRACTIONS: dict[str, Callable[[float, float], float]] = {
    "steady": steady_fraction,
    "ramp": ramp_fraction,
    "step": step_fraction,
    "spike": spike_fraction,
}


Fraction = Callable[[float, float], float]


def shape_tick(
    plan: RatePlan, fraction: Fraction, t: float, run_time: float | None, cap_s: float = MAX_DURATION_S
) -> tuple[int, float] | None:
    """A Locust shape's tick at ``t`` seconds: ``(users, spawn rate)``, or ``None`` once the run is over:
    at ``run_time``, or at ``cap_s`` (the duration cap, 2 h) when no run time was given.

    Users = ``plan.users_for(peak * fraction(t, scale))`` with ``scale`` = the run time (60 s without one);
    the spawn rate lets every change complete within about a second.
    """
    if t >= (run_time if run_time is not None else cap_s):
        return None
    users = plan.users_for(plan.peak_rate * fraction(t, run_time or DEFAULT_TIME_SCALE_S))
    return users, float(plan.users)
