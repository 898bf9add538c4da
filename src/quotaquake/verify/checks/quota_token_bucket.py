"""Quota accuracy against the token-bucket model (per consumer and per anonymous IP ``anon:<ip>``).

See ``quotaquake.verify.models.token_bucket`` for the model: over-admission is judged against the most
generous state consistent with the history (a full bucket, month usage at its least possible value),
each request with its own timing tolerance; a 429 is a false rejection only when it was wrong whatever
the timing and the unknown part of the state; a 429 that would be false if the state had been known
(a full bucket) but is not provably false is *unjudged* and makes the verdict unknown. What the run
established about the state comes from ``run.json`` (``initial_state``: ``reset`` when ``quotaquake run``
or the Locust master reset the run's consumers) and ``engine.json`` (``monthly_seeds``); after a fault
window it is unknown again, except after a Redis failover whose record bounds what replication lost: the
state is carried across it (``verify.data.failover``: possibly lost admissions read as indeterminate,
degraded decisions before the promotion spent nothing on the survivor). Indeterminate requests (no
status, 5xx) get one reading (spent or not) that explains the whole history. ``thresholds.quota`` adds
explicit allowances on top (defaults 0). Rows marked degraded or sent inside a fault window (other than a
bridged failover's) are judged by ``check_degraded_over_admission``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from quotaquake.runfolder.models import FaultWindow
from quotaquake.verify.checks.evidence import column_total, first_rows_per_consumer, limit_table
from quotaquake.verify.data.consumers import ConsumerQuotas, InitialStates, consumer_quotas, initial_states
from quotaquake.verify.data.failover import failover_bridge
from quotaquake.verify.data.outcomes import outcome_classes
from quotaquake.verify.data.rundata import RunData, fault_bounds_ns
from quotaquake.verify.models import token_bucket as tb
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Verdict

CHECK = "quota-accuracy"
# Routes each gateway replica answers itself, without the limiter (docs/ARCHITECTURE.md): never counted.
LIMITER_BYPASS_ROUTES: frozenset[str] = frozenset({"/calibrate", "/gateway-health"})
DECIDE_UNJUDGED = (
    "start from a known state: quotaquake run resets the run's consumers where the provider can "
    "(run.json initial_state=reset; for a plain locust run: --qq-initial-state reset); "
    "after a fault window only the history itself can pin the state"
)
DECIDE_SEARCH = (
    "fewer indeterminate requests (timeouts, 5xx) per consumer between points where its bucket is "
    "provably full: a lower rate or a longer timeout"
)
READINGS = {0: "none-spent", 1: "all-spent", 2: "searched", 3: "modelled"}
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def check_quota_token_bucket(run: RunData, thresholds: Thresholds) -> Verdict:
    """Over-admission, false and unjudged 429s, and monthly totals under the token-bucket model."""
    quotas = consumer_quotas(run)
    states = initial_states(run, quotas)
    bridge = failover_bridge(run)
    fault_starts, fault_ends = merged_faults(run, bridge.kept)
    cost = bridge.cost(limited_cost(run.history))
    classes = bridge.classes(outcome_classes(np.asarray(run.history["status"])))
    flags, stats = replay_history(
        run, thresholds, quotas, states, fault_starts=fault_starts, fault_ends=fault_ends, cost=cost, classes=classes
    )
    table = _consumer_table(run, quotas, states, stats)
    verdict = _verdict(run, thresholds, quotas, table, flags)
    if (bridge.bridged or bridge.slow) and isinstance(verdict.evidence, dict):
        verdict.evidence["bridged_faults"] = bridge.evidence(cost)
    return verdict


def replay_history(
    run: RunData,
    thresholds: Thresholds,
    quotas: ConsumerQuotas,
    states: InitialStates,
    *,
    fault_starts: I64,
    fault_ends: I64,
    cost: npt.NDArray[np.floating] | None = None,
    classes: npt.NDArray[np.int8] | None = None,
) -> tuple[npt.NDArray[np.int8], F64]:
    """The token-bucket replay (``models.token_bucket.replay_buckets``) over the run's history: per-row flags
    (history order) and per-consumer stats. ``fault_*``: the windows that split consumers into units of
    unknown start state; ``cost``/``classes`` replace the history's (``limited_cost``, ``outcome_classes``)
    when a caller knows more, e.g. that an admission's write may have been lost (``verify.checks.failover``
    reads those as indeterminate and bridges the failover window instead of starting from an unknown state)."""
    history = run.history
    groups = run.groups
    n = groups.count
    cost = limited_cost(history) if cost is None else cost
    classes = outcome_classes(np.asarray(history["status"])) if classes is None else classes
    block_flags, stats = tb.replay_buckets(
        groups.starts,
        groups.scatter(np.asarray(history["sent_ns"])),
        groups.scatter(cost),
        groups.scatter(classes),
        groups.scatter(run.degraded),
        groups.scatter(np.asarray(history["latency_ms"], dtype=np.float64)),
        fault_starts,
        fault_ends,
        month_starts_ns(history),
        quotas.capacity[:n],
        quotas.rate[:n],
        _array(quotas.month_limit, n, tb.UNLIMITED),
        states.month_lo[:n],
        states.month_hi[:n],
        states.bucket_known[:n],
        thresholds.quota.epsilon,
    )
    flags = groups.unscatter(block_flags)
    del block_flags
    return flags, stats


def limited_cost(history: pd.DataFrame) -> npt.NDArray[np.floating]:
    """The ``cost`` column with requests to ``LIMITER_BYPASS_ROUTES`` at cost 0 (exempt)."""
    cost = np.asarray(history["cost"])
    endpoints = history["endpoint"].cat
    bypass = [code for code, name in enumerate(endpoints.categories) if name in LIMITER_BYPASS_ROUTES]
    if not bypass:
        return cost
    return np.where(np.isin(np.asarray(endpoints.codes), bypass), 0.0, cost).astype(cost.dtype)


def merged_faults(run: RunData, windows: list[FaultWindow] | None = None) -> tuple[I64, I64]:
    """Fault windows (``run.faults`` unless given) as sorted, non-overlapping (start, end) epoch-ns arrays
    (open windows end at int64 max)."""
    merged: list[list[int]] = []
    for start, end in sorted(fault_bounds_ns(w) for w in (run.faults if windows is None else windows)):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    starts = np.asarray([m[0] for m in merged], dtype=np.int64)
    ends = np.asarray([m[1] for m in merged], dtype=np.int64)
    return starts, ends


def month_starts_ns(history: pd.DataFrame) -> I64:
    """Starts (epoch ns) of the UTC months from the first send to a month past the last one."""
    sent = np.asarray(history["sent_ns"])
    if len(sent) == 0:
        return np.zeros(1, dtype=np.int64)
    first, last = sent[[0, -1]].view("datetime64[ns]").astype("datetime64[M]")
    months = np.arange(first, last + np.timedelta64(2, "M"), dtype="datetime64[M]")
    return np.asarray(months.astype("datetime64[ns]").astype(np.int64), dtype=np.int64)


def month_usage(run: RunData, codes: npt.NDArray[np.int64], weights: F64, n: int) -> F64:
    """Largest ``weights`` sum of each consumer in any one UTC calendar month (seeds: first month)."""
    sent = np.asarray(run.history["sent_ns"])
    if len(sent) == 0:
        return np.zeros(n)
    months = sent.view("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    first = int(months[0])
    span = int(months[-1]) - first + 1
    valid = codes >= 0
    per_month = np.bincount(codes[valid] * span + (months[valid] - first), weights=weights[valid], minlength=n * span)
    by_month = per_month[: n * span].reshape(n, span)
    return np.asarray(by_month.max(axis=1), dtype=np.float64)


def _array(values: F64 | None, n: int, default: float) -> F64:
    return np.full(n, default) if values is None else np.asarray(values[:n], dtype=np.float64)


def _consumer_table(run: RunData, quotas: ConsumerQuotas, states: InitialStates, stats: F64) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for code in range(len(stats)):
        if not quotas.judged(code):
            continue
        s = stats[code]
        room = quotas.month_room[code]
        unjudged = int(s[tb.S_UNJUDGED])
        rows.append(
            {
                "consumer": quotas.names[code],
                "tier": quotas.tiers[code],
                "requests": int(s[tb.S_REQUESTS]),
                "initial_state": states.labels[code],
                "admitted_cost": float(s[tb.S_ADMITTED_COST]),
                "rejected_429": int(s[tb.S_REJECTED]),
                "judged_429": int(s[tb.S_REJECTED]) - unjudged,
                "unjudged_429": unjudged,
                "unjudged_why": _why_unjudged(s, states.bucket_known[code]) if unjudged else None,
                "indeterminate": int(s[tb.S_MAYBE]),
                "reading": READINGS[int(s[tb.S_READING])] if s[tb.S_MAYBE] else None,
                "w_ms": round(float(s[tb.S_W_MAX]) * 1e3, 3),
                "over_admitted": int(s[tb.S_OVER]),
                "over_admitted_cost": float(s[tb.S_OVER_COST]),
                "false_rejections": int(s[tb.S_FALSE]),
                "month_over": int(s[tb.S_MONTH_OVER]),
                "month_over_cost": float(s[tb.S_MONTH_OVER_COST]),
                "month_contradictions": int(s[tb.S_MONTH_CLOSERS]),
                "month_admitted_cost": float(s[tb.S_MONTH_ADMITTED]),
                "month_room": None if room >= 1e299 else float(room),
                "search_too_large": int(s[tb.S_SEARCH_TOO_LARGE]),
                "max_undecided": int(s[tb.S_MAX_UNDECIDED]),
                "uncombined": int(s[tb.S_UNCOMBINED]),
                "not_judged_near_fault": int(s[tb.S_STRADDLING]),
                "offending": bool(s[tb.S_OVER] > 0 or s[tb.S_FALSE] > 0 or s[tb.S_MONTH_OVER] > 0),
                "month_offending": bool(s[tb.S_MONTH_OVER] > 0 or s[tb.S_MONTH_CLOSERS] > 0),
                "undecided": bool(unjudged or s[tb.S_SEARCH_TOO_LARGE] or s[tb.S_UNCOMBINED]),
            }
        )
    return rows


def _why_unjudged(s: F64, bucket_known: bool) -> str:
    """Why the 429s of one consumer could not be judged (counts by cause)."""
    total = int(s[tb.S_UNJUDGED])
    after_fault = int(s[tb.S_UNJUDGED_AFTER_FAULT])
    month = int(s[tb.S_UNJUDGED_MONTH])
    reasons = []
    if total - after_fault:
        what = "month usage" if bucket_known else "bucket level / month usage"
        reasons.append(f"{total - after_fault} sent while the {what} since the start was unknown")
    if after_fault:
        reasons.append(f"{after_fault} after a fault window (the store may have lost or kept its state)")
    text = "; ".join(reasons)
    return text + (f"; {month} of them only for want of the month usage" if month else "")


@dataclass(frozen=True)
class _Totals:
    """The per-consumer table summed up for the verdict."""

    over_cost: float
    false_rejections: int
    unjudged: int
    contradictions: int
    judged_requests: int
    offenders: list[str]
    month_offenders: list[str]
    unjudged_consumers: list[str]
    searches: list[str]

    @classmethod
    def of(cls, table: list[dict[str, object]]) -> _Totals:
        def named(key: str) -> list[str]:
            return [str(r["consumer"]) for r in table if r[key]]

        return cls(
            over_cost=column_total(table, "over_admitted_cost"),
            false_rejections=int(column_total(table, "false_rejections")),
            unjudged=int(column_total(table, "unjudged_429")),
            contradictions=int(column_total(table, "month_contradictions")),
            judged_requests=int(column_total(table, "requests")),
            offenders=named("offending"),
            month_offenders=named("month_offending"),
            unjudged_consumers=named("unjudged_429"),
            searches=[str(r["consumer"]) for r in table if r["search_too_large"] or r["uncombined"]],
        )


def _verdict(
    run: RunData,
    thresholds: Thresholds,
    quotas: ConsumerQuotas,
    table: list[dict[str, object]],
    flags: npt.NDArray[np.int8],
) -> Verdict:
    totals = _Totals.of(table)
    evidence = _evidence(run, quotas, table, flags, totals)
    allowed = thresholds.quota
    if (
        totals.over_cost > allowed.allowed_over_admitted_cost
        or totals.false_rejections > allowed.allowed_false_rejections
        or totals.month_offenders
    ):
        return Verdict(CHECK, "fail", _fail_summary(totals), evidence)
    reasons = _undecided(run, table, totals, allowed.allowed_false_rejections, evidence)
    if reasons:
        return Verdict(CHECK, "unknown", "; ".join(reasons), evidence)
    if totals.judged_requests == 0:
        return Verdict(CHECK, "unknown", "no requests of a known limited or unlimited tier to judge", evidence)
    if quotas.unknown_tiers:
        tiers = sorted(set(quotas.unknown_tiers.values()))
        return Verdict(CHECK, "unknown", f"consumers of unknown tiers: {tiers}", evidence)
    summary = (
        f"{len(table)} consumer(s), {totals.judged_requests} requests within the token-bucket model "
        f"(initial state {run.info.initial_state})"
    )
    return Verdict(CHECK, "pass", summary, evidence)


def _evidence(
    run: RunData, quotas: ConsumerQuotas, table: list[dict[str, object]], flags: npt.NDArray[np.int8], totals: _Totals
) -> dict[str, object]:
    def rows(bit: int) -> list[dict[str, object]]:
        return first_rows_per_consumer(run.history, np.flatnonzero(flags & bit))

    at = run.info.initial_state_at
    return {
        "model": "token-bucket",
        "initial_state": str(run.info.initial_state),
        "initial_state_at": None if at is None else at.isoformat(),
        "over_admitted_cost": totals.over_cost,
        "false_rejections": totals.false_rejections,
        "unjudged_429": totals.unjudged,
        "month_offenders": totals.month_offenders,
        "month_contradictions": totals.contradictions,
        "offenders": totals.offenders[:50],
        "unjudged_consumers": totals.unjudged_consumers[:50],
        "search_too_large": totals.searches[:50],
        "unknown_tiers": quotas.unknown_tiers,
        "consumers": limit_table(sorted(table, key=lambda r: not r["undecided"]), "offending"),
        "over_admitted_rows": rows(tb.FLAG_OVER),
        "false_rejection_rows": rows(tb.FLAG_FALSE_REJECTION),
        "unjudged_rows": rows(tb.FLAG_UNJUDGED),
        "month_over_rows": rows(tb.FLAG_MONTH_OVER),
    }


def _fail_summary(totals: _Totals) -> str:
    summary = (
        f"{len(totals.offenders)} consumer(s) off the token-bucket model: over-admitted cost {totals.over_cost:g}, "
        f"{totals.false_rejections} false 429(s), {len(totals.month_offenders)} over the monthly quota"
        f" (e.g. {', '.join((totals.offenders or totals.month_offenders)[:3])})"
    )
    if totals.contradictions:
        summary += (
            f"; {totals.contradictions} later admission(s) prove month room for a 429 that had minute room: "
            "the 429 was false, or they over-admitted the month"
        )
    return summary


def _undecided(
    run: RunData, table: list[dict[str, object]], totals: _Totals, allowed_false: int, evidence: dict[str, object]
) -> list[str]:
    """Why the verdict is unknown (empty: it is not), with what would decide it (into ``evidence``)."""
    reasons, decide = [], []
    if totals.unjudged and totals.false_rejections + totals.unjudged > allowed_false:
        reasons.append(
            f"{totals.unjudged} 429(s) of {len(totals.unjudged_consumers)} consumer(s) could not be judged: they "
            f"would be false from a full bucket, and the state they were sent in is unknown (run.json "
            f"initial_state={run.info.initial_state}) (e.g. {', '.join(totals.unjudged_consumers[:3])})"
        )
        decide.append(DECIDE_UNJUDGED)
    if totals.searches:
        largest = int(np.max(np.asarray([r["max_undecided"] for r in table], dtype=np.float64)))
        reasons.append(
            f"{len(totals.searches)} consumer(s) with indeterminate requests (timeouts, 5xx) that no simple reading "
            f"(all spent, none spent, modelled) explains, and too many to search ({largest} in one part) or parts "
            f"whose readings do not combine (e.g. {', '.join(totals.searches[:3])})"
        )
        decide.append(DECIDE_SEARCH)
    if decide:
        evidence["decide"] = "; ".join(decide)
        reasons.append("what would decide it: " + "; ".join(decide))
    return reasons
