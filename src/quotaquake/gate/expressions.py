"""Threshold files in k6's syntax: ``metric{tag:value,...}: ["p(95)<50", {threshold: ..., abortOnFail: ...}]``.

The grammar follows k6 (``metrics/thresholds_parser.go``, ``metrics/metric.go``, ``lib/types``):

* An expression is ``<aggregation> <operator> <number>`` with optional spaces around the operator. The
  operator is found by searching the text for ``<=``, ``<``, ``>=``, ``>``, ``===``, ``==``, ``!=`` in that
  order and splitting at the first one found (``===`` means ``==``).
* Aggregations by metric type: counter ``count``, ``rate`` (per second); gauge ``value``; rate ``rate`` (a
  fraction); trend ``avg``, ``min``, ``max``, ``med``, ``p(N)`` with 0 <= N <= 100 (no spaces inside).
* A metric key is ``name`` or ``name{key:value,...}``: the braces must close at the end, each filter is
  split at its first ``:`` (values may contain ``:``), keys and values are trimmed of spaces and quotes,
  and an empty value is an error.
* ``delayAbortEval`` is a Go duration (``10s``, ``1m30s``, ``1d2h``); a bare number is milliseconds.

Deliberately stricter than k6: numbers are decimal only (no ``NaN``, ``Inf`` or hex floats), a bare ``p``
is not an aggregation, unknown keys in the long form and duplicate YAML keys are errors (k6 silently
ignores both), and negative durations are rejected. Every problem is a ``ConfigError`` naming the file
and the key (exit code 2 at the CLI).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from quotaquake.config import read_yaml
from quotaquake.errors import ConfigError

MetricKind = Literal["counter", "gauge", "rate", "trend"]
Worse = Literal["higher", "lower"]
Tags = tuple[tuple[str, str], ...]

TAG_KEYS: frozenset[str] = frozenset({"endpoint", "tier", "phase", "fault"})
OPERATORS: tuple[str, ...] = ("<=", "<", ">=", ">", "===", "==", "!=")
AGGREGATIONS: dict[MetricKind, tuple[str, ...]] = {
    "counter": ("count", "rate"),
    "gauge": ("value",),
    "rate": ("rate",),
    "trend": ("avg", "min", "max", "med", "p(N)"),
}
LONG_FORM_KEYS: frozenset[str] = frozenset({"threshold", "abortOnFail", "delayAbortEval"})


REQUEST_TAGS: frozenset[str] = frozenset({"endpoint", "tier", "phase", "fault"})


@dataclass(frozen=True)
class MetricSpec:
    """What a metric measures: its k6 type, unit, which direction is a regression, which tag keys its
    summary rows carry (``tag_keys``), whether it is read from a histogram (only ``med`` and ``p(N)``), whether
    it can be judged while the load runs (``live``: from the history parts written so far, for
    ``abortOnFail``), and whether it describes the machine rather than the system (``environment``: never a
    regression itself, it tells the gate how noisy a night was)."""

    name: str
    kind: MetricKind
    unit: str
    worse: Worse
    description: str
    tag_keys: frozenset[str] = frozenset()
    histogram: bool = False
    live: bool = False
    environment: bool = False

    @property
    def timing(self) -> bool:
        """A duration (ms or s): slowed down by a busier machine as much as by a slower system."""
        return self.unit in ("ms", "s")


def _spec(
    name: str, kind: MetricKind, unit: str, worse: Worse, description: str, **options: object
) -> tuple[str, MetricSpec]:
    return name, MetricSpec(name, kind, unit, worse, description, **options)  # type: ignore[arg-type]


METRICS: dict[str, MetricSpec] = dict(
    [
        _spec("http_req_duration", "trend", "ms", "higher", "request latency from the actual send (k6's meaning)",
              tag_keys=REQUEST_TAGS, live=True),
        _spec("qq_req_duration_intended", "trend", "ms", "higher",
              "request latency from the intended send (coordinated-omission corrected)", tag_keys=REQUEST_TAGS,
              live=True),
        _spec("http_req_failed", "rate", "ratio", "higher", "share of requests with a 5xx or no response",
              tag_keys=REQUEST_TAGS, live=True),
        _spec("http_reqs", "counter", "requests", "lower", "requests sent; rate is requests per second",
              tag_keys=REQUEST_TAGS, live=True),
        _spec("iterations_dropped", "counter", "iterations", "higher", "scheduled requests never sent (k6)"),
        _spec("qq_generator_lag_ms", "trend", "ms", "higher", "sent minus intended send time",
              tag_keys=REQUEST_TAGS, live=True),
        _spec("qq_over_admitted_cost", "counter", "cost units", "higher", "cost admitted beyond the quota model",
              tag_keys=frozenset({"tier"})),
        _spec("qq_false_rejections", "counter", "requests", "higher", "429s while the model certainly had room",
              tag_keys=frozenset({"tier"})),
        _spec("qq_rejected_ratio", "rate", "ratio", "higher", "share of requests answered 429",
              tag_keys=REQUEST_TAGS, live=True),
        _spec("qq_limiter_decision_ms", "trend", "ms", "higher", "rate-limit decision time (limiter histogram)",
              histogram=True, live=True),
        _spec("qq_recovery_s", "gauge", "s", "higher", "longest recovery after a fault's rollback",
              tag_keys=frozenset({"fault"})),
        _spec("qq_fault_availability", "rate", "ratio", "lower", "share of requests served during faults",
              tag_keys=frozenset({"fault"})),
        _spec("qq_host_other_cpu", "gauge", "cores", "higher",
              "cores busy with neither the stack nor the generator (the machine's other load), mean over the run",
              environment=True),
        _spec("qq_host_cpu_pressure", "gauge", "ratio", "higher",
              "share of each second a runnable task waited for a CPU (PSI some), mean over the run",
              environment=True),
    ]
)  # fmt: skip

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_PERCENTILE_RE = re.compile(rf"p\(({_NUMBER})\)")
_GO_DURATION_RE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_GO_UNIT_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Expression:
    """A parsed ``<aggregation> <operator> <value>``; ``aggregation`` is canonical (``p(99.9)``, ``rate``)
    and ``percentile`` is N of ``p(N)`` in percent (None for the other aggregations)."""

    aggregation: str
    percentile: float | None
    operator: str
    value: float


@dataclass(frozen=True)
class Threshold:
    """One threshold on one (sub)metric. ``tags`` are sorted ``(key, value)`` pairs; ``delay_abort_s`` is
    k6's ``delayAbortEval`` in seconds (None: not set); ``source`` is the expression as written."""

    metric: str
    tags: Tags
    aggregation: str
    percentile: float | None
    operator: str
    value: float
    abort_on_fail: bool = False
    delay_abort_s: float | None = None
    source: str = ""

    @property
    def submetric(self) -> str:
        """k6's name of the (sub)metric: ``http_req_duration{endpoint:/identify,tier:pro}``."""
        return submetric_name(self.metric, self.tags)

    @property
    def label(self) -> str:
        """``submetric: expression``, e.g. ``http_req_failed: rate<0.001``."""
        return f"{self.submetric}: {self.aggregation}{self.operator}{format_number(self.value)}"


