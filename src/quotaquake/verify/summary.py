"""The run's summary (``summary.parquet``) and the k6-style thresholds judged against it.

One row per (metric, tags, aggregation), with its sample size and one-sided bounds at ``slo.confidence``
(``quotaquake.gate.summary``). Computed after the checks, from the loaded run and the verdicts' evidence:

* request metrics, from the history, for every combination of the tags ``endpoint``, ``tier``, ``phase``
  (``run``, ``before``, ``during``, ``after``: ``verify.data.phases`` without the fault's name) and
  ``fault`` (the fault's name, on ``during``/``after`` rows only, so only beside a ``phase``), and without
  tags: ``http_req_duration`` (from the actual send, ms) and ``qq_req_duration_intended`` (from the
  intended send: coordinated omission corrected) over responses after the warm-up, as the latency check
  takes them; ``qq_generator_lag_ms`` (sent - intended) after the warm-up; ``http_req_failed`` (5xx or no
  response), ``qq_rejected_ratio`` (429) and ``http_reqs`` (count, and per second of the load) over
  every request;
* ``qq_limiter_decision_ms``: ``med``/``p(N)`` of the limiter's histogram in the Prometheus snapshot, the
  bounds being bucket edges (the p50/p99 values are Prometheus' own estimates, as the limiter check shows);
* ``qq_over_admitted_cost``, ``qq_false_rejections``: the quota verdict's totals, per tier when its
  consumer table lists every offender; exact when the verdict decided, a lower bound (``high`` infinite)
  when it is unknown (Kong's model: the requests its windows prove at least, exact only when it passed);
* ``qq_fault_availability``, ``qq_recovery_s``: per fault and over all faults, from the degradation verdict
  (an unobservable recovery makes the longest recovery a lower bound);
* ``qq_host_other_cpu``, ``qq_host_cpu_pressure``: the machine over the load (``host.jsonl``), which the
  gate uses to tell a slower system from a busier machine; ``iterations_dropped`` for k6 runs.

A metric without rows says why (``RunSummary.missing``): not-applicable when the target lacks the data
source, unknown otherwise. Each k6-style threshold of the thresholds file becomes one verdict named
``threshold <submetric>: <expression>`` (``gate.summary.evaluate``: pass only when the bound proves it).
"""

from __future__ import annotations

import itertools
import math
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from quotaquake.gate.expressions import METRICS, Tags, Threshold
from quotaquake.gate.summary import (
    SummaryRow,
    ThresholdResult,
    counter_rows,
    evaluate,
    gauge_rows,
    histogram_rows,
    needed_aggregations,
    rate_rows,
    sorted_trend_rows,
    summary_frame,
    write_summary,
)
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import AbortRecord
from quotaquake.verify.checks.evidence import MAX_CONSUMERS
from quotaquake.verify.data.contention import host_window
from quotaquake.verify.data.outcomes import error_mask
from quotaquake.verify.data.phases import phase_codes, phase_labels
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.data.warmup import NS_PER_S, warmup
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import NOT_APPLICABLE, Status, Verdict

SUMMARY_CHECK = "summary"
THRESHOLD_PREFIX = "threshold "
REQUEST_DIMENSIONS: tuple[str, ...] = ("endpoint", "tier", "phase")
QUOTA_CHECK = "quota-accuracy"
DEGRADATION_CHECK = "degradation"
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class RunSummary:
    """The summary table and, per metric without rows, ``(status, reason)``: ``not-applicable`` when the
    target lacks the data source, ``unknown`` when the run did not establish it."""

    frame: pd.DataFrame
    missing: dict[str, tuple[Status, str]] = field(default_factory=dict)


# --- tags of request rows ---------------------------------------------------------------------------------


def tag_value(text: str) -> str:
    """``text`` usable as a tag value (no ``,``, ``{`` or ``}``; never empty)."""
    cleaned = "".join("_" if c in ",{}" else c for c in text.strip())
    return cleaned or "-"


