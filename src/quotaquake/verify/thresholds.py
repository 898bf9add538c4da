"""Verification thresholds (``stack/thresholds.yaml``): SLOs, tolerances and generator-health limits.

Units are in the field names (``_ms`` milliseconds, ``_s`` seconds, ratios in [0, 1]). Defaults are the
seed's targets: proxy p95 < 50 ms per endpoint and tier, rate-limit check p99 < 2 ms, error rate < 0.1 %,
judged after a 3 s warm-up with one-sided 95 % bounds; the generator is late beyond a 10 ms lag p99.

Two more sections, both optional: ``thresholds:`` in k6's syntax (``quotaquake.gate.expressions``), judged
against the run's summary (``verify.summary``), and ``gate:``, the knobs of ``quotaquake gate``
(``GateSection``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from quotaquake import defaults
from quotaquake.config import read_yaml, validation_problem
from quotaquake.gate.expressions import METRICS, Threshold, parse_summary_key, parse_thresholds

DEFAULT_THRESHOLDS_PATH = defaults.THRESHOLDS
"""The packaged ``stack/thresholds.yaml`` (``quotaquake.defaults``): the built-in defaults, written out."""

NonNegative = Annotated[float, Field(ge=0.0)]
PositiveMs = Annotated[float, Field(gt=0)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Phase = Literal["run", "before", "during", "after"]
"""Kinds of run phase (``verify.data.phases``): ``run`` (no faults), ``before`` the first fault,
``during`` a fault window, ``after`` a fault until the next one starts."""


class LatencySlo(_Section):
    """The latency SLO: p95 (ms) per endpoint, tier and phase, each group judged on its own.

    The target of a group is ``phases[<its phase>]`` when given, else the smaller of its endpoint's and
    its tier's override when either is given (both promises hold), else ``default_p95_ms``. Groups inside
    fault windows (phase ``during``) are judged only when ``phases.during`` is given: otherwise the
    degradation check judges faults.
    """

    default_p95_ms: PositiveMs = 50.0
    endpoints: dict[str, PositiveMs] = Field(default_factory=dict)
    tiers: dict[str, PositiveMs] = Field(default_factory=dict)
    phases: dict[Phase, PositiveMs] = Field(default_factory=dict)

    def target_ms(self, endpoint: str | None, tier: str | None, phase: str) -> float | None:
        """The p95 target (ms) of one group, or ``None`` when the group is not judged (``during`` unset).

        ``phase`` is a phase label (``before``, ``during:<fault>``, ...) or kind."""
        kind = phase.split(":", 1)[0]
        if kind in self.phases:
            return self.phases[kind]
        if kind == "during":
            return None
        overrides = [v for v in (self.endpoints.get(endpoint or ""), self.tiers.get(tier or "")) if v is not None]
        return min(overrides) if overrides else self.default_p95_ms

    def smallest_target_ms(self) -> float:
        return min([self.default_p95_ms, *self.endpoints.values(), *self.tiers.values(), *self.phases.values()])


class Slo(_Section):
    """Service level objectives. Latency and the error budget are judged per group with one-sided
    ``confidence`` bounds (pass only when proven, fail only when the violation is proven); the first
    ``warmup_s`` seconds of load (from the first intended send) are left out of the latency SLO and
    reported. ``proxy_p95_ms`` is the former name of ``latency.default_p95_ms`` (either may be given)."""

    latency: LatencySlo = LatencySlo()
    proxy_p95_ms: PositiveMs | None = None
    limiter_decision_p99_ms: PositiveMs = 2.0
    error_rate: Ratio = 0.001
    warmup_s: NonNegative = 3.0
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95

    @model_validator(mode="after")
    def _former_name(self) -> Slo:
        if self.proxy_p95_ms is None:
            return self
        if "default_p95_ms" in self.latency.model_fields_set and self.latency.default_p95_ms != self.proxy_p95_ms:
            raise _field_error("proxy_p95_ms", self.proxy_p95_ms, "conflicts with latency.default_p95_ms: give one")
        object.__setattr__(self, "latency", self.latency.model_copy(update={"default_p95_ms": self.proxy_p95_ms}))
        return self


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
    """Generator health, strictly tighter than the latency SLO it protects.

    ``max_lag_p99_ms``: p99 of ``sent - intended`` after the warm-up; beyond it the generator was late,
    and latency is judged from the actual send (``latency_ms``), not the intended one. It must be below
    every latency target (``ConfigError`` otherwise): lag up to the target would hide a violation.
    ``min_rate_fraction``: the sent rate (sends per second of actual send time) / the scheduled rate over
    the steady part, and the peak send rate / the peak scheduled rate over 5 s windows (shaped loads).
    """

    max_lag_p99_ms: PositiveMs = 10.0
    min_rate_fraction: Ratio = 0.95


class Contention(_Section):
    """When the machine that ran the stack counts as saturated, and what contention can explain.

    A host sample (``host.jsonl``, one a second) is saturated when CPU pressure (PSI "some": share of the
    second in which a runnable task waited for a CPU) >= ``max_cpu_pressure``, or the cores were busy
    (mean of all cores, steal included) >= ``max_busy``, or steal >= ``max_steal``, or the 1-minute load
    average per core > ``max_load_per_core``. A generator process using >= ``generator_core`` of a core
    was CPU-bound (one Locust process runs on one core).

    A percentile q that misses its target while >= (100 - q) % of the samples were saturated may be the
    machine's doing: unknown, not fail, unless the median is over the target too, or the percentile's
    lower bound exceeds target + the scheduler delay of ``hops`` waits. That delay is ``hops x`` the
    probe's wake-up delay at the (1 - (1 - q/100) / hops) quantile: by the union bound, the q-th percentile
    of a sum of ``hops`` waits each distributed like the probe's is at most that. ``limiter_hops``: waits
    inside one limiter decision (Redis woken by the call, the limiter by the reply); ``request_hops``:
    processes a proxied request wakes (generator, LB, gateway, limiter, Redis, limiter, upstream, gateway).
    """

    max_cpu_pressure: Ratio = 0.10
    max_busy: Ratio = 0.90
    max_steal: Ratio = 0.05
    max_load_per_core: Annotated[float, Field(gt=0)] = 1.0
    generator_core: Ratio = 0.90
    limiter_hops: Annotated[int, Field(ge=1)] = 2
    request_hops: Annotated[int, Field(ge=1)] = 8


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


DEFAULT_GATED_KEYS: tuple[str, ...] = (
    "http_req_duration: med",
    "http_req_duration: p(95)",
    "http_req_failed: rate",
    "http_reqs: rate",
    "qq_rejected_ratio: rate",
    "qq_limiter_decision_ms: p(99)",
    "qq_over_admitted_cost: count",
    "qq_false_rejections: count",
    "qq_recovery_s: value",
    "qq_fault_availability: rate",
)


class GateSection(_Section):
    """``quotaquake gate``: the newest ``current_runs`` comparable runs of the baseline store against up to
    ``baseline_runs`` comparable runs before them (None: all). A change is a regression when a one-sided
    Mann–Whitney test over the per-run values finds it at ``alpha`` (Benjamini–Hochberg across the keys
    compared) and it exceeds ``min_effect`` (a fraction of the baseline; per metric in
    ``min_effect_by_metric``). ``keys``: the summary keys (``metric{tags}: aggregation``) the gate judges: a
    regression fails it, an undecided key makes it unknown, and a pass needs each proven unchanged or
    better; every other key is compared and shown, never judged (so many per-key tests find changes by
    chance). A key the current run does not have (no experiment, no Prometheus) is left out. ``fdr``:
    adjust the keys' p-values across them (Benjamini–Hochberg), which a long list of keys needs."""

    current_runs: Annotated[int, Field(ge=1)] = 1
    baseline_runs: Annotated[int, Field(ge=1)] | None = None
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.05
    min_effect: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.10
    min_effect_by_metric: dict[str, Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(default_factory=dict)
    keys: tuple[str, ...] = DEFAULT_GATED_KEYS
    fdr: bool = False

    @field_validator("min_effect_by_metric")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(name for name in value if name not in METRICS)
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r} (known: {', '.join(sorted(METRICS))})")
        return value

    @field_validator("keys")
    @classmethod
    def _parsable_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            parse_summary_key(text)
        return value


