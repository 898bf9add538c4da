"""Load shapes of the open model: the arrival rate over time as a fraction of the peak rate ``--qq-rate``.

Locust shapes control user counts; with a fixed per-user rate (``RatePlan``) the user count *is* the
arrival rate, quantised to one user's rate (``--qq-rate / users``, e.g. 20 req/s). Each shape reads
``--run-time`` (``use_common_options``) and stops the run when it has elapsed; without a run time (web UI)
profiles use a 60 s time scale and run until stopped.

``SelectedShape`` is the one shape class a scenario exposes: it delegates to the profile (a pure function
in ``quotaquake.load.profiles``) named by ``--qq-shape`` (steady | ramp | step | spike).
"""

from __future__ import annotations

from typing import Any, ClassVar

from locust import LoadTestShape

from quotaquake.load.options import ScenarioOptions
from quotaquake.load.profiles import FRACTIONS, shape_tick


class RateShape(LoadTestShape):
    """Base of the profiles: turns ``fraction(t, duration)`` of the peak rate into a user count."""

    abstract: ClassVar[bool] = True
    use_common_options: ClassVar[bool] = True

    def fraction(self, t: float, duration: float) -> float:
        raise NotImplementedError

    def _options(self) -> tuple[ScenarioOptions, float | None]:
        assert self.runner is not None, "shape used before Locust attached a runner"
        parsed: Any = self.runner.environment.parsed_options
        run_time = getattr(parsed, "run_time", None)
        return ScenarioOptions.from_namespace(parsed), float(run_time) if run_time else None

    def tick(self) -> tuple[int, float] | None:
        options, run_time = self._options()
        t = float(self.get_run_time())  # type: ignore[no-untyped-call]
        return shape_tick(options.plan, self.fraction, t, run_time)


class SelectedShape(RateShape):
    """The profile named by ``--qq-shape``; the only shape class a scenario file exposes to Locust."""

    abstract: ClassVar[bool] = False

    def fraction(self, t: float, duration: float) -> float:
        options, _ = self._options()
        return FRACTIONS[options.shape](t, duration)