@dataclass(frozen=True)
class RequestGroups:
    """Requests split by endpoint x tier x phase: ``index`` is each history row's group, ``tags`` each
    group's tags (``fault`` only in ``during``/``after`` phases; a key is absent where the row has none)."""

    index: I64
    tags: list[dict[str, str]]

    @property
    def count(self) -> int:
        return len(self.tags)

    def keys(self) -> dict[Tags, list[int]]:
        """Every tag combination the summary carries -> the groups it spans (``()``: all of them): subsets
        of ``REQUEST_DIMENSIONS``, each with ``fault`` added when it includes ``phase``."""
        keys: dict[Tags, list[int]] = {}
        for subset in tag_subsets():
            for group, tags in enumerate(self.tags):
                if all(key in tags for key in subset):
                    keys.setdefault(tuple(sorted((key, tags[key]) for key in subset)), []).append(group)
        return keys


def tag_subsets() -> Iterator[tuple[str, ...]]:
    """The tag key sets of request rows: every subset of endpoint, tier, phase; with phase, also + fault."""
    for size in range(len(REQUEST_DIMENSIONS) + 1):
        for subset in itertools.combinations(REQUEST_DIMENSIONS, size):
            yield subset
            if "phase" in subset:
                yield (*subset, "fault")


def request_groups(run: RunData) -> RequestGroups:
    """The history's rows grouped by endpoint, tier and phase (``verify.data.phases``)."""
    history = run.history
    endpoints, tiers = history["endpoint"].cat.categories, history["tier"].cat.categories
    labels = phase_labels(run.faults)
    endpoint = np.asarray(history["endpoint"].cat.codes, dtype=np.int64)
    tier = np.asarray(history["tier"].cat.codes, dtype=np.int64)
    phase = phase_codes(np.asarray(history["sent_ns"]), run.faults).astype(np.int64)
    combined = ((endpoint + 1) * (len(tiers) + 1) + tier + 1) * len(labels) + phase
    codes, index = np.unique(combined, return_inverse=True)
    tags: list[dict[str, str]] = []
    for code in codes.tolist():
        rest, p = divmod(int(code), len(labels))
        e, t = divmod(rest, len(tiers) + 1)
        group: dict[str, str] = {}
        if e > 0:
            group["endpoint"] = tag_value(str(endpoints[e - 1]))
        if t > 0:
            group["tier"] = tag_value(str(tiers[t - 1]))
        kind, _, fault = labels[p].partition(":")
        group["phase"] = kind
        if fault:
            group["fault"] = tag_value(fault)
        tags.append(group)
    return RequestGroups(np.asarray(index, dtype=np.int64).ravel(), tags)


# --- request metrics --------------------------------------------------------------------------------------


def request_rows(run: RunData, thresholds: Thresholds) -> list[SummaryRow]:
    """The history's metrics for every tag combination (module docstring)."""
    history = run.history
    if len(history) == 0:
        return []
    groups = request_groups(run)
    keys = groups.keys()
    confidence = thresholds.slo.confidence
    status = np.asarray(history["status"])
    sent = np.asarray(history["sent_ns"])
    intended = np.asarray(history["intended_ns"])
    latency = np.asarray(history["latency_ms"], dtype=np.float64)
    steady = sent >= warmup(run, thresholds.slo.warmup_s).end_ns
    responded = steady & (status != 0)
    rows: list[SummaryRow] = []
    chosen = thresholds.thresholds
    trends: list[tuple[str, F64, BoolArray]] = [
        ("http_req_duration", latency, responded),
        ("qq_req_duration_intended", (sent - intended) / 1e6 + latency, responded),
        ("qq_generator_lag_ms", (sent - intended) / 1e6, steady),
    ]
    for metric, values, mask in trends:
        aggregations = needed_aggregations(chosen, metric)
        rows += trend_by_key(groups, keys, metric, values, mask, aggregations, confidence)
    every = np.ones(len(status), dtype=np.bool_)
    rows += rate_by_key(groups, keys, "http_req_failed", error_mask(status), every, confidence)
    rows += rate_by_key(groups, keys, "qq_rejected_ratio", status == 429, every, confidence)
    counts = np.bincount(groups.index, minlength=groups.count)
    duration = load_duration_s(run)
    for tags, members in keys.items():
        total = int(counts[members].sum())
        rows += counter_rows("http_reqs", tags, total, total, duration)
    return rows


