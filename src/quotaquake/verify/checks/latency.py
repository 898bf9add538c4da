"""Latency: p50/p95/p99 per endpoint, tier and phase, and the SLOs of ``thresholds.slo``.

Two latencies per request with a response (status != 0; timeouts belong to the error budget):
``corrected_ms = (sent - intended) + latency`` (from the intended send time, coordinated omission
corrected) and ``actual_ms = latency`` (from the actual send). Gateway overhead = ``latency -
upstream_ms`` where the gateway reported the upstream time. Percentiles are exact (see ``percentiles``).
SLO: every endpoint's corrected p95 outside fault windows < ``slo.proxy_p95_ms`` (groups with fewer
than ``MIN_SAMPLES`` responses are reported, not judged). The limiter's decision time is not in the
history: its p99 comes from the Prometheus snapshot (``check_limiter_latency``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from quotaquake.verify.checks.generator import generator_health
from quotaquake.verify.checks.percentiles import exact_percentiles
from quotaquake.verify.data.grouping import group_rows
from quotaquake.verify.data.phases import is_steady, phase_codes, phase_labels
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import NOT_APPLICABLE, Status, Verdict

CHECK = "latency"
LIMITER_CHECK = "limiter-latency"
MIN_SAMPLES = 20
KONG_LATENCY = "kong_latency_ms"  # Kong's prometheus plugin: latency added by Kong and its plugins (exporter.lua:113)
F64 = npt.NDArray[np.float64]


def check_latency(run: RunData, thresholds: Thresholds) -> Verdict:
    slo: list[dict[str, object]] = []
    groups: list[dict[str, object]] = []
    overhead: list[dict[str, object]] = []
    for endpoint in _by_endpoint(run):
        groups += endpoint.groups
        slo.append(endpoint.slo(thresholds))
        if endpoint.overhead is not None:
            overhead.append(endpoint.overhead)
    evidence: dict[str, object] = {"slo": slo, "groups": groups, "gateway_overhead_ms": overhead}
    return _latency_verdict(run, thresholds, evidence)


def _latency_verdict(run: RunData, thresholds: Thresholds, evidence: dict[str, object]) -> Verdict:
    slo = evidence["slo"]
    assert isinstance(slo, list)
    judged = [row for row in slo if row["judged"]]
    breaches = [row for row in judged if row["breach"]]
    limit = thresholds.slo.proxy_p95_ms
    health = generator_health(run, thresholds)
    status: Status
    if health.saturated:
        status, summary = "unknown", "generator was the bottleneck: " + "; ".join(health.problems)
    elif not judged:
        status, summary = "unknown", f"no endpoint with >= {MIN_SAMPLES} responses outside faults"
    elif breaches:
        worst = max(breaches, key=lambda r: float(r["p95"]))
        status = "fail"
        summary = f"{len(breaches)} endpoint(s) over p95 {limit:g} ms: {worst['endpoint']} p95 {worst['p95']} ms"
    else:
        status, summary = "pass", f"all {len(judged)} endpoint(s) p95 < {limit:g} ms (corrected)"
    return Verdict(CHECK, status, summary, evidence)


@dataclass(frozen=True)
class EndpointLatency:
    """One endpoint's percentile table rows (per tier x phase), steady-state corrected latencies and
    gateway overhead percentiles."""

    endpoint: str
    groups: list[dict[str, object]]
    steady_corrected: F64
    overhead: dict[str, object] | None

    def slo(self, thresholds: Thresholds) -> dict[str, object]:
        """Corrected percentiles over all tiers outside fault windows vs the p95 SLO."""
        p = exact_percentiles(self.steady_corrected.copy(), in_place=True)
        judged = len(self.steady_corrected) >= MIN_SAMPLES
        breach = judged and p["p95"] is not None and p["p95"] >= thresholds.slo.proxy_p95_ms
        return {"endpoint": self.endpoint, "count": len(self.steady_corrected), **p, "judged": judged, "breach": breach}


def _by_endpoint(run: RunData) -> Iterator[EndpointLatency]:
    """Responded rows (status != 0) split by endpoint x tier x phase, one endpoint at a time (a sequential
    scatter per endpoint, so only one endpoint's latencies are held at a time)."""
    history = run.history
    labels = phase_labels(run.faults)
    endpoints = history["endpoint"].cat.categories
    tiers = history["tier"].cat.categories
    n_t, n_p = len(tiers) + 1, len(labels)
    key = np.asarray(history["endpoint"].cat.codes, dtype=np.int32) + 1
    key *= n_t
    key += np.asarray(history["tier"].cat.codes, dtype=np.int32) + 1
    key *= n_p
    key += phase_codes(np.asarray(history["sent_ns"]), run.faults)
    key[np.asarray(history["status"]) == 0] = -1
    groups = group_rows(key, np.zeros(0, dtype=np.int64), (len(endpoints) + 1) * n_t * n_p)
    steady = np.asarray([is_steady(label) for label in labels])
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
            np.asarray(history["sent_ns"]),
            np.asarray(history["intended_ns"]),
            np.asarray(history["upstream_ms"], dtype=np.float64),
        )
        table: list[dict[str, object]] = []
        steady_parts: list[F64] = []
        for g in range(first, last):
            lo, hi = groups.starts[g] - groups.starts[first], groups.starts[g + 1] - groups.starts[first]
            if hi == lo:
                continue
            code_t, code_p = divmod(g - first, n_p)
            if steady[code_p]:
                steady_parts.append(corrected[lo:hi].copy())
            table.append(
                {
                    "endpoint": str(endpoints[code_e - 1]) if code_e else None,
                    "tier": str(tiers[code_t - 1]) if code_t else None,
                    "phase": labels[code_p],
                    "count": int(hi - lo),
                    "corrected_ms": exact_percentiles(corrected[lo:hi], in_place=True),
                    "actual_ms": exact_percentiles(actual[lo:hi], in_place=True),
                }
            )
        del actual, corrected
        name = str(endpoints[code_e - 1]) if code_e else ""
        summary: dict[str, object] | None = None
        if len(overhead):
            summary = {"endpoint": name, "count": len(overhead), **exact_percentiles(overhead, in_place=True)}
        steady_corrected = np.concatenate(steady_parts) if steady_parts else np.zeros(0)
        yield EndpointLatency(name, table, steady_corrected, summary)