def format_number(value: float) -> str:
    """Shortest plain decimal text of ``value`` (``95`` for 95.0, ``99.9``, ``0.001``)."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def percentile_key(q: float) -> str:
    """The canonical aggregation name of the q-th percentile: ``p(95)``, ``p(99.9)``."""
    return f"p({format_number(q)})"


def tags_key(tags: Tags | Mapping[str, str]) -> str:
    """Canonical text of a tag set, sorted by key: ``endpoint:/identify,tier:pro`` ("" for no tags)."""
    pairs = sorted(tags.items()) if isinstance(tags, Mapping) else sorted(tags)
    return ",".join(f"{key}:{value}" for key, value in pairs)


def parse_tags_key(text: str) -> Tags:
    """The sorted pairs of a ``tags_key`` text (each item split at its first ``:``)."""
    if not text:
        return ()
    pairs = (item.partition(":") for item in text.split(","))
    return tuple(sorted((key, value) for key, _, value in pairs))


def submetric_name(metric: str, tags: Tags | Mapping[str, str]) -> str:
    """``metric`` or ``metric{tags}`` with tags in canonical order."""
    key = tags_key(tags)
    return f"{metric}{{{key}}}" if key else metric


def parse_expression(text: str) -> Expression:
    """Parse ``<aggregation> <operator> <value>`` as k6 does; ``ValueError`` says what is wrong."""
    for operator in OPERATORS:
        left, found, right = text.partition(operator)
        if found:
            break
    else:
        raise ValueError(f"no operator in {text!r} (expected one of {', '.join(OPERATORS)})")
    aggregation, percentile = _parse_aggregation(left.strip())
    value = _parse_number(right.strip(), "right-hand side")
    return Expression(aggregation, percentile, "==" if operator == "===" else operator, value)


def _parse_aggregation(text: str) -> tuple[str, float | None]:
    if text in ("count", "rate", "value", "avg", "min", "max", "med"):
        return text, None
    match = _PERCENTILE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"unknown aggregation {text!r} (expected count, rate, value, avg, min, max, med or p(N))")
    q = float(match.group(1))
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {match.group(1)} is outside 0..100")
    return percentile_key(q), q


def _parse_number(text: str, what: str) -> float:
    if not _NUMBER_RE.fullmatch(text):
        raise ValueError(f"{what} {text!r} is not a decimal number")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is out of range")
    return value


def parse_metric_key(key: str) -> tuple[str, Tags]:
    """Split ``name{k:v,...}`` into the name and sorted tag pairs (k6's rules); ``ValueError`` if malformed.

    The name and tag keys are not checked here (see ``validate_submetric``).
    """
    opening, closing = key.find("{"), key.rfind("}")
    if opening == -1 and closing == -1:
        return key.strip(), ()
    if opening == -1 or closing == -1 or closing < opening:
        raise ValueError("unmatched curly brace in the metric name")
    if closing != len(key) - 1:
        raise ValueError("the tag filter must end the metric name with '}'")
    pairs: dict[str, str] = {}
    for item in key[opening + 1 : closing].split(","):
        name, colon, value = item.partition(":")
        name, value = name.strip().strip("\"'"), value.strip().strip("\"'")
        if not colon or not value:
            raise ValueError(f"tag filter {item.strip()!r} is not key:value")
        if name in pairs and pairs[name] != value:
            raise ValueError(f"tag {name!r} is filtered twice")
        pairs[name] = value
    return key[:opening].strip(), tuple(sorted(pairs.items()))


def validate_submetric(metric: str, tags: Tags) -> MetricSpec:
    """The spec of ``metric``; ``ValueError`` for an unknown metric, a tag key it does not carry, or a
    ``fault`` filter without a ``phase`` filter on a request metric (``fault`` tags the ``during`` and
    ``after`` phases of one fault: say which)."""
    spec = METRICS.get(metric)
    if spec is None:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(sorted(METRICS))})")
    keys = {key for key, _ in tags}
    for key in sorted(keys):
        if key not in TAG_KEYS:
            raise ValueError(f"unknown tag key {key!r} (known: {', '.join(sorted(TAG_KEYS))})")
        if key not in spec.tag_keys:
            carried = ", ".join(sorted(spec.tag_keys)) or "none"
            raise ValueError(f"{metric} has no tag {key!r} (its tags: {carried})")
    if spec.tag_keys == REQUEST_TAGS and "fault" in keys and "phase" not in keys:
        raise ValueError("a fault filter needs a phase filter too (phase:during or phase:after)")
    return spec


def check_aggregation(spec: MetricSpec, expression: Expression) -> None:
    """``ValueError`` when the aggregation does not apply to the metric's type (k6's rule)."""
    supported = ("med", "p(N)") if spec.histogram else AGGREGATIONS[spec.kind]
    name = "p(N)" if expression.percentile is not None else expression.aggregation
    if name not in supported:
        raise ValueError(
            f"aggregation {expression.aggregation} does not apply to {spec.name} "
            f"(a {'histogram' if spec.histogram else spec.kind}; "
            f"supported: {', '.join(supported)})"
        )


def check_abortable(spec: MetricSpec, tags: Tags) -> None:
    """``ValueError`` unless a threshold on ``spec`` with ``tags`` can be judged while the load runs: from the
    history parts written so far (or the target's Prometheus, for the limiter's decision time), before any
    fault window is known (``faults.json`` is written after the experiment), so neither a ``phase`` nor a
    ``fault`` filter."""
    if not spec.live:
        raise ValueError(
            f"abortOnFail: {spec.name} is known only after the run (it needs the whole history, the "
            "experiment's journal or the whole run's host samples); remove abortOnFail"
        )
    known_later = sorted(key for key, _ in tags if key in ("phase", "fault"))
    if known_later:
        raise ValueError(f"abortOnFail: the {known_later[0]} of a request is known only after the experiment")


def parse_duration_s(value: object) -> float:
    """k6's ``delayAbortEval`` in seconds: a number or numeric string is milliseconds; otherwise a Go
    duration (``ns``, ``us``, ``ms``, ``s``, ``m``, ``h``, e.g. ``1m30s``) optionally led by days (``2d12h``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a duration (e.g. '10s')")
    if isinstance(value, int | float):
        return _non_negative(float(value) / 1000.0, value)
    text = value.strip()
    if _NUMBER_RE.fullmatch(text):
        return _non_negative(float(text) / 1000.0, value)
    days, d, rest = text.partition("d")
    if d and days.isdigit():
        return int(days) * 86400.0 + (_go_duration_s(rest) if rest else 0.0)
    return _go_duration_s(text)


def _non_negative(seconds: float, original: object) -> float:
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"{original!r} is not a non-negative duration")
    return seconds