def load_duration_s(run: RunData) -> float | None:
    """Seconds the load ran: the engine's start to end, else the first intended to the last send, else
    the planned duration (``None`` when none is known or it is not positive)."""
    engine = run.engine
    if engine is not None and engine.started_at is not None and engine.ended_at is not None:
        seconds = (engine.ended_at - engine.started_at).total_seconds()
        if seconds > 0:
            return seconds
    history = run.history
    if len(history) > 1:
        span = (int(np.asarray(history["sent_ns"]).max()) - int(np.asarray(history["intended_ns"]).min())) / NS_PER_S
        if span > 0:
            return span
    return run.info.duration_s if run.info.duration_s and run.info.duration_s > 0 else None


def trend_by_key(
    groups: RequestGroups,
    keys: Mapping[Tags, list[int]],
    metric: str,
    values: F64,
    mask: BoolArray,
    aggregations: Sequence[str],
    confidence: float,
) -> list[SummaryRow]:
    """Trend rows of ``values`` (rows where ``mask``, NaN left out) for every key: each group's values are
    sorted once, a key's are its groups' sorted runs merged."""
    keep = mask & ~np.isnan(values)
    index, kept = groups.index[keep], values[keep]
    order = np.lexsort((kept, index))
    ordered = kept[order]
    starts = np.zeros(groups.count + 1, dtype=np.int64)
    np.cumsum(np.bincount(index, minlength=groups.count), out=starts[1:])
    rows: list[SummaryRow] = []
    for tags, members in keys.items():
        pieces = [ordered[starts[g] : starts[g + 1]] for g in members if starts[g + 1] > starts[g]]
        if len(pieces) > 1:
            merged = np.sort(np.concatenate(pieces), kind="stable")  # timsort: merging sorted runs
        else:
            merged = pieces[0] if pieces else np.zeros(0)
        rows += sorted_trend_rows(metric, tags, merged, aggregations, confidence)
    return rows


def rate_by_key(
    groups: RequestGroups,
    keys: Mapping[Tags, list[int]],
    metric: str,
    hits: BoolArray,
    mask: BoolArray,
    confidence: float,
) -> list[SummaryRow]:
    """Rate rows (``hits`` of the rows where ``mask``) for every key, with Clopper–Pearson bounds."""
    n = np.bincount(groups.index[mask], minlength=groups.count)
    k = np.bincount(groups.index[mask & hits], minlength=groups.count)
    rows: list[SummaryRow] = []
    for tags, members in keys.items():
        rows += rate_rows(metric, tags, int(k[members].sum()), int(n[members].sum()), confidence)
    return rows


# --- metrics from the Prometheus snapshot, the verdicts and the host ------------------------------------


def limiter_rows(run: RunData, thresholds: Thresholds) -> tuple[list[SummaryRow], tuple[Status, str] | None]:
    """``qq_limiter_decision_ms`` from the snapshot's histogram, or why there are none."""
    snapshot = run.prometheus
    if snapshot is None and run.info.prometheus_url is None:
        return [], (NOT_APPLICABLE, "the target declares no Prometheus: the limiter's decision time is not measured")
    if snapshot is None:
        return [], ("unknown", "no Prometheus snapshot (prometheus.json) in the run folder")
    if snapshot.error:
        return [], ("unknown", f"the Prometheus snapshot failed: {snapshot.error}")
    metric = "qq_limiter_decision_ms"
    aggregations = needed_aggregations(thresholds.thresholds, metric)
    estimates = {
        name: value
        for name, value in (("p(99)", snapshot.decision_p99_ms), ("med", snapshot.decision_p50_ms))
        if value is not None and math.isfinite(value)
    }
    if snapshot.decision_buckets:
        buckets = {float(le) * 1e3: count for le, count in snapshot.decision_buckets.items()}
        rows = histogram_rows(metric, {}, buckets, aggregations, thresholds.slo.confidence, estimates)
        if rows:
            return rows, None
    if estimates:  # point estimates without bucket counts: no bounds
        n = round(snapshot.decision_count or 0)
        return [SummaryRow(metric, (), name, v, n, -math.inf, math.inf, thresholds.slo.confidence)
                for name, v in estimates.items()], None  # fmt: skip
    return [], ("unknown", "no limiter decisions in the snapshot's histogram")


