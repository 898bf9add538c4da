"""Quota accuracy against the token-bucket model (per consumer and per anonymous IP ``anon:<ip>``).

See ``quotaquake.verify.models.token_bucket`` for the timing tolerance: the replay grants each consumer
``r * w`` extra capacity, w the largest latency among its admitted responses (reported as ``w_ms``), and
calls a 429 false only when it was wrong under every timing within w. ``thresholds.quota`` adds explicit
allowances on top (defaults 0). Rows marked degraded or sent inside a fault window are excluded here and
judged by ``check_degraded_over_admission``. Monthly counters: non-degraded admitted cost per consumer
and UTC month must not exceed ``per_month`` minus the usage seeded before the run.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from quotaquake.verify.checks.evidence import column_total, first_rows_per_consumer, limit_table
from quotaquake.verify.data.consumers import ConsumerQuotas, consumer_quotas
from quotaquake.verify.data.outcomes import ADMITTED, outcome_classes
from quotaquake.verify.data.rundata import RunData, consumer_codes
from quotaquake.verify.models.token_bucket import FLAG_FALSE_REJECTION, FLAG_OVER, replay_buckets
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Status, Verdict

CHECK = "quota-accuracy"
# Routes each gateway replica answers itself, without the limiter (docs/ARCHITECTURE.md): never counted.
LIMITER_BYPASS_ROUTES: frozenset[str] = frozenset({"/calibrate", "/gateway-health"})
F64 = npt.NDArray[np.float64]


def check_quota_token_bucket(run: RunData, thresholds: Thresholds) -> Verdict:
    """Over-admission, definite false rejections and monthly totals under the token-bucket model."""
    history = run.history
    quotas = consumer_quotas(run)
    classes = outcome_classes(np.asarray(history["status"]))
    judged = ~(run.degraded | run.in_fault)
    cost = limited_cost(history)
    groups = run.groups
    block_flags, stats = replay_buckets(
        groups.starts,
        groups.scatter(np.asarray(history["sent_ns"])),
        groups.scatter(cost),
        groups.scatter(classes),
        groups.scatter(judged),
        groups.scatter(np.asarray(history["latency_ms"])),
        run.fault_ends_ns,
        quotas.capacity[: groups.count],
        quotas.rate[: groups.count],
        quotas.month_room[: groups.count],
        thresholds.quota.epsilon,
    )
    flags = groups.unscatter(block_flags)
    del block_flags
    month_used = stats[:, 6]
    if _spans_months(run):
        admitted = (classes == ADMITTED) & judged & (cost > 0)
        month_used = month_usage(run, consumer_codes(history), np.where(admitted, cost, 0.0), groups.count)
    table = _consumer_table(quotas, stats, month_used)
    return _verdict(run, thresholds, quotas, table, flags)


def limited_cost(history: pd.DataFrame) -> npt.NDArray[np.floating]:
    """The ``cost`` column with requests to ``LIMITER_BYPASS_ROUTES`` at cost 0 (exempt)."""
    cost = np.asarray(history["cost"])
    endpoints = history["endpoint"].cat
    bypass = [code for code, name in enumerate(endpoints.categories) if name in LIMITER_BYPASS_ROUTES]
    if not bypass:
        return cost
    return np.where(np.isin(np.asarray(endpoints.codes), bypass), 0.0, cost).astype(cost.dtype)


def _spans_months(run: RunData) -> bool:
    sent = np.asarray(run.history["sent_ns"])
    if len(sent) == 0:
        return False
    months = sent[[0, -1]].view("datetime64[ns]").astype("datetime64[M]")
    return bool(months[0] != months[1])


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


def _consumer_table(quotas: ConsumerQuotas, stats: F64, month_used: F64) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for code in range(len(stats)):
        if not quotas.judged(code):
            continue
        room = quotas.month_room[code]
        month_over = bool(month_used[code] > room + 1e-9)
        rows.append(
            {
                "consumer": quotas.names[code],
                "tier": quotas.tiers[code],
                "requests": int(stats[code, 5]),
                "admitted_cost": float(stats[code, 6]),
                "rejected_429": int(stats[code, 7]),
                "indeterminate": int(stats[code, 8]),
                "w_ms": round(float(stats[code, 0]) * 1e3, 3),
                "over_admitted": int(stats[code, 2]),
                "over_admitted_cost": float(stats[code, 3]),
                "false_rejections": int(stats[code, 4]),
                "month_admitted_cost": float(month_used[code]),
                "month_room": None if room >= 1e299 else float(room),
                "month_over": month_over,
                "offending": bool(stats[code, 2] > 0 or stats[code, 4] > 0 or month_over),
            }
        )
    return rows


def _verdict(
    run: RunData,
    thresholds: Thresholds,
    quotas: ConsumerQuotas,
    table: list[dict[str, object]],
    flags: npt.NDArray[np.int8],
) -> Verdict:
    over_cost = column_total(table, "over_admitted_cost")
    false_rejections = int(column_total(table, "false_rejections"))
    month_offenders = [str(r["consumer"]) for r in table if r["month_over"]]
    offenders = [str(r["consumer"]) for r in table if r["offending"]]
    judged_requests = int(column_total(table, "requests"))
    evidence: dict[str, object] = {
        "model": "token-bucket",
        "over_admitted_cost": over_cost,
        "false_rejections": false_rejections,
        "month_offenders": month_offenders,
        "offenders": offenders[:50],
        "unknown_tiers": quotas.unknown_tiers,
        "consumers": limit_table(table, "offending"),
        "over_admitted_rows": first_rows_per_consumer(run.history, np.flatnonzero(flags == FLAG_OVER)),
        "false_rejection_rows": first_rows_per_consumer(run.history, np.flatnonzero(flags == FLAG_FALSE_REJECTION)),
    }
    failed = (
        over_cost > thresholds.quota.allowed_over_admitted_cost
        or false_rejections > thresholds.quota.allowed_false_rejections
        or bool(month_offenders)
    )
    status: Status
    if failed:
        status = "fail"
        summary = (
            f"{len(offenders)} consumer(s) off the token-bucket model: over-admitted cost {over_cost:g}, "
            f"{false_rejections} false 429(s), {len(month_offenders)} over the monthly quota"
            f" (e.g. {', '.join(offenders[:3])})"
        )
    elif judged_requests == 0 or quotas.unknown_tiers:
        status = "unknown"
        summary = (
            "no requests of a known limited or unlimited tier to judge"
            if judged_requests == 0
            else f"consumers of unknown tiers: {sorted(set(quotas.unknown_tiers.values()))}"
        )
    else:
        status = "pass"
        summary = f"{len(table)} consumer(s), {judged_requests} requests within the token-bucket model"
    return Verdict(CHECK, status, summary, evidence)
