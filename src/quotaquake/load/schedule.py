"""Open-model arrival scheduling: every request has an intended send time from a fixed-rate schedule.

How users and rates are chosen (``RatePlan``): the run's peak arrival rate ``R`` (req/s, all workers
together) is split over ``U = ceil(R / max_user_rate)`` Locust users, each sending at exactly
``R / U`` req/s, i.e. one request every ``U / R`` seconds. Locust's master spreads the users over the
workers, so the workers' shares add up to ``R`` whatever their number. A user sends one request at a time,
so it keeps to its schedule while latency stays below its interval (``1 / max_user_rate``, 50 ms with the
default of 20 req/s per user); by Little's law the ``U`` users cover ``R * latency`` requests in flight.

Schedule of one user (``ArrivalSchedule``): intended times ``first + k * interval`` for k = 0, 1, ...,
where ``first = start + phase * interval`` and ``phase`` in [0, 1) spreads users evenly over an interval.
A user waits until its next intended time and then sends. When it is late (the previous response took
longer than the interval, or the generator is CPU-bound) it sends at once and the lag
``sent - intended`` is recorded in the history: the rate is never silently lowered and no request is
skipped, and latency measured from the intended time is free of coordinated omission.

Clock (``EpochClock``): schedules run on the monotonic clock (immune to wall-clock steps) and are
converted to UTC epoch nanoseconds with an offset taken once per process, so history times from one
process are exactly comparable and processes on one host agree to within microseconds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
DEFAULT_MAX_USER_RATE = 20.0
"""Default cap on one user's rate, req/s: a 50 ms interval covers loopback latency with a wide margin."""


@dataclass(frozen=True)
class RatePlan:
    """How a peak arrival rate is divided over Locust users (see the module docstring)."""

    peak_rate: float  # req/s, whole run
    max_user_rate: float = DEFAULT_MAX_USER_RATE  # req/s, one user

    def __post_init__(self) -> None:
        if not self.peak_rate > 0 or not self.max_user_rate > 0:
            raise ValueError("peak_rate and max_user_rate must be greater than 0")

    @property
    def users(self) -> int:
        """Users needed at the peak: ``ceil(peak_rate / max_user_rate)``, at least 1."""
        return max(1, math.ceil(self.peak_rate / self.max_user_rate - 1e-9))

    @property
    def user_rate(self) -> float:
        """Rate of every user, req/s: ``peak_rate / users`` (never above ``max_user_rate``)."""
        return self.peak_rate / self.users

    @property
    def interval_ns(self) -> int:
        """Nanoseconds between two intended sends of one user (rounded to the nanosecond)."""
        return round(NS_PER_S / self.user_rate)

    def users_for(self, rate: float) -> int:
        """Users that produce ``rate`` req/s (rounded to the nearest whole user, at most ``users``)."""
        return min(self.users, max(0, round(rate / self.user_rate)))


class EpochClock:
    """Monotonic time expressed as UTC epoch nanoseconds (offset fixed at construction)."""

    def __init__(self) -> None:
        self._offset_ns = time.time_ns() - time.monotonic_ns()

    def now_ns(self) -> int:
        return time.monotonic_ns() + self._offset_ns


class ArrivalSchedule:
    """Intended send times of one user: ``first_ns + k * interval_ns``; tracks how late sends were.

    Pure: callers pass the current time, so tests drive it with plain integers.
    """

    def __init__(self, *, start_ns: int, interval_ns: int, phase: float) -> None:
        if interval_ns <= 0:
            raise ValueError("interval_ns must be greater than 0")
        if not 0.0 <= phase < 1.0:
            raise ValueError("phase must be in [0, 1)")
        self.interval_ns = interval_ns
        self.next_ns = start_ns + int(phase * interval_ns)
        self.sent = 0
        self.late = 0  # sends that went out after their intended time
        self.max_lag_ns = 0

    def seconds_until_due(self, now_ns: int) -> float:
        """Seconds to wait before the next intended send (0.0 when due or late)."""
        return max(0, self.next_ns - now_ns) / NS_PER_S

    def is_due(self, now_ns: int) -> bool:
        return now_ns >= self.next_ns

    def take(self, now_ns: int) -> int:
        """Mark the next request as sent at ``now_ns``; returns its intended time and advances by one interval.

        Never skips an intended time: a late user sends its backlog back to back, each request keeping
        its own intended time, so ``sent - intended`` shows the lag.
        """
        intended = self.next_ns
        lag = now_ns - intended
        if lag > 0:
            self.late += 1
            self.max_lag_ns = max(self.max_lag_ns, lag)
        self.sent += 1
        self.next_ns = intended + self.interval_ns
        return intended