def _verdict(verdicts: Iterable[Verdict], check: str) -> Verdict | None:
    return next((v for v in verdicts if v.check == check), None)


def quota_rows(run: RunData, verdicts: Sequence[Verdict]) -> tuple[list[SummaryRow], dict[str, tuple[Status, str]]]:
    """Over-admitted cost and false 429s from the quota verdict (module docstring). Kong's model counts
    requests per window and proves at least ``min_excess_admissions`` / ``min_false_rejections`` in each: the
    sums are exact when the verdict passed (every window proven) and lower bounds otherwise."""
    verdict = _verdict(verdicts, QUOTA_CHECK)
    evidence = verdict.evidence if verdict is not None else None
    names = ("qq_over_admitted_cost", "qq_false_rejections")
    table = evidence.get("consumers") if isinstance(evidence, dict) else None
    consumers = [row for row in table if isinstance(row, dict)] if isinstance(table, list) else []
    if verdict is None or not isinstance(evidence, dict):
        return [], {name: ("unknown", "the quota check did not run") for name in names}
    if "over_admitted_cost" in evidence:  # token bucket, fixed window: totals and per consumer
        keys, exact = ("over_admitted_cost", "false_rejections"), verdict.status != "unknown"
        totals = [float(str(evidence.get(key) or 0.0)) for key in keys]
        listed = [[(str(row.get("tier")), float(str(row.get(key) or 0.0))) for row in consumers] for key in keys]
    elif consumers and all("windows" in row for row in consumers):  # Kong: lower bounds per window
        keys, exact = ("min_excess_admissions", "min_false_rejections"), verdict.status == "pass"
        listed = [[(str(row.get("tier")), _window_total(row, key)) for row in consumers] for key in keys]
        totals = [sum(value for _, value in pairs) for pairs in listed]
        if len(consumers) >= MAX_CONSUMERS and not exact:
            listed = [[], []]  # the evidence may list only some counters: totals only
    else:
        return [], {name: ("unknown", f"the quota check: {verdict.summary}") for name in names}
    observed = len(run.history)
    tiers = sorted(tag_value(str(t)) for t in run.history["tier"].cat.categories)
    rows: list[SummaryRow] = []
    for metric, total, pairs in zip(names, totals, listed, strict=True):
        rows.append(_bounded_count(metric, (), total, observed, exact))
        if not math.isclose(sum(value for _, value in pairs), total, rel_tol=1e-9, abs_tol=1e-9):
            continue  # the evidence lists only some offenders: no per-tier breakdown
        for tier in tiers:
            value = sum(v for t, v in pairs if tag_value(t) == tier)
            rows.append(_bounded_count(metric, (("tier", tier),), value, observed, exact))
    return rows, {}


def _window_total(row: dict[object, object], key: str) -> float:
    windows = row.get("windows")
    if not isinstance(windows, list):
        return 0.0
    return float(sum(float(str(w.get(key) or 0)) for w in windows if isinstance(w, dict)))


def _bounded_count(metric: str, tags: Tags, value: float, observed: int, exact: bool) -> SummaryRow:
    """A count row, exact when its verdict decided it; else a lower bound (``high`` infinite)."""
    (row,) = counter_rows(metric, tags, value, observed)
    if not exact:
        return SummaryRow(row.metric, row.tags, row.aggregation, row.value, row.n, row.value, math.inf, 1.0)
    return row