def check_limiter_latency(run: RunData, thresholds: Thresholds) -> Verdict:
    """The limiter's decision-time p99 (Prometheus histogram over the run) < ``slo.limiter_decision_p99_ms``.

    Not applicable when the target declares no Prometheus. Kong (``model: kong``): its own
    ``kong_kong_latency_ms`` histogram (every plugin's time, rate-limiting included) bounds the decision
    time from above: pass when that bound is below the limit, else unknown (never fail: the rate-limiting
    share of Kong's time is not measured).
    """
    snapshot = run.prometheus
    limit = thresholds.slo.limiter_decision_p99_ms
    if snapshot is None and run.info.prometheus_url is None:
        reason = "the target declares no Prometheus: the rate-limit decision time is not measurable"
        return Verdict(LIMITER_CHECK, NOT_APPLICABLE, reason, {"limit_ms": limit})
    if run.info.model == "kong" and snapshot is not None and not snapshot.error:
        return _kong_latency_bound(snapshot.latency_buckets.get(KONG_LATENCY), limit)
    p99 = None if snapshot is None else snapshot.decision_p99_ms
    evidence: dict[str, object] = {"decision_p99_ms": p99, "limit_ms": limit}
    if snapshot is None:
        return Verdict(LIMITER_CHECK, "unknown", "no Prometheus snapshot: decision time not measured", evidence)
    if p99 is None:
        reason = snapshot.error or "no limiter decision histogram in the snapshot"
        return Verdict(LIMITER_CHECK, "unknown", f"decision time unknown: {reason}", evidence)
    if p99 >= limit:
        return Verdict(LIMITER_CHECK, "fail", f"limiter decision p99 {p99:.2f} ms >= {limit:g} ms", evidence)
    return Verdict(LIMITER_CHECK, "pass", f"limiter decision p99 {p99:.2f} ms < {limit:g} ms", evidence)


def _kong_latency_bound(buckets: dict[str, float] | None, limit: float) -> Verdict:
    """p99 of Kong's own latency <= the smallest bucket bound holding 99 % of the window's requests."""
    bound = bucket_quantile_bound(buckets or {}, 0.99)
    evidence: dict[str, object] = {"kong_latency_p99_at_most_ms": bound, "limit_ms": limit, "buckets": buckets}
    if bound is None:
        return Verdict(LIMITER_CHECK, "unknown", f"no {KONG_LATENCY} histogram over the run in the snapshot", evidence)
    if bound < limit:
        summary = f"Kong's own latency (all plugins) p99 <= {bound:g} ms < {limit:g} ms: the rate-limit check is faster"
        return Verdict(LIMITER_CHECK, "pass", summary, evidence)
    summary = (
        f"Kong's own latency p99 <= {bound:g} ms (bucket bound) does not show < {limit:g} ms, and the rate-limiting "
        "plugin's share of it is not measured (per-plugin timings would decide: Kong's request debugging, "
        "kong.conf.default:2240)"
    )
    return Verdict(LIMITER_CHECK, "unknown", summary, evidence)


def bucket_quantile_bound(buckets: dict[str, float], q: float) -> float | None:
    """The smallest finite bucket upper bound whose cumulative count reaches ``q`` of the total (``+Inf``):
    an upper bound of the ``q`` quantile (Prometheus buckets are ``<= le``). ``None`` without observations or
    when only ``+Inf`` reaches it."""
    total = buckets.get("+Inf")
    if not total:
        return None
    finite = sorted((float(le), count) for le, count in buckets.items() if le != "+Inf")
    return next((le for le, count in finite if count >= q * total), None)


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