class Thresholds(_Section):
    version: int = 1
    slo: Slo = Slo()
    quota: Quota = Quota()
    generator: Generator = Generator()
    contention: Contention = Contention()
    crosscheck: CrossCheck = CrossCheck()
    degradation: DegradationLimits = DegradationLimits()
    gate: GateSection = GateSection()
    thresholds: tuple[Threshold, ...] = ()  # k6's syntax; parsed by load_thresholds, which names file and key

    @model_validator(mode="after")
    def _generator_tighter_than_the_slo(self) -> Thresholds:
        lag, target = self.generator.max_lag_p99_ms, self.slo.latency.smallest_target_ms()
        if lag >= target:
            raise _field_error(
                "generator.max_lag_p99_ms", lag, f"must be below the smallest latency target ({target:g} ms)"
            )
        return self


def _field_error(field: str, value: object, problem: str) -> ValidationError:
    """A validation error located at ``field`` (dotted), so ``ConfigError`` names it."""
    error = PydanticCustomError("threshold", problem)
    return ValidationError.from_exception_data(
        "Thresholds", [InitErrorDetails(type=error, loc=tuple(field.split(".")), input=value)]
    )


def load_thresholds(path: Path | None = None) -> Thresholds:
    """Validated thresholds from ``path``; ``None`` -> built-in defaults (the seed's targets).

    A missing or invalid file raises ``ConfigError`` naming the file and the field; the ``thresholds:``
    section (k6's syntax) is parsed by ``gate.expressions.parse_thresholds``, which names the key.
    """
    if path is None:
        return Thresholds()
    data = read_yaml(path)
    data = {} if data is None else data
    k6_section: object = None
    if isinstance(data, dict) and "thresholds" in data:
        k6_section = data["thresholds"]
        data = {key: value for key, value in data.items() if key != "thresholds"}
    try:
        model = Thresholds.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(path, exc) from None
    if k6_section is None:
        return model
    return model.model_copy(update={"thresholds": parse_thresholds(k6_section, path)})