def fault_rows(
    run: RunData, verdicts: Sequence[Verdict], confidence: float
) -> tuple[list[SummaryRow], dict[str, tuple[Status, str]]]:
    """Availability during each fault and recovery after it, from the degradation verdict."""
    names = ("qq_fault_availability", "qq_recovery_s")
    if not run.chaos_ran:
        return [], {name: (NOT_APPLICABLE, "the run had no experiment: no fault windows") for name in names}
    verdict = _verdict(verdicts, DEGRADATION_CHECK)
    faults = verdict.evidence if verdict is not None else None
    if verdict is None or not isinstance(faults, list):
        reason = "the degradation check did not run" if verdict is None else f"degradation: {verdict.summary}"
        return [], {name: ("unknown", reason) for name in names}
    if not faults:
        return [], {name: ("unknown", "the experiment left no fault window") for name in names}
    rows: list[SummaryRow] = []
    served_total = requests_total = 0
    recoveries: list[float | None] = []
    for fault in faults:
        tags = (("fault", tag_value(str(fault.get("fault")))),)
        requests = int(str(fault.get("requests") or 0))
        availability = fault.get("availability")
        served = round(float(str(availability)) * requests) if availability is not None else 0
        rows += rate_rows(
            "qq_fault_availability", tags, served, requests if availability is not None else 0, confidence
        )
        served_total += served if availability is not None else 0
        requests_total += requests if availability is not None else 0
        recovery = fault.get("recovery_s")
        recoveries.append(None if recovery is None else float(str(recovery)))
        rows.append(_recovery_row(tags, [recoveries[-1]]))
    rows += rate_rows("qq_fault_availability", (), served_total, requests_total, confidence)
    rows.append(_recovery_row((), recoveries))
    return rows, {}


def _recovery_row(tags: Tags, recoveries: list[float | None]) -> SummaryRow:
    """The longest recovery (s); an unobservable one makes it a lower bound (``high`` infinite), none
    observed at all makes it NaN with ``n = 0``."""
    known = [r for r in recoveries if r is not None]
    if not known:
        return SummaryRow("qq_recovery_s", tags, "value", math.nan, 0, math.nan, math.nan, 1.0)
    (row,) = gauge_rows("qq_recovery_s", tags, max(known), len(recoveries))
    if len(known) < len(recoveries):
        return SummaryRow(row.metric, row.tags, row.aggregation, row.value, row.n, row.value, math.inf, 1.0)
    return row


def host_rows(run: RunData, thresholds: Thresholds) -> tuple[list[SummaryRow], dict[str, tuple[Status, str]]]:
    """The machine over the load: other processes' CPU (cores) and CPU pressure (mean PSI share)."""
    names = ("qq_host_other_cpu", "qq_host_cpu_pressure")
    sent = np.asarray(run.history["sent_ns"])
    if not run.host or len(sent) == 0:
        return [], {name: (NOT_APPLICABLE, "no host samples (host.jsonl)") for name in names}
    start, end = float(sent.min()) / NS_PER_S, float(sent.max()) / NS_PER_S
    window = host_window(run.host, start, end, thresholds.contention)
    missing: dict[str, tuple[Status, str]] = {}
    rows: list[SummaryRow] = []
    if window.others_cpu is None:
        missing[names[0]] = ("unknown", "the stack's processes are not attributed: other processes' CPU unknown")
    else:
        rows += gauge_rows(names[0], (), window.others_cpu, window.samples)
    pressure = [s.psi_some for s in run.host if s.psi_some is not None and start < s.t and s.t - s.interval_s < end]
    if pressure:
        rows += gauge_rows(names[1], (), float(np.mean(pressure)), len(pressure))
    else:
        missing[names[1]] = (NOT_APPLICABLE, "the kernel reports no CPU pressure (PSI)")
    return rows, missing


