"""Helpers that turn history rows and per-consumer numbers into small JSON-ready evidence."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

ROW_FIELDS: tuple[str, ...] = ("consumer", "tier", "endpoint", "status", "cost", "latency_ms", "degraded")
MAX_ROWS_PER_CONSUMER = 5
MAX_ROWS = 50
MAX_CONSUMERS = 200


def iso(ns: int) -> str:
    """Epoch nanoseconds as an ISO-8601 UTC timestamp with milliseconds."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def row_evidence(history: pd.DataFrame, index: int, **extra: object) -> dict[str, object]:
    """One history row as a dict (send time ISO and epoch seconds plus ``ROW_FIELDS``)."""
    sent = int(np.asarray(history["sent_ns"])[index])
    row: dict[str, object] = {"row": int(index), "sent": iso(sent), "sent_s": sent / 1e9}
    for name in ROW_FIELDS:
        if name in history.columns:
            value: object = history[name].iat[index]
            row[name] = None if _missing(value) else value
    row.update(extra)
    return row


def first_rows_per_consumer(
    history: pd.DataFrame, rows: npt.NDArray[np.int64], **extra: object
) -> list[dict[str, object]]:
    """Up to ``MAX_ROWS_PER_CONSUMER`` of ``rows`` (sorted indices) per consumer, ``MAX_ROWS`` in all."""
    codes = np.asarray(history["consumer"].cat.codes)[rows]
    taken: dict[int, int] = {}
    picked: list[dict[str, object]] = []
    for index, code in zip(rows.tolist(), codes.tolist(), strict=True):
        if taken.get(code, 0) >= MAX_ROWS_PER_CONSUMER:
            continue
        taken[code] = taken.get(code, 0) + 1
        picked.append(row_evidence(history, index, **extra))
        if len(picked) >= MAX_ROWS:
            break
    return picked


def limit_table(rows: list[dict[str, object]], offending_key: str) -> list[dict[str, object]]:
    """At most ``MAX_CONSUMERS`` rows: offenders (``row[offending_key]`` true) first, then the rest."""
    ranked = sorted(rows, key=lambda r: (not r.get(offending_key), str(r.get("consumer"))))
    return ranked[:MAX_CONSUMERS]


def column_total(rows: list[dict[str, object]], key: str) -> float:
    """Sum of ``row[key]`` over ``rows`` (numbers or booleans)."""
    return float(np.sum(np.asarray([row[key] for row in rows], dtype=np.float64)))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA
