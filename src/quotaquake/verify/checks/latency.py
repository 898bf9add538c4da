"""Latency: p50/p95/p99 per endpoint, tier and phase, and the SLOs of ``thresholds.slo``.

Two latencies per request with a response (status != 0; timeouts belong to the error budget), both
reported for every group: ``actual_ms = latency`` (from the actual send: the system's latency) and
``corrected_ms = (sent - intended) + latency`` (from the intended send: what a user on the schedule
saw, free of coordinated omission). Gateway overhead = ``latency - upstream_ms`` where the gateway
reported the upstream time. Percentiles are exact nearest-rank order statistics (``percentiles``).

The SLO (``slo.latency``): every group endpoint x tier x phase after the warm-up (``slo.warmup_s``) has
p95 < its target (``LatencySlo.target_ms``; groups inside fault windows only when ``phases.during`` is
given). The SLO is judged on the corrected latency, or on the actual latency when the generator was late
(lag p99 > ``generator.max_lag_p99_ms``): the lag is then the generator's, not the system's. Each group is
judged with one-sided ``slo.confidence`` order-statistic bounds (``stats.judge_percentile``): pass when
the upper bound is under the target, fail when the lower bound is at or over it, else unknown with the
sample size that would decide. A group smaller than ``stats.min_n_for_upper_bound`` (59 for p95 at 95 %)
could not pass whatever it held: it is *too small to judge* (listed; it can still fail).

A failing group is not the system's fault, and becomes unknown, when the generator's CPU was the limit
(it inflates the actual latency too), or when the machine running the stack was saturated for at least
5 % of the group's phase (``verify.data.contention``) and the violation is within what contention
explains: the median is under the target and the p95's lower bound is under target + the scheduler delay
of ``contention.request_hops`` waits (one wait, the generator's own, for a remote target).

Verdict: fail if any group fails; else pass only if every judged group passes and the SLO's scope is
covered: each endpoint (and each tier or endpoint with an override) that received requests has a group
that passed; else unknown, saying what was not judged and why. The limiter's decision time is not in the
history: ``check_limiter_latency`` judges its histogram from the Prometheus snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from quotaquake.runfolder.models import PrometheusSnapshot
from quotaquake.stats import Judgement, judge_percentile, min_n_for_upper_bound, needed_percentile_n
from quotaquake.stats import order_statistic_ranks as ranks
from quotaquake.verify.checks.generator import GeneratorHealth, generator_health
from quotaquake.verify.checks.percentiles import exact_percentiles
from quotaquake.verify.data.contention import HostWindow, host_window
from quotaquake.verify.data.grouping import group_rows
from quotaquake.verify.data.phases import phase_codes, phase_labels
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.data.warmup import NS_PER_S, Warmup
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import NOT_APPLICABLE, Status, Verdict

CHECK = "latency"
LIMITER_CHECK = "limiter-latency"
SLO_Q = 95.0
LIMITER_Q = 99.0
KONG_LATENCY = "kong_latency_ms"  # Kong's prometheus plugin: latency added by Kong and its plugins (exporter.lua:113)
F64 = npt.NDArray[np.float64]


# --- the proxy latency SLO --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What every group's judgment needs besides its own latencies."""

    thresholds: Thresholds
    health: GeneratorHealth
    basis: str  # "corrected" or "actual"
    phase_hosts: dict[str, HostWindow]

    @property
    def hops(self) -> int:
        remote = any(w.stack_on_host is False for w in self.phase_hosts.values())
        return 1 if remote else self.thresholds.contention.request_hops


def check_latency(run: RunData, thresholds: Thresholds) -> Verdict:
    health = generator_health(run, thresholds)
    warm = health.warmup
    basis = "actual" if health.late else "corrected"
    context = Context(thresholds, health, basis, _phase_hosts(run, thresholds, warm))
    groups: list[dict[str, object]] = []
    overhead: list[dict[str, object]] = []
    for endpoint in _by_endpoint(run, warm, context):
        groups += endpoint.groups
        if endpoint.overhead is not None:
            overhead.append(endpoint.overhead)
    evidence: dict[str, object] = {
        "judged_on": basis,
        "why": _basis_reason(health, thresholds),
        "warmup": warm.evidence(),
        "confidence": thresholds.slo.confidence,
        "groups": groups,
        "gateway_overhead_ms": overhead,
        "host": {phase: window.evidence() for phase, window in context.phase_hosts.items()},
    }
    return _verdict(groups, thresholds, basis, evidence)


def _basis_reason(health: GeneratorHealth, thresholds: Thresholds) -> str:
    limit = thresholds.generator.max_lag_p99_ms
    if health.late:
        return (
            f"the generator was late (lag p99 {health.lag_p99_ms} ms > {limit:g} ms): judged from the actual "
            "send; the corrected latency (from the intended send) is reported beside it"
        )
    return (
        f"the generator kept its schedule (lag p99 {health.lag_p99_ms} ms <= {limit:g} ms): judged from the "
        "intended send"
    )


def _phase_hosts(run: RunData, thresholds: Thresholds, warm: Warmup) -> dict[str, HostWindow]:
    """Per phase label, the host samples over the span of its rows after the warm-up (rows are in send
    order and phases follow each other in time, so each phase is one run of rows)."""
    sent = np.asarray(run.history["sent_ns"])
    sent = sent[int(np.searchsorted(sent, warm.end_ns, side="left")) :]
    codes = phase_codes(sent, run.faults)
    windows: dict[str, HostWindow] = {}
    for code, label in enumerate(phase_labels(run.faults)):
        lo, hi = np.searchsorted(codes, code, side="left"), np.searchsorted(codes, code, side="right")
        if hi > lo:
            start, end = float(sent[lo]) / NS_PER_S, float(sent[hi - 1]) / NS_PER_S
            windows[label] = host_window(run.host, start, end, thresholds.contention)
    return windows


def judge_group(values: F64, target: float, phase: str, context: Context) -> dict[str, object]:
    """One group's judgment against its target, with the contention rule applied to a failure."""
    confidence = context.thresholds.slo.confidence
    judgement = judge_percentile(values, SLO_Q, target, confidence)
    row: dict[str, object] = {
        "target_ms": target,
        "status": judgement.status,
        "p95_bounds_ms": [_finite(judgement.low), _finite(judgement.high)],
    }
    if judgement.status == "unknown":
        row["needed_n"] = judgement.needed_n
        if judgement.n < min_n_for_upper_bound(SLO_Q, confidence):
            row["status"] = "too-small"
    if judgement.status == "fail":
        excuse = _excuse(values, target, judgement, context.phase_hosts.get(phase), context)
        if excuse is not None:
            row["status"], row["excused"] = "unknown", excuse
    return row


def _excuse(values: F64, target: float, judgement: Judgement, host: HostWindow | None, context: Context) -> str | None:
    """Why a proven miss may not be the system's doing, or ``None`` when it is."""
    if context.health.party == "generator":
        return f"the generator's CPU was the limit ({context.health.blame})"
    if host is None or not host.measured or not host.saturated_for(SLO_Q):
        return None
    median = judge_percentile(values, 50.0, target, context.thresholds.slo.confidence)
    allowance = host.scheduler_allowance_ms(SLO_Q, context.hops)
    if median.status == "fail" or allowance is None or judgement.low >= target + allowance:
        return None
    return (
        f"the machine was saturated in {host.saturated} of {host.samples} s ({', '.join(host.reasons)}): the "
        f"median is under the target and the p95 lower bound {judgement.low:.2f} ms is within target + "
        f"{context.hops} scheduler waits ({allowance:g} ms)"
    )


def _verdict(
    groups: list[dict[str, object]], thresholds: Thresholds, basis: str, evidence: dict[str, object]
) -> Verdict:
    judged = [g for g in groups if g.get("status") is not None]
    by_status: dict[str, list[dict[str, object]]] = {}
    for group in judged:
        by_status.setdefault(str(group["status"]), []).append(group)
    uncovered = _uncovered(judged, thresholds)
    evidence["uncovered"] = uncovered
    not_judged = [_name(g) + f" ({g['status']}, {g['count']} responses)" for g in judged if g["status"] != "pass"]
    evidence["not_judged"] = not_judged
    status: Status
    if "fail" in by_status:
        worst = max(by_status["fail"], key=lambda g: float(g["p95_bounds_ms"][0]))  # type: ignore[index]
        status = "fail"
        summary = (
            f"{len(by_status['fail'])} group(s) over their p95 target ({basis} latency): {_name(worst)} p95 >= "
            f"{worst['p95_bounds_ms'][0]} ms (target {worst['target_ms']:g} ms, {worst['count']} responses)"  # type: ignore[index]
        )
    elif not by_status.get("pass"):
        status, summary = "unknown", "no group could be judged: " + (", ".join(not_judged[:5]) or "no responses")
    elif by_status.get("unknown") or uncovered:
        status = "unknown"
        summary = f"{len(by_status['pass'])} group(s) pass, not proven for: " + "; ".join(
            [*(_name(g) + _why(g) for g in by_status.get("unknown", [])[:3]), *uncovered[:3]]
        )
    else:
        small = len(by_status.get("too-small", []))
        status = "pass"
        summary = f"all {len(by_status['pass'])} judged group(s) p95 under target ({basis} latency)"
        if small:
            summary += f"; {small} group(s) too small to judge (see not_judged)"
    warm = evidence["warmup"]
    assert isinstance(warm, dict)
    summary += f"; first {warm['warmup_s']:g} s ({warm['excluded_rows']} requests) left out as warm-up"
    return Verdict(CHECK, status, summary, evidence)