def dropped_rows(run: RunData) -> tuple[list[SummaryRow], dict[str, tuple[Status, str]]]:
    """``iterations_dropped`` of a k6 run (Locust never drops: it sends late, see ``qq_generator_lag_ms``)."""
    engine = run.engine
    if engine is None or engine.dropped_iterations is None:
        reason = "the engine drops no scheduled request (it sends late instead: see qq_generator_lag_ms)"
        return [], {"iterations_dropped": (NOT_APPLICABLE, reason)}
    rows = counter_rows("iterations_dropped", (), engine.dropped_iterations, len(run.history), load_duration_s(run))
    return rows, {}


# --- the summary and the thresholds ------------------------------------------------------------------------


def summarize(run: RunData, thresholds: Thresholds, verdicts: Sequence[Verdict]) -> RunSummary:
    """The summary of a loaded run, after its checks (``verdicts``)."""
    rows = request_rows(run, thresholds)
    missing: dict[str, tuple[Status, str]] = {}
    if not rows:
        for name, spec in METRICS.items():
            if spec.tag_keys and not spec.environment and spec.live:
                missing[name] = ("unknown", "no requests in the history")
    limiter, why = limiter_rows(run, thresholds)
    rows += limiter
    if why is not None:
        missing["qq_limiter_decision_ms"] = why
    for part, reasons in (
        quota_rows(run, verdicts),
        fault_rows(run, verdicts, thresholds.slo.confidence),
        host_rows(run, thresholds),
        dropped_rows(run),
    ):
        rows += part
        missing.update(reasons)
    return RunSummary(summary_frame(rows), missing)


def threshold_verdicts(
    summary: RunSummary, thresholds: Sequence[Threshold], aborted: AbortRecord | None = None
) -> list[Verdict]:
    """One verdict per k6-style threshold (module docstring). The threshold that aborted the run fails
    even if the whole run's bound no longer proves the violation: it was proven while the load ran."""
    return [_threshold_verdict(result, summary, aborted) for result in evaluate(thresholds, summary.frame)]


def _threshold_verdict(result: ThresholdResult, summary: RunSummary, aborted: AbortRecord | None) -> Verdict:
    threshold = result.threshold
    evidence: dict[str, object] = {
        "metric": threshold.metric,
        "tags": dict(threshold.tags),
        "aggregation": threshold.aggregation,
        "operator": threshold.operator,
        "limit": threshold.value,
        "value": result.value,
        "low": result.low,
        "high": result.high,
        "n": result.n,
        "needed_n": result.needed_n,
        "abort_on_fail": threshold.abort_on_fail,
    }
    status: Status = result.status
    text = result.reason
    if result.value is None and threshold.metric in summary.missing:
        status, text = summary.missing[threshold.metric]
    if aborted is not None and aborted.threshold == threshold.label:
        evidence["aborted"] = aborted.model_dump(mode="json")
        if status != "fail":
            status = "fail"
            text = f"proven broken after {aborted.after_s:.1f} s of load, which was stopped: {aborted.reason}"
    return Verdict(THRESHOLD_PREFIX + threshold.label, status, text, evidence)


def summarize_run(
    run: RunData, thresholds: Thresholds, verdicts: Sequence[Verdict], folder: RunFolder
) -> list[Verdict]:
    """Write the run's ``summary.parquet`` and return the verdicts of its k6-style thresholds. A crash here
    is an unknown ``summary`` verdict (and an unknown verdict for every threshold), never a pass."""
    try:
        summary = summarize(run, thresholds, verdicts)
        write_summary(summary.frame, folder.summary_file)
    except Exception as exc:  # a crash is unknown, never pass
        where = traceback.extract_tb(exc.__traceback__)[-1]
        reason = f"the summary could not be computed: {type(exc).__name__}: {exc}"
        crashed = Verdict(
            SUMMARY_CHECK, "unknown", reason, {"exception": repr(exc), "at": f"{where.filename}:{where.lineno}"}
        )
        return [crashed, *(Verdict(THRESHOLD_PREFIX + t.label, "unknown", reason) for t in thresholds.thresholds)]
    return threshold_verdicts(summary, thresholds.thresholds, run.info.aborted)
