"""Open-model arrival scheduling: every request has an intended send time from a fixed-rate schedule.

How users and rates are chosen (``RatePlan``): the run's peak arrival rate ``R`` (req/s, all workers
together) is split over ``U = ceil(R / max_user_rate)`` Locust users, each sending at exactly
``R / U`` req/s, i.e. one request every ``U / R`` seconds. Locust's master spreads the users over the
workers, so the workers' shares add up to ``R`` whatever their number.

Requests in flight (``RatePlan.in_flight_per_user``): a user does not wait for a response before its next
send; it may have up to ``max(1, max_in_flight // U)`` requests in flight, where ``max_in_flight`` is the
cap declared for the whole run (``--qq-max-in-flight``, like k6's ``maxVUs``). By Little's law the run
keeps its rate ``R`` while ``R * latency`` stays below the cap; beyond that a user's next send waits for
one of its responses (a *slot wait*), which shows as lag and is counted (``SendCounters``).

Schedule of one user (``ArrivalSchedule``): intended times ``first + k * interval`` for k = 0, 1, ...,
where ``first = start + phase * interval`` and ``phase`` in [0, 1) spreads users evenly over an interval.
A user waits until its next intended time and then sends. When it is late (its in-flight cap was
reached, or the generator is CPU-bound) it sends at once and the lag ``sent - intended`` is recorded in
the history: the rate is never silently lowered and no request is skipped, and latency measured from the
intended time is free of coordinated omission.

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
"""Default cap on one user's rate, req/s (one send every 50 ms)."""
DEFAULT_MAX_IN_FLIGHT = 1000
"""Default cap on requests in flight at once over the whole run (``--qq-max-in-flight``): 100 req/s keep
their rate up to the default 10 s timeout, 1,000 req/s up to 1 s of latency, 10,000 req/s up to 100 ms."""


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

    def in_flight_per_user(self, max_in_flight: int) -> int:
        """Requests one user may have in flight: ``max_in_flight // users``, at least 1 (so the run's
        effective cap is ``max(max_in_flight, users)`` rounded down to a multiple of ``users``)."""
        return max(1, max_in_flight // self.users)


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

    def due(self, now_ns: int) -> int:
        """Intended times up to ``now_ns`` (inclusive): those sent plus the backlog not sent yet."""
        backlog = 0 if now_ns < self.next_ns else (now_ns - self.next_ns) // self.interval_ns + 1
        return self.sent + backlog


@dataclass
class SendCounters:
    """What one process's users counted about their sends in one swarm (reported as ``GeneratorProcess``).

    ``scheduled``: intended times that came due while users ran (added when a user stops, from its
    ``ArrivalSchedule.due``); ``sent``: sends made; ``slot_waits``: sends that waited for a free in-flight
    slot, ``slot_wait_ns`` in total and ``slot_wait_max_ns`` at most (nanoseconds); ``in_flight_peak``:
    the most requests one user had in flight at once.
    """

    scheduled: int = 0
    sent: int = 0
    slot_waits: int = 0
    slot_wait_ns: int = 0
    slot_wait_max_ns: int = 0
    in_flight_peak: int = 0

    def waited(self, wait_ns: int) -> None:
        """One send waited ``wait_ns`` for a free slot."""
        self.slot_waits += 1
        self.slot_wait_ns += wait_ns
        self.slot_wait_max_ns = max(self.slot_wait_max_ns, wait_ns)

    def user_stopped(self, schedule: ArrivalSchedule, now_ns: int, in_flight_peak: int) -> None:
        """A user stopped at ``now_ns``: add its due intended times and its sends."""
        self.scheduled += schedule.due(now_ns)
        self.sent += schedule.sent
        self.in_flight_peak = max(self.in_flight_peak, in_flight_peak)
