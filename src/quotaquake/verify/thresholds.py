"""Verification thresholds (``stack/thresholds.yaml``): SLOs, tolerances and generator-health limits.

Units are in the field names (``_ms`` milliseconds, ``_s`` seconds, ratios in [0, 1]). Defaults are the
seed's targets: proxy p95 < 50 ms, rate-limit check p99 < 2 ms, error rate < 0.1 %.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from quotaquake.config import load_model

DEFAULT_THRESHOLDS_PATH = Path("stack/thresholds.yaml")

NonNegative = Annotated[float, Field(ge=0.0)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Slo(_Section):
    """Service level objectives; latency is judged outside fault windows (faults have their own check)."""

    proxy_p95_ms: Annotated[float, Field(gt=0)] = 50.0
    limiter_decision_p99_ms: Annotated[float, Field(gt=0)] = 2.0
    error_rate: Ratio = 0.001


class Quota(_Section):
    """Quota accuracy tolerances *beyond* the timing tolerance the models derive (see ``quota_bucket``).

    ``allowed_over_admitted_cost``: cost units admitted beyond the model per run (0: none allowed);
    ``allowed_false_rejections``: 429s while the model certainly had room (0: none allowed);
    ``epsilon``: floating-point slack in token comparisons (cost units).
    """

    allowed_over_admitted_cost: NonNegative = 0.0
    allowed_false_rejections: Annotated[int, Field(ge=0)] = 0
    epsilon: Annotated[float, Field(ge=0.0, le=1.0)] = 1e-6


class Generator(_Section):
    """Generator health: beyond these, latency verdicts are unknown (the generator was the bottleneck).

    ``max_lag_p99_ms``: p99 of ``sent - intended``; ``min_rate_fraction``: peak achieved send rate /
    peak scheduled (intended) rate, over 5 s windows.
    """

    max_lag_p99_ms: Annotated[float, Field(gt=0)] = 50.0
    min_rate_fraction: Ratio = 0.95


class CrossCheck(_Section):
    """History vs Prometheus counts agree within max(relative x count, absolute) requests."""

    relative_tolerance: Ratio = 0.01
    absolute_tolerance: NonNegative = 5.0


class DegradationLimits(_Section):
    """Degradation during fault windows.

    ``min_availability``: share of requests during a fault without a non-limiter error (5xx/0);
    ``max_fail_open_503_ratio``: share of 503 tolerated during a Redis fault under fail-open-local;
    ``max_recovery_s``: from the fault's rollback end to the last degraded marker / 503;
    ``when_no_faults``: the verdict when the run had no fault windows (``unknown``: nothing was tested).
    """

    min_availability: Ratio = 0.99
    max_fail_open_503_ratio: Ratio = 0.01
    max_recovery_s: Annotated[float, Field(gt=0)] = 10.0
    when_no_faults: Literal["unknown", "pass"] = "unknown"


class Thresholds(_Section):
    version: int = 1
    slo: Slo = Slo()
    quota: Quota = Quota()
    generator: Generator = Generator()
    crosscheck: CrossCheck = CrossCheck()
    degradation: DegradationLimits = DegradationLimits()


def load_thresholds(path: Path | None = None) -> Thresholds:
    """Validated thresholds from ``path``; ``None`` -> built-in defaults (the seed's targets).

    A missing or invalid file raises ``ConfigError`` naming the file and the field.
    """
    if path is None:
        return Thresholds()
    return load_model(path, Thresholds)
