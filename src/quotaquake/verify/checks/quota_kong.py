"""Quota accuracy against Kong 3.9's own rate-limiting plugin (``run.json``: ``model: kong`` + ``kong``).

Every rate-limiting counter (``verify.data.kong``: a consumer, a keyless client address, or the shared peer
address) is judged by ``quotaquake.verify.models.kong.judge_consumer`` with the plugin configuration the
target declared (``KongSpec``): exact for ``policy: redis`` with ``sync_rate: -1`` (Redis linearizes the
INCRs: tolerance zero), the model's bounds for ``local``, ``cluster`` and ``redis`` with ``sync_rate > 0``.
Each request counts 1 whatever its endpoint (Kong has no costs); rejected requests count under redis-sync.

What the run established about the counters when it started:

* ``initial_state: reset`` (the provider deleted the counters of every provisioned consumer and simulated
  keyless address before the first request): their windows start at 0; the peer address (unknown keys, and
  keyless clients when Kong ignores X-Forwarded-For) always starts unknown (>= 0, pinned by headers);
* month usage seeded by the quota-month scenario (``engine.json``): that month starts at exactly the seed;
* fault windows that may reset or double a count split a counter's history into segments judged apart,
  each later segment starting unknown: a fault of the store (Redis for ``redis``, Kong's database for
  ``cluster``: a restarted Redis comes back empty or from an older snapshot), and a fault of a gateway
  replica or the load balancer (``local`` counters die with their node, and a load balancer may retry a
  request the dead replica already counted). Requests sent inside those windows are judged by the
  degradation check, not here; requests still in flight when a window ended enter the next segment as
  possibly counted;
* requests the chaos probes sent with a consumer's key (``probe-requests.jsonl``) count in its windows:
  they enter its history as possibly counted (answered at ``t``, sent at most ``PROBE_SPAN_S`` before).
  When an experiment ran without a probe ledger, requests nobody recorded may have been counted: they can
  only lower what Kong shows or make it stop earlier, never admit more, so then only over-admission fails
  and a header or rejection the history cannot explain is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quotaquake.kongspec import KongSpec
from quotaquake.runfolder.models import InitialState, ServiceRole
from quotaquake.verify.checks.evidence import first_rows_per_consumer, limit_table
from quotaquake.verify.checks.quota_token_bucket import CHECK
from quotaquake.verify.data.kong import PEER_IDENTITY, KongIdentity, KongRows, kong_rows
from quotaquake.verify.data.rundata import RunData, fault_bounds_ns
from quotaquake.verify.models.kong import (
    FLAG_FALSE_REJECTION,
    FLAG_HEADER_VIOLATION,
    FLAG_IN_OVER_WINDOW,
    FLAG_OVER_ADMITTED,
    FLAG_UNDECIDED,
    ConsumerRequests,
    ConsumerVerdict,
    JudgeOptions,
    KongRateLimiting,
    judge_consumer,
    window_start_ns,
)
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Status, Verdict, compose

LATENCY_MARGIN_MS = 1.0
"""Added to each recorded latency: the history's send instant is taken a few statements before Locust
starts its response timer, so ``sent + latency`` may precede the response by microseconds; 1 ms keeps
"answered before the next was sent" certain (a later end only widens what the model allows)."""
PROBE_SPAN_S = 5.0
"""A chaos probe's request was sent at most this long before the ledger's answer time ``t`` (seconds; the
probes' HTTP timeout is 2 s)."""
MAX_REASONS = 3
MAX_WINDOWS = 5
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Interval = tuple[int, int]


@dataclass(frozen=True)
class _Segment:
    """Requests of one counter judged together: ``rows`` are history rows (-1: a request not in the
    history, e.g. a probe or one carried over from before a fault); ``first`` is True for the segment that
    starts with the run (the run's initial state and month seeds apply to it)."""

    rows: I64
    sent_ns: I64
    status: I64
    latency_ms: F64
    first: bool


def check_quota_kong(run: RunData, thresholds: Thresholds) -> Verdict:
    """Each Kong counter's requests against the declared plugin (module docstring)."""
    del thresholds  # the model has no tolerance knob: Kong is exact where it is exact, bounded elsewhere
    spec = run.info.kong
    if spec is None:
        return Verdict(CHECK, "unknown", "run.json declares model kong but carries no kong section", {})
    rows = kong_rows(run, spec)
    flags = np.zeros(len(run.history), dtype=np.uint8)
    table = [_judge_identity(run, rows, k, flags) for k, identity in enumerate(rows.identities) if identity.limits]
    return _verdict(run, rows, table, flags)


def _judge_identity(run: RunData, rows: KongRows, k: int, flags: npt.NDArray[np.uint8]) -> dict[str, object]:
    identity = rows.identities[k]
    spec = rows.spec
    config = KongRateLimiting(
        identity.limits,
        policy=spec.policy,
        sync_rate_s=spec.sync_rate_s,
        replicas=spec.replicas,
        workers_per_replica=spec.workers_per_replica,
        fault_tolerant=spec.fault_tolerant,
        hide_client_headers=spec.hide_client_headers,
        error_code=spec.error_code,
        increment_lag_ms=spec.increment_lag_ms,
    )
    options = JudgeOptions(clock_skew_ms=spec.clock_skew_ms)
    mine = np.flatnonzero(rows.identity == k)
    reached = np.asarray(run.history["status"])[mine] != 401  # key-auth (1250) answers before rate-limiting
    if len(mine) and not reached.any():
        reason = (
            f"none of its {len(mine)} requests reached the rate-limiting plugin (all 401): the declared limits "
            "(a key, or the anonymous consumer) do not apply to it"
        )
        return _identity_row(run, identity, mine, [], "unknown", [reason])
    verdicts: list[ConsumerVerdict] = []
    for segment in _segments(run, rows.spec, identity, mine):
        requests = _requests(run, identity, segment)
        verdict = judge_consumer(requests, config, options)
        verdicts.append(verdict)
        inside = segment.rows >= 0
        np.bitwise_or.at(flags, segment.rows[inside], verdict.flags[inside])
    status = compose(v.status for v in verdicts) if verdicts else "unknown"
    extra: list[str] = []
    if status == "fail" and run.chaos_ran and not run.probe_ledger and not _over_admitted(verdicts):
        status = "unknown"
        extra.append(
            "the experiment's probes sent requests no ledger recorded, which Kong may have counted: the headers "
            "and 429s the history cannot explain may be theirs (run with QUOTAQUAKE_PROBE_LEDGER)"
        )
    return _identity_row(run, identity, mine, verdicts, status, extra)


def _over_admitted(verdicts: Sequence[ConsumerVerdict]) -> bool:
    """Certain over-admission: extra, unrecorded requests can never explain it."""
    flagged = any(bool(np.any(v.flags & (FLAG_OVER_ADMITTED | FLAG_IN_OVER_WINDOW))) for v in verdicts)
    return flagged or any(w.min_excess_admissions > 0 for v in verdicts for w in v.windows)


# -------------------------------------------------------------------------------------------- segments


def _resetting_faults(run: RunData, spec: KongSpec) -> list[Interval]:
    """Fault windows (ns) after which a counter's state is not what its history says (module docstring)."""
    roles = {ServiceRole.GATEWAY, ServiceRole.LOAD_BALANCER}
    if spec.store_role is not None:
        roles.add(ServiceRole(spec.store_role))
    return sorted(fault_bounds_ns(w) for w in run.faults if w.role in roles)


def _segments(run: RunData, spec: KongSpec, identity: KongIdentity, mine: I64) -> list[_Segment]:
    history = run.history
    sent = np.asarray(history["sent_ns"], dtype=np.int64)[mine]
    status = np.asarray(history["status"], dtype=np.int64)[mine]
    latency = np.asarray(history["latency_ms"], dtype=np.float64)[mine] + LATENCY_MARGIN_MS
    probe_sent, probe_rows = _probe_requests(run, identity)
    all_rows = np.concatenate([mine, probe_rows])
    all_sent = np.concatenate([sent, probe_sent])
    all_status = np.concatenate([status, np.zeros(len(probe_sent), dtype=np.int64)])
    all_latency = np.concatenate([latency, np.full(len(probe_sent), PROBE_SPAN_S * 1e3)])
    order = np.argsort(all_sent, kind="stable")
    all_rows, all_sent, all_status, all_latency = (
        all_rows[order],
        all_sent[order],
        all_status[order],
        all_latency[order],
    )
    done = all_sent + np.nan_to_num(all_latency * 1e6, nan=0.0).astype(np.int64)
    segments: list[_Segment] = []
    begin, carried = -(1 << 62), np.zeros(0, dtype=np.int64)
    for start, end in [*_resetting_faults(run, spec), (1 << 62, 1 << 62)]:
        take = np.flatnonzero((all_sent >= begin) & (all_sent < start))
        seg_rows = np.concatenate([np.full(len(carried), -1, dtype=np.int64), all_rows[take]])
        seg_sent = np.concatenate([all_sent[carried], all_sent[take]])
        seg_status = np.concatenate([np.zeros(len(carried), dtype=np.int64), all_status[take]])
        seg_latency = np.concatenate([all_latency[carried], all_latency[take]])
        if len(seg_rows):
            by_sent = np.argsort(seg_sent, kind="stable")
            segments.append(
                _Segment(seg_rows[by_sent], seg_sent[by_sent], seg_status[by_sent], seg_latency[by_sent], not segments)
            )
        if start >= 1 << 62:
            break
        carried = np.flatnonzero((all_sent < end) & (done >= end) & (all_sent >= begin))
        begin = end + 1
    return segments


def _probe_requests(run: RunData, identity: KongIdentity) -> tuple[I64, I64]:
    """Send instants (ns, the earliest possible) of the chaos probes' requests with this counter's key."""
    times = [
        t for t, consumer in zip(run.probe_times, run.probe_consumers, strict=False) if consumer in identity.consumers
    ]
    sent = np.asarray([round((t - PROBE_SPAN_S) * 1e9) for t in times], dtype=np.int64)
    return sent, np.full(len(sent), -1, dtype=np.int64)


def _requests(run: RunData, identity: KongIdentity, segment: _Segment) -> ConsumerRequests:
    history = run.history
    columns = {"minute": "rl_remaining", "month": "rl_remaining_month"}
    remaining: dict[str, F64] = {}
    for period, column in columns.items():
        if period in identity.limits:
            values = np.asarray(history[column], dtype=np.float64)
            remaining[period] = np.where(segment.rows >= 0, values[np.maximum(segment.rows, 0)], np.nan)
    known = segment.first and run.info.initial_state is InitialState.RESET and _provisioned(identity)
    return ConsumerRequests(
        sent_ns=segment.sent_ns,
        status=segment.status,
        latency_ms=segment.latency_ms,
        remaining=remaining,
        known_start=dict.fromkeys(identity.limits, known),
        seeded=_seeded(run, identity) if segment.first else {},
    )


def _provisioned(identity: KongIdentity) -> bool:
    """Counters the run's reset deleted (``load.initial_state``): every provisioned consumer and every
    simulated keyless address (``anon:<ip>``, Kong's identifier is the IP); not the shared peer address."""
    return identity.name != PEER_IDENTITY


def _seeded(run: RunData, identity: KongIdentity) -> dict[str, tuple[int, int]]:
    """The month count the quota-month scenario set for this consumer, in the month it was set."""
    seeds = [seed for seed in run.monthly_seeds if seed.consumer in identity.consumers]
    if not seeds or "month" not in identity.limits or run.engine is None or run.engine.started_at is None:
        return {}
    at = np.array([int(run.engine.started_at.timestamp() * 1e9)], dtype=np.int64)
    return {"month": (int(window_start_ns("month", at)[0]), round(seeds[-1].used))}


# --------------------------------------------------------------------------------------------- verdict


def _identity_row(
    run: RunData,
    identity: KongIdentity,
    mine: I64,
    verdicts: Sequence[ConsumerVerdict],
    status: Status,
    extra: Sequence[str] = (),
) -> dict[str, object]:
    statuses = np.asarray(run.history["status"])[mine]
    reasons = [*extra, *(r for v in verdicts for r in v.reasons)]
    headerless = _headerless_admissions(run, identity, mine)
    bad_windows = [w for v in verdicts for w in v.windows if w.status != "pass"]
    return {
        "consumer": identity.name,
        "consumers": list(identity.consumers),
        "tier": identity.tier,
        "limits": identity.limits,
        "requests": len(mine),
        "admitted": int(np.count_nonzero((statuses > 0) & (statuses < 400))),
        "rejected": int(np.count_nonzero(statuses == 429)),
        "admitted_without_headers_outside_faults": headerless,
        "segments": len(verdicts),
        "status": status,
        "reasons": reasons[:MAX_REASONS],
        "windows": [
            {
                "period": w.period,
                "start_ns": w.start_ns,
                "limit": w.limit,
                "start_known": w.start_known,
                "start_count_min": w.start_count_min,
                "capacity": w.capacity,
                "admitted_certain": w.admitted_certain,
                "min_excess_admissions": w.min_excess_admissions,
                "min_false_rejections": w.min_false_rejections,
                "header_violations": w.header_violations,
                "status": w.status,
                "reason": w.reason,
            }
            for w in bad_windows[:MAX_WINDOWS]
        ],
        "offending": status == "fail",
    }


def _headerless_admissions(run: RunData, identity: KongIdentity, mine: I64) -> int:
    """Admissions outside fault windows with no rate-limit header: Kong's fault_tolerant pass-through on a
    store error or timeout (handler.lua:144-152), admitted without any limit; none under hide_client_headers
    can be told apart (0)."""
    spec = run.info.kong
    if spec is None or spec.hide_client_headers or not len(mine):
        return 0
    status = np.asarray(run.history["status"])[mine]
    admitted = (status > 0) & (status < 500) & (status != 401) & (status != spec.error_code)
    columns = {"minute": "rl_remaining", "month": "rl_remaining_month"}
    shown = np.zeros(len(mine), dtype=np.bool_)
    for period, column in columns.items():
        if period in identity.limits:
            shown |= np.isfinite(np.asarray(run.history[column], dtype=np.float64)[mine])
    return int(np.count_nonzero(admitted & ~shown & ~run.in_fault[mine]))


def _verdict(run: RunData, rows: KongRows, table: list[dict[str, object]], flags: npt.NDArray[np.uint8]) -> Verdict:
    spec = rows.spec
    variant = f"policy {spec.policy}" + (f", sync_rate {spec.sync_rate_s:g} s" if spec.sync_rate_s != -1 else "")
    failed = [r for r in table if r["status"] == "fail"]
    undecided = [r for r in table if r["status"] == "unknown"]
    history = run.history
    evidence: dict[str, object] = {
        "model": f"kong {spec.version} rate-limiting ({variant})",
        "exact": spec.policy == "redis" and spec.sync_rate_s == -1,
        "initial_state": str(run.info.initial_state),
        "offenders": [str(r["consumer"]) for r in failed][:50],
        "undecided": [str(r["consumer"]) for r in undecided][:50],
        "unknown_tiers": rows.unknown_tiers,
        "consumers": limit_table(table, "offending"),
        "over_admitted_rows": first_rows_per_consumer(
            history, _flagged(flags, FLAG_OVER_ADMITTED | FLAG_IN_OVER_WINDOW)
        ),
        "false_rejection_rows": first_rows_per_consumer(history, _flagged(flags, FLAG_FALSE_REJECTION)),
        "header_violation_rows": first_rows_per_consumer(history, _flagged(flags, FLAG_HEADER_VIOLATION)),
        "undecided_rows": first_rows_per_consumer(history, _flagged(flags, FLAG_UNDECIDED)),
        "not_judged_here": "requests sent inside store, gateway or load-balancer fault windows (see degradation)",
    }
    requests = sum(int(str(r["requests"])) for r in table)
    if failed:
        named = "; ".join(f"{r['consumer']}: {_first(r)}" for r in failed[:3])
        summary = f"{len(failed)} counter(s) off Kong {spec.version} rate-limiting ({variant}): {named}"
        return Verdict(CHECK, "fail", summary, evidence)
    if undecided or rows.unknown_tiers or not table:
        if not table:
            summary = "no requests of a rate-limited consumer to judge"
        elif rows.unknown_tiers:
            summary = f"consumers of tiers the target does not declare: {sorted(set(rows.unknown_tiers.values()))}"
        else:
            named = "; ".join(f"{r['consumer']}: {_first(r)}" for r in undecided[:3])
            summary = f"{len(undecided)} counter(s) undecided: {named}"
        return Verdict(CHECK, "unknown", summary, evidence)
    exactness = "exact, zero tolerance" if evidence["exact"] else "within the model's bounds"
    summary = (
        f"{len(table)} counter(s), {requests} requests consistent with Kong {spec.version} ({variant}; {exactness})"
    )
    passed = sum(int(str(r["admitted_without_headers_outside_faults"])) for r in table)
    if passed:
        summary += (
            f"; {passed} admission(s) outside fault windows carried no rate-limit header: passed without a limit "
            f"(store errors or timeouts > {spec.redis_timeout_ms} ms under fault_tolerant)"
        )
    return Verdict(CHECK, "pass", summary, evidence)


def _first(row: dict[str, object]) -> str:
    reasons = row.get("reasons")
    return str(reasons[0]) if isinstance(reasons, list) and reasons else "see evidence"


def _flagged(flags: npt.NDArray[np.uint8], bits: int) -> I64:
    return np.flatnonzero(flags & bits).astype(np.int64)
