"""Quota accuracy against a generic fixed-window model (``run.model == "fixed-window"``).

Kong 3.9 targets are judged by their own model (``model: kong``, ``quota_kong``: exact for Redis, with
rejected requests counted, headers and fault windows as Kong handles them). This generic model stays for
run folders recorded before it and for fixed-window targets that declare nothing else; it assumes only what
any fixed-window limiter does, so it is looser than Kong 3.9 needs: per consumer and UTC minute, admitted
requests <= the tier's ``per_minute`` (each request counts 1: no burst, no costs); per UTC month, admitted
requests + seeded usage <= ``per_month`` (a limiter that also counts rejections, like Kong 3.9, stops earlier,
which this bound does not see). What the target cannot express of the policy (costs, burst, exemptions) is
listed by the ``policy-expressiveness`` verdict, not passed here. Timing tolerance and false rejections:
see ``quotaquake.verify.models.fixed_window``. Rows marked degraded or inside fault windows are excluded
(judged by the degradation check).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from quotaquake.verify.checks.evidence import MAX_ROWS, column_total, first_rows_per_consumer, iso, limit_table
from quotaquake.verify.checks.quota_token_bucket import CHECK, month_usage
from quotaquake.verify.data.consumers import ConsumerQuotas, consumer_quotas
from quotaquake.verify.data.outcomes import ADMITTED, REJECTED, outcome_classes
from quotaquake.verify.data.rundata import RunData, consumer_codes
from quotaquake.verify.models.fixed_window import (
    FLAG_FALSE_REJECTION,
    FLAG_OVER_WINDOW,
    MINUTE_NS,
    replay_windows,
)
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Status, Verdict

F64 = npt.NDArray[np.float64]


def check_quota_fixed_window(run: RunData, thresholds: Thresholds) -> Verdict:
    """Over-admitted minutes, definite false rejections and monthly totals under the fixed-window model."""
    history = run.history
    quotas = consumer_quotas(run)
    classes = outcome_classes(np.asarray(history["status"]))
    judged = ~(run.degraded | run.in_fault)
    groups = run.groups
    n = groups.count
    block_flags, stats = replay_windows(
        groups.starts,
        groups.scatter(np.asarray(history["sent_ns"])),
        groups.scatter(classes),
        groups.scatter(judged),
        groups.scatter(np.asarray(history["latency_ms"])),
        quotas.per_minute_or_unlimited()[:n],
        quotas.month_room[:n],
    )
    flags = groups.unscatter(block_flags)
    codes = consumer_codes(history)
    admitted = (classes == ADMITTED) & judged
    month_used = month_usage(run, codes, admitted.astype(np.float64), n)
    table = _consumer_table(quotas, codes, classes, admitted, stats, month_used)
    windows = _offending_windows(history, flags)
    return _verdict(run, thresholds, quotas, table, flags, windows)


def _consumer_table(
    quotas: ConsumerQuotas,
    codes: npt.NDArray[np.int64],
    classes: npt.NDArray[np.int8],
    admitted: npt.NDArray[np.bool_],
    stats: F64,
    month_used: F64,
) -> list[dict[str, object]]:
    n = len(stats)
    requests = np.bincount(codes[codes >= 0], minlength=n)
    admitted_n = np.bincount(codes, weights=admitted, minlength=n)
    rejected = np.bincount(codes, weights=(classes == REJECTED), minlength=n)
    rows: list[dict[str, object]] = []
    for code in range(n):
        if not quotas.judged(code):
            continue
        room = quotas.month_room[code]
        month_over = bool(month_used[code] > room + 1e-9)
        rows.append(
            {
                "consumer": quotas.names[code],
                "tier": quotas.tiers[code],
                "requests": int(requests[code]),
                "admitted": int(admitted_n[code]),
                "rejected_429": int(rejected[code]),
                "w_ms": None if stats[code, 0] < 0 else round(float(stats[code, 0]) * 1e3, 3),
                "over_admitted": int(stats[code, 1]),
                "minutes_over": int(stats[code, 3]),
                "false_rejections": int(stats[code, 2]),
                "month_admitted": float(month_used[code]),
                "month_over": month_over,
                "unjudgeable": bool(stats[code, 0] < 0),
                "offending": bool(stats[code, 1] > 0 or stats[code, 2] > 0 or month_over),
            }
        )
    return rows


def _offending_windows(history: pd.DataFrame, flags: npt.NDArray[np.int8]) -> list[dict[str, object]]:
    rows = np.flatnonzero(flags == FLAG_OVER_WINDOW)
    if len(rows) == 0:
        return []
    minutes = np.asarray(history["sent_ns"])[rows] // MINUTE_NS
    consumers = np.asarray(history["consumer"].cat.codes)[rows]
    frame = pd.DataFrame({"consumer": consumers, "minute": minutes})
    counts = frame.groupby(["consumer", "minute"], sort=True).size().head(MAX_ROWS)
    names = history["consumer"].cat.categories
    return [
        {"consumer": str(names[c]), "minute": iso(int(m) * MINUTE_NS), "admitted_definitely_in": int(k)}
        for c, m, k in zip(
            counts.index.get_level_values(0), counts.index.get_level_values(1), counts.to_numpy(), strict=True
        )
    ]


def _verdict(
    run: RunData,
    thresholds: Thresholds,
    quotas: ConsumerQuotas,
    table: list[dict[str, object]],
    flags: npt.NDArray[np.int8],
    windows: list[dict[str, object]],
) -> Verdict:
    over = int(column_total(table, "over_admitted"))
    false_rejections = int(column_total(table, "false_rejections"))
    month_offenders = [str(r["consumer"]) for r in table if r["month_over"]]
    offenders = [str(r["consumer"]) for r in table if r["offending"]]
    unjudgeable = [str(r["consumer"]) for r in table if r["unjudgeable"]]
    judged_requests = int(column_total(table, "requests"))
    evidence: dict[str, object] = {
        "model": "fixed-window",
        "over_admitted": over,
        "false_rejections": false_rejections,
        "month_offenders": month_offenders,
        "offenders": offenders[:50],
        "unjudgeable": unjudgeable,
        "unknown_tiers": quotas.unknown_tiers,
        "windows_over": windows,
        "consumers": limit_table(table, "offending"),
        "over_admitted_rows": first_rows_per_consumer(run.history, np.flatnonzero(flags == FLAG_OVER_WINDOW)),
        "false_rejection_rows": first_rows_per_consumer(run.history, np.flatnonzero(flags == FLAG_FALSE_REJECTION)),
    }
    status: Status
    if (
        over > thresholds.quota.allowed_over_admitted_cost
        or false_rejections > thresholds.quota.allowed_false_rejections
        or month_offenders
    ):
        status = "fail"
        summary = (
            f"{len(offenders)} consumer(s) off the fixed-window model: {over} over-admitted, "
            f"{false_rejections} false 429(s), {len(month_offenders)} over the monthly quota"
            f" (e.g. {', '.join(offenders[:3])})"
        )
    elif judged_requests == 0 or quotas.unknown_tiers or unjudgeable:
        status = "unknown"
        summary = (
            "no requests of a known tier to judge"
            if judged_requests == 0
            else f"cannot judge: unknown tiers {sorted(set(quotas.unknown_tiers.values()))}, "
            f"latency >= 60 s for {unjudgeable[:3]}"
        )
    else:
        status = "pass"
        summary = f"{len(table)} consumer(s), {judged_requests} requests within the fixed-window model"
    return Verdict(CHECK, status, summary, evidence)