def _go_duration_s(text: str) -> float:
    if text == "0":
        return 0.0
    if not _GO_DURATION_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration (e.g. '10s', '1m30s', '1d')")
    return sum(float(number) * _UNIT_S[unit] for number, unit in _GO_UNIT_RE.findall(text))


def parse_summary_key(text: str) -> tuple[str, Tags, str]:
    """``metric{tags}: aggregation`` (a summary key as a gate file names it) -> its parts, validated like a
    threshold's (``ValueError`` says what is wrong)."""
    key, colon, aggregation = text.rpartition(":")
    if not colon or not key.strip():
        raise ValueError(f"{text!r} is not 'metric{{tags}}: aggregation' (e.g. 'http_req_duration{{tier:pro}}: p(95)')")
    metric, tags = parse_metric_key(key.strip())
    spec = validate_submetric(metric, tags)
    name, percentile = _parse_aggregation(aggregation.strip())
    check_aggregation(spec, Expression(name, percentile, "<", 0.0))
    return metric, tags, name


# --- files ----------------------------------------------------------------------------------------------


def parse_thresholds(data: object, path: Path | str = "<thresholds>") -> tuple[Threshold, ...]:
    """Validate a ``{metric_key: [expression | {threshold, abortOnFail, delayAbortEval}]}`` mapping.

    Keys naming the same submetric with tags in another order are the same submetric (as in k6).
    ``ConfigError(path, "thresholds.<key>[i]", problem)`` on the first problem.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(path, "thresholds", "must be a mapping of metric names to lists of thresholds")
    thresholds: list[Threshold] = []
    for key, entries in data.items():
        where = f"thresholds.{key}"
        metric, tags = _submetric(path, where, key)
        if not isinstance(entries, list) or not entries:
            raise ConfigError(path, where, "must be a non-empty list of threshold expressions")
        thresholds += [_threshold(path, f"{where}[{i}]", metric, tags, entry) for i, entry in enumerate(entries)]
    return tuple(thresholds)


def _submetric(path: Path | str, where: str, key: object) -> tuple[str, Tags]:
    if not isinstance(key, str):
        raise ConfigError(path, where, "a metric name must be a string")
    try:
        metric, tags = parse_metric_key(key)
        validate_submetric(metric, tags)
    except ValueError as exc:
        raise ConfigError(path, where, str(exc)) from None
    return metric, tags


def _threshold(path: Path | str, where: str, metric: str, tags: Tags, entry: object) -> Threshold:
    source, abort_on_fail, delay = _entry_fields(path, where, entry)
    try:
        expression = parse_expression(source)
        check_aggregation(METRICS[metric], expression)
        if abort_on_fail:
            check_abortable(METRICS[metric], tags)
    except ValueError as exc:
        raise ConfigError(path, where, str(exc)) from None
    return Threshold(
        metric=metric,
        tags=tags,
        aggregation=expression.aggregation,
        percentile=expression.percentile,
        operator=expression.operator,
        value=expression.value,
        abort_on_fail=abort_on_fail,
        delay_abort_s=delay,
        source=source,
    )


def _entry_fields(path: Path | str, where: str, entry: object) -> tuple[str, bool, float | None]:
    """``(expression, abortOnFail, delayAbortEval in s)`` of a short (string) or long (mapping) entry."""
    if isinstance(entry, str):
        return entry, False, None
    if not isinstance(entry, Mapping):
        raise ConfigError(path, where, "must be an expression string or a mapping with 'threshold'")
    unknown = sorted(str(k) for k in entry if k not in LONG_FORM_KEYS)
    if unknown:
        raise ConfigError(path, f"{where}.{unknown[0]}", f"unknown key (expected {', '.join(sorted(LONG_FORM_KEYS))})")
    source = entry.get("threshold")
    if not isinstance(source, str):
        raise ConfigError(path, f"{where}.threshold", "required: the threshold expression as a string")
    abort = entry.get("abortOnFail", False)
    if not isinstance(abort, bool):
        raise ConfigError(path, f"{where}.abortOnFail", "must be true or false")
    delay = entry.get("delayAbortEval")
    try:
        delay_s = None if delay is None else parse_duration_s(delay)
    except ValueError as exc:
        raise ConfigError(path, f"{where}.delayAbortEval", str(exc)) from None
    return source, abort, delay_s


def load_threshold_file(path: Path) -> tuple[Threshold, ...]:
    """Thresholds from a YAML (or JSON) file whose only top-level key is ``thresholds`` (k6's option name)."""
    data = read_yaml(path)
    if not isinstance(data, Mapping) or "thresholds" not in data:
        raise ConfigError(path, "thresholds", "required: a top-level 'thresholds' mapping")
    extra = sorted(str(k) for k in data if k != "thresholds")
    if extra:
        raise ConfigError(path, extra[0], "unknown top-level key (expected only 'thresholds')")
    return parse_thresholds(data["thresholds"], path)
