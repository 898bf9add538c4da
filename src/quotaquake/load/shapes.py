"""Load shapes of the open model: the arrival rate over time as a fraction of the peak rate ``--qq-rate``.

Locust shapes control user counts; with a fixed per-user rate (``RatePlan``) the user count *is* the
arrival rate, quantised to one user's rate (``--qq-rate / users``, e.g. 20 req/s). Locust's own user count
and ramp-up (``-u``, ``-r``, the web form's fields) are therefore ignored. Each shape reads ``--run-time``
(``use_common_options``) and stops the run when it has elapsed; without a run time (web UI, or a headless
run without ``-t``) profiles use a 60 s time scale and the run stops at the duration cap
(``quotaquake.load.safety.MAX_DURATION_S``, 2 h) with a log line saying so.

The shape reads the swarm's runtime (``runtime_for``): the options a swarm started with hold until it stops.

``SelectedShape`` is the one shape class a scenario exposes: it delegates to the profile (a pure function
in ``quotaquake.load.profiles``) named by ``--qq-shape`` (steady | ramp | step | spike).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from locust import LoadTestShape

from quotaquake.load.profiles import FRACTIONS, shape_tick
from quotaquake.load.runtime import ScenarioRuntime, runtime_for
from quotaquake.load.safety import MAX_DURATION_S
from quotaquake.load.stopping import note_stop_reason

log = logging.getLogger(__name__)


class RateShape(LoadTestShape):
    """Base of the profiles: turns ``fraction(t, duration)`` of the peak rate into a user count."""

    abstract: ClassVar[bool] = True
    use_common_options: ClassVar[bool] = True
    duration_cap_s: ClassVar[float] = MAX_DURATION_S
    """Seconds after which a run without a run time stops (the safety cap; a subclass may only lower it)."""

    def fraction(self, t: float, duration: float) -> float:
        raise NotImplementedError

    def _runtime(self) -> tuple[ScenarioRuntime, float | None]:
        assert self.runner is not None, "shape used before Locust attached a runner"
        environment: Any = self.runner.environment
        run_time = getattr(environment.parsed_options, "run_time", None)
        return runtime_for(environment), float(run_time) if run_time else None

    def tick(self) -> tuple[int, float] | None:
        runtime, run_time = self._runtime()
        t = float(self.get_run_time())  # type: ignore[no-untyped-call]
        tick = shape_tick(runtime.options.plan, self.fraction, t, run_time, min(self.duration_cap_s, MAX_DURATION_S))
        if tick is None:
            self._stopping(run_time)
        return tick

    def _stopping(self, run_time: float | None) -> None:
        assert self.runner is not None
        if run_time is None:
            log.warning(
                "quotaquake: no run time was given: stopping at the duration cap of %g s "
                "(quotaquake.load.safety.MAX_DURATION_S); pass --run-time to choose",
                min(self.duration_cap_s, MAX_DURATION_S),
            )
            note_stop_reason(self.runner.environment, "duration cap")
        else:
            note_stop_reason(self.runner.environment, "completed")


class SelectedShape(RateShape):
    """The profile named by ``--qq-shape``; the only shape class a scenario file exposes to Locust."""

    abstract: ClassVar[bool] = False

    def fraction(self, t: float, duration: float) -> float:
        runtime, _ = self._runtime()
        return FRACTIONS[runtime.options.shape](t, duration)