def _uncovered(judged: list[dict[str, object]], thresholds: Thresholds) -> list[str]:
    """Endpoints, and tiers or endpoints with their own target, with requests but no passing group."""
    latency = thresholds.slo.latency
    scope: dict[str, set[str]] = {"endpoint": set(), "tier": set()}
    covered: dict[str, set[str]] = {"endpoint": set(), "tier": set()}
    for group in judged:
        endpoint, tier = str(group["endpoint"]), str(group["tier"])
        scope["endpoint"].add(endpoint)
        if tier in latency.tiers:
            scope["tier"].add(tier)
        if group["status"] == "pass":
            covered["endpoint"].add(endpoint)
            covered["tier"].add(tier)
    return [f"{kind} {name}: no group passed" for kind in scope for name in sorted(scope[kind] - covered[kind])]


def _why(group: dict[str, object]) -> str:
    if "excused" in group:
        return f" (missed its target, but {group['excused']})"
    return f" (undecided at {group['count']} responses; needs {group.get('needed_n')})"


def _name(group: dict[str, object]) -> str:
    return f"{group['endpoint']} {group['tier']} {group['phase']}"


def _finite(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else round(value, 3)


@dataclass(frozen=True)
class EndpointLatency:
    """One endpoint's percentile table rows (per tier x phase, with their SLO judgments) and gateway
    overhead percentiles."""

    endpoint: str
    groups: list[dict[str, object]]
    overhead: dict[str, object] | None


def _by_endpoint(run: RunData, warm: Warmup, context: Context) -> Iterator[EndpointLatency]:
    """Responded rows (status != 0) after the warm-up split by endpoint x tier x phase, one endpoint at a
    time (a sequential scatter per endpoint, so only one endpoint's latencies are held at a time)."""
    history = run.history
    labels = phase_labels(run.faults)
    endpoints = history["endpoint"].cat.categories
    tiers = history["tier"].cat.categories
    n_t, n_p = len(tiers) + 1, len(labels)
    sent = np.asarray(history["sent_ns"])
    key = np.asarray(history["endpoint"].cat.codes, dtype=np.int32) + 1
    key *= n_t
    key += np.asarray(history["tier"].cat.codes, dtype=np.int32) + 1
    key *= n_p
    key += phase_codes(sent, run.faults)
    key[(np.asarray(history["status"]) == 0) | (sent < warm.end_ns)] = -1
    groups = group_rows(key, np.zeros(0, dtype=np.int64), (len(endpoints) + 1) * n_t * n_p)
    latency_slo = context.thresholds.slo.latency
    for code_e in range(len(endpoints) + 1):
        first, last = code_e * n_t * n_p, (code_e + 1) * n_t * n_p
        if groups.starts[last] == groups.starts[first]:
            continue
        actual, corrected, overhead = _scatter_latency(
            key,
            groups.starts,
            first,
            last,
            np.asarray(history["latency_ms"], dtype=np.float64),
            sent,
            np.asarray(history["intended_ns"]),
            np.asarray(history["upstream_ms"], dtype=np.float64),
        )
        name = str(endpoints[code_e - 1]) if code_e else None
        table: list[dict[str, object]] = []
        for g in range(first, last):
            lo, hi = groups.starts[g] - groups.starts[first], groups.starts[g + 1] - groups.starts[first]
            if hi == lo:
                continue
            code_t, code_p = divmod(g - first, n_p)
            tier = str(tiers[code_t - 1]) if code_t else None
            phase = labels[code_p]
            judged = corrected[lo:hi] if context.basis == "corrected" else actual[lo:hi]
            target = latency_slo.target_ms(name, tier, phase)
            row: dict[str, object] = {"endpoint": name, "tier": tier, "phase": phase, "count": int(hi - lo)}
            row.update(judge_group(judged, target, phase, context) if target is not None else {"status": None})
            row["corrected_ms"] = exact_percentiles(corrected[lo:hi], in_place=True)
            row["actual_ms"] = exact_percentiles(actual[lo:hi], in_place=True)
            table.append(row)
        del actual, corrected
        summary: dict[str, object] | None = None
        if len(overhead):
            summary = {"endpoint": name or "", "count": len(overhead), **exact_percentiles(overhead, in_place=True)}
        yield EndpointLatency(name or "", table, summary)


# --- the limiter's decision time ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HistogramJudgement:
    """A percentile of a cumulative histogram against a limit: ``low``/``high`` are bucket edges (ms)
    bounding the percentile at the confidence (``None``: no bound at this count)."""

    status: Status
    n: int
    within: int  # decisions <= the largest edge at or under the limit
    low_ms: float | None
    high_ms: float | None
    needed_n: int | None = None


def judge_histogram(
    buckets: dict[str, float], q: float, limit_ms: float, confidence: float
) -> HistogramJudgement | None:
    """The q-th percentile of a cumulative histogram (``le`` in seconds -> count) against ``limit_ms``.

    Counts at the edges are exact, so the order-statistic bounds of ``stats`` apply: pass when the upper
    rank u has ``u <= count(<= e_lo)`` (e_lo the largest edge <= limit: the percentile is <= e_lo, which
    reads the SLO at an edge equal to the limit as ``<=``); fail when the lower rank l has ``l > count(<=
    e_hi)`` (e_hi the smallest edge >= limit: fewer than l decisions were under the limit). ``None``
    without a finite bucket or decisions."""
    edges = sorted((float(le), count) for le, count in buckets.items())
    n = round(edges[-1][1]) if edges else 0
    finite = [(le * 1e3, round(count)) for le, count in edges if math.isfinite(le)]
    if n <= 0 or not finite:
        return None
    lower, upper = ranks(n, q, confidence)
    within = max((count for edge, count in finite if edge <= limit_ms), default=0)
    under_hi = next((count for edge, count in finite if edge >= limit_ms), n)
    low = _edge_below(finite, lower)
    high = _edge_at(finite, upper)
    if upper is not None and upper <= within:
        return HistogramJudgement("pass", n, within, low, high)
    if lower is not None and lower > under_hi:
        return HistogramJudgement("fail", n, within, low, high)
    needed = needed_percentile_n(within / n, q, confidence, n)
    return HistogramJudgement("unknown", n, within, low, high, needed)


def _edge_at(finite: list[tuple[float, int]], rank: int | None) -> float | None:
    """The smallest edge with at least ``rank`` decisions under it: the rank-th value is <= it."""
    if rank is None:
        return None
    return next((edge for edge, count in finite if count >= rank), None)


def _edge_below(finite: list[tuple[float, int]], rank: int | None) -> float | None:
    """The largest edge with fewer than ``rank`` decisions under it: the rank-th value is > it (0 if none)."""
    if rank is None:
        return None
    return max((edge for edge, count in finite if count < rank), default=0.0)


def check_limiter_latency(run: RunData, thresholds: Thresholds) -> Verdict:
    """The limiter's decision-time p99 over the run (Prometheus histogram) < ``slo.limiter_decision_p99_ms``,
    judged from the bucket counts when the snapshot has them (else from the point estimate), with the
    contention rule of the module docstring (q = 99, ``contention.limiter_hops`` waits; the limiter runs
    on the stack's machine, so contention here excuses nothing for a remote target).

    Not applicable when the target declares no Prometheus. Kong (``model: kong``): its own
    ``kong_kong_latency_ms`` histogram (every plugin's time, rate-limiting included) bounds the decision time
    from above: pass when that bound shows the p99 under the limit, else unknown (never fail: the
    rate-limiting plugin's share of Kong's time is not measured)."""
    snapshot = run.prometheus
    limit = thresholds.slo.limiter_decision_p99_ms
    if snapshot is None and run.info.prometheus_url is None:
        reason = "the target declares no Prometheus: the rate-limit decision time is not measurable"
        return Verdict(LIMITER_CHECK, NOT_APPLICABLE, reason, {"limit_ms": limit})
    if run.info.model == "kong" and snapshot is not None and not snapshot.error:
        return _kong_latency_bound(snapshot.latency_buckets.get(KONG_LATENCY), limit, thresholds.slo.confidence)
    p99 = None if snapshot is None else snapshot.decision_p99_ms
    evidence: dict[str, object] = {"decision_p99_ms": p99, "limit_ms": limit}
    if snapshot is None:
        return Verdict(LIMITER_CHECK, "unknown", "no Prometheus snapshot: decision time not measured", evidence)
    if p99 is None:
        reason = snapshot.error or "no limiter decision histogram in the snapshot"
        return Verdict(LIMITER_CHECK, "unknown", f"decision time unknown: {reason}", evidence)
    evidence.update({"decision_p50_ms": snapshot.decision_p50_ms, "decisions": snapshot.decision_count})
    confidence = thresholds.slo.confidence
    buckets = snapshot.decision_buckets
    if buckets:  # Redis slowed on purpose (a latency fault) is the redis-latency check's, not the SLO's
        from quotaquake.verify.checks.redis_latency import outside_latency_faults

        buckets, removed = outside_latency_faults(buckets, run.faults)
    judged = None if not buckets else judge_histogram(buckets, LIMITER_Q, limit, confidence)
    text = f"limiter decision p99 {p99:.2f} ms"
    if buckets and removed and judged is not None:
        evidence["left_out_in_latency_faults"] = removed
        text = f"limiter decision p99 <= {judged.high_ms} ms outside latency faults ({removed} decisions left out)"
    if judged is None:
        evidence["judged_from"] = "the p99 point estimate (no bucket counts in the snapshot)"
        status: Status = "fail" if p99 >= limit else "pass"
        fewest = min_n_for_upper_bound(LIMITER_Q, confidence)
        if status == "pass" and snapshot.decision_count is not None and snapshot.decision_count < fewest:
            evidence["needed_n"] = fewest
            summary = f"{text}: {snapshot.decision_count:g} decisions cannot show a p99 ({fewest} needed)"
            return Verdict(LIMITER_CHECK, "unknown", summary, evidence)
    else:
        evidence.update({"judged_from": "bucket counts", "p99_bounds_ms": [judged.low_ms, judged.high_ms]})
        evidence.update({"within_limit": judged.within, "needed_n": judged.needed_n})
        status = judged.status
    if status == "pass":
        return Verdict(LIMITER_CHECK, "pass", f"{text} < {limit:g} ms ({_bound_text(judged)})", evidence)
    if status == "unknown":
        needed = "" if judged is None else f"; {judged.needed_n} decisions would decide"
        return Verdict(
            LIMITER_CHECK, "unknown", f"{text}: not decided at {snapshot.decision_count} decisions{needed}", evidence
        )
    window = host_window(run.host, snapshot.start, snapshot.end, thresholds.contention)
    evidence["host"] = window.evidence()
    excuse = _limiter_excuse(snapshot, judged, window, thresholds)
    if excuse is not None:
        return Verdict(LIMITER_CHECK, "unknown", f"{text} >= {limit:g} ms, but {excuse}", evidence)
    return Verdict(LIMITER_CHECK, "fail", f"{text} >= {limit:g} ms{_why_fail(window, snapshot, limit)}", evidence)


def _bound_text(judged: HistogramJudgement | None) -> str:
    if judged is None:
        return "point estimate"
    return f"{judged.within} of {judged.n} decisions within the limit, p99 <= {judged.high_ms:g} ms at 95 %"


def _limiter_excuse(
    snapshot: PrometheusSnapshot, judged: HistogramJudgement | None, window: HostWindow, thresholds: Thresholds
) -> str | None:
    """Why a limiter p99 over the limit may be the machine's doing, or ``None`` when it is not."""
    if not window.measured or window.stack_on_host is False or not window.saturated_for(LIMITER_Q):
        return None
    limit = thresholds.slo.limiter_decision_p99_ms
    if _median_over(snapshot, limit, thresholds.slo.confidence):
        return None
    allowance = window.scheduler_allowance_ms(LIMITER_Q, thresholds.contention.limiter_hops)
    p99_low = snapshot.decision_p99_ms if judged is None else judged.low_ms
    if allowance is None or p99_low is None or p99_low >= limit + allowance:
        return None
    return (
        f"the machine was saturated in {window.saturated} of {window.samples} s ({', '.join(window.reasons)}): "
        f"the median ({_ms(snapshot.decision_p50_ms)} ms) is under the limit and the p99 lower bound {p99_low:g} ms "
        f"is within limit + {thresholds.contention.limiter_hops} scheduler waits ({allowance:g} ms)"
    )


def _median_over(snapshot: PrometheusSnapshot, limit: float, confidence: float) -> bool:
    """Whether the median decision is over the limit too (proven from the buckets, else the estimate)."""
    if snapshot.decision_buckets:
        judged = judge_histogram(snapshot.decision_buckets, 50.0, limit, confidence)
        if judged is not None:
            return judged.status == "fail"
    return snapshot.decision_p50_ms is not None and snapshot.decision_p50_ms >= limit


def _why_fail(window: HostWindow, snapshot: PrometheusSnapshot, limit: float) -> str:
    if not window.measured:
        return " (machine contention not measured: no host samples)"
    if not window.saturated_for(LIMITER_Q):
        return f" on an unsaturated machine ({window.saturated} of {window.samples} s saturated)"
    return f" beyond what contention explains (median {_ms(snapshot.decision_p50_ms)} ms)"


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def _kong_latency_bound(buckets: dict[str, float] | None, limit: float, confidence: float) -> Verdict:
    """p99 of Kong's own latency against the limit, from its histogram (``le`` in ms) as ``judge_histogram``
    judges the limiter's: a pass there is a pass here (the plugin's time is a part of it); anything else
    decides nothing about the plugin."""
    in_seconds = {le if le == "+Inf" else repr(float(le) / 1e3): count for le, count in (buckets or {}).items()}
    judged = judge_histogram(in_seconds, LIMITER_Q, limit, confidence) if in_seconds else None
    evidence: dict[str, object] = {"limit_ms": limit, "kong_latency_buckets_ms": buckets}
    if judged is None:
        return Verdict(LIMITER_CHECK, "unknown", f"no {KONG_LATENCY} histogram over the run in the snapshot", evidence)
    evidence.update({"p99_bounds_ms": [judged.low_ms, judged.high_ms], "requests": judged.n})
    if judged.status == "pass":
        bound = "" if judged.high_ms is None else f" <= {judged.high_ms:g} ms"
        summary = f"Kong's own latency (all plugins) p99{bound}, within {limit:g} ms ({confidence:.0%})"
        return Verdict(LIMITER_CHECK, "pass", summary, evidence)
    summary = (
        f"Kong's own latency (all plugins) does not show a p99 within {limit:g} ms, and the rate-limiting plugin's "
        "share of it is not measured (per-plugin timings would decide: Kong's request debugging, "
        "kong.conf.default:2240)"
    )
    return Verdict(LIMITER_CHECK, "unknown", summary, evidence)


@njit(cache=True)
def _scatter_latency(  # pragma: no cover - compiled by numba
    key: npt.NDArray[np.int32],
    starts: npt.NDArray[np.int64],
    first: int,
    last: int,
    latency_ms: F64,
    sent_ns: npt.NDArray[np.int64],
    intended_ns: npt.NDArray[np.int64],
    upstream_ms: F64,
) -> tuple[F64, F64, F64]:
    """Actual and corrected latency of the rows with ``first <= key < last``, laid out by key (block
    position ``starts[k] - starts[first]``), and the gateway overhead where the upstream time exists."""
    base = starts[first]
    size = starts[last] - base
    cursor = starts[first:last].copy() - base
    actual = np.empty(size)
    corrected = np.empty(size)
    overhead = np.empty(size)
    n_overhead = 0
    for i in range(len(key)):
        k = key[i]
        if k < first or k >= last:
            continue
        p = cursor[k - first]
        cursor[k - first] += 1
        actual[p] = latency_ms[i]
        corrected[p] = (sent_ns[i] - intended_ns[i]) / 1e6 + latency_ms[i]
        if upstream_ms[i] == upstream_ms[i]:
            overhead[n_overhead] = latency_ms[i] - upstream_ms[i]
            n_overhead += 1
    return actual, corrected, overhead[:n_overhead].copy()
