"""The request history: one row per request, the contract between record (Locust) and check (verify).

Written by ``quotaquake.load.recorder`` as Parquet parts under ``<run>/history/`` (each Locust worker
process writes its own ``part-<worker>-<seq>.parquet`` with ``write_part``; readers take the whole folder).

Columns (times are UTC epoch nanoseconds from the generator's wall clock, latencies milliseconds):

==============  =========  ==========================================================================
column          type       meaning
==============  =========  ==========================================================================
intended_ns     int64      when the open-model schedule wanted the request sent
sent_ns         int64      when it was actually sent (``sent_ns - intended_ns`` = generator lag)
latency_ms      float64    actual send -> response complete (or error); service time
consumer        string     consumer id, ``anon:<ip>`` for keyless clients, ``invalid`` for bad keys
tier            string     tier of the consumer (``anonymous`` / ``invalid`` for the two above)
endpoint        string     request path without query (``/identify`` ...)
method          string     HTTP method
cost            float64    the policy's cost of the endpoint
status          int32      HTTP status; 0 when no response arrived (timeout, connection error)
error           string     error text for status 0 / 5xx, null otherwise
rl_limit        float64    X-RateLimit-Limit (or X-RateLimit-Limit-Minute), null if absent
rl_remaining    float64    X-RateLimit-Remaining (or -Minute), null if absent
rl_reset        float64    X-RateLimit-Reset seconds, null if absent
retry_after     float64    Retry-After seconds, null if absent
degraded        string     X-Quotaquake-Degraded (limiter decided without Redis), null if absent
replica         string     X-Quotaquake-Replica (which gateway replica answered), null if absent
upstream_ms     float64    X-Envoy-Upstream-Service-Time (or Kong's X-Kong-Upstream-Latency), null if absent
worker          string     generator worker id (host-pid)
rl_limit_month      float64  X-RateLimit-Limit-Month, null if absent
rl_remaining_month  float64  X-RateLimit-Remaining-Month, null if absent
rl_window_limit     float64  RateLimit-Limit (Kong: the limit of the tightest window), null if absent
rl_window_remaining float64  RateLimit-Remaining (Kong: the least remaining of all windows), null if absent
==============  =========  ==========================================================================

For Kong 3.9 (``docs/kong-3.9.md`` section 5) ``rl_limit``/``rl_remaining`` are the minute period's
``X-RateLimit-Limit-Minute``/``-Remaining-Minute`` and ``rl_reset`` is ``RateLimit-Reset`` (the tightest
window's reset, up to 30 days for a month). The last four columns were added later: parts written before
them lack them, and readers fill them with nulls (``REQUIRED_COLUMNS`` are what every part has).

Derived in verification: corrected latency ``(sent_ns - intended_ns)/1e6 + latency_ms`` (coordinated
omission corrected: measured from the intended send time).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from quotaquake.errors import ConfigError

if TYPE_CHECKING:  # pandas is imported by read_history only: Locust workers never need it
    import pandas as pd

SCHEMA = pa.schema(
    [
        ("intended_ns", pa.int64()),
        ("sent_ns", pa.int64()),
        ("latency_ms", pa.float64()),
        ("consumer", pa.string()),
        ("tier", pa.string()),
        ("endpoint", pa.string()),
        ("method", pa.string()),
        ("cost", pa.float64()),
        ("status", pa.int32()),
        ("error", pa.string()),
        ("rl_limit", pa.float64()),
        ("rl_remaining", pa.float64()),
        ("rl_reset", pa.float64()),
        ("retry_after", pa.float64()),
        ("degraded", pa.string()),
        ("replica", pa.string()),
        ("upstream_ms", pa.float64()),
        ("worker", pa.string()),
        ("rl_limit_month", pa.float64()),
        ("rl_remaining_month", pa.float64()),
        ("rl_window_limit", pa.float64()),
        ("rl_window_remaining", pa.float64()),
    ]
)

COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
RATE_LIMIT_COLUMNS: tuple[str, ...] = (
    "rl_limit",
    "rl_remaining",
    "rl_reset",
    "retry_after",
    "rl_limit_month",
    "rl_remaining_month",
    "rl_window_limit",
    "rl_window_remaining",
)
"""The rate-limit headers of a response, as numbers (null where absent)."""
ADDED_COLUMNS: tuple[str, ...] = ("rl_limit_month", "rl_remaining_month", "rl_window_limit", "rl_window_remaining")
"""Nullable columns added after the first schema; older parts lack them and read as null."""
REQUIRED_COLUMNS: tuple[str, ...] = tuple(name for name in COLUMNS if name not in ADDED_COLUMNS)


def part_paths(folder: Path) -> list[Path]:
    """The history parts in ``folder`` (``<run>/history``), in name order; none if it does not exist."""
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def check_parts(parts: list[Path]) -> None:
    """Raise a one-line ``ConfigError`` for the first part that is not a readable history part.

    Reads only each file's footer (schema), so it is cheap. A truncated or foreign file, or one that lacks
    a column of ``REQUIRED_COLUMNS``, is named with what is wrong; verification never sees half a history.
    """
    for part in parts:
        try:
            schema = pq.read_schema(part)
        except (OSError, pa.ArrowException) as exc:
            raise ConfigError(part, None, f"not a readable Parquet history part ({_first_line(exc)})") from None
        missing = [name for name in REQUIRED_COLUMNS if schema.get_field_index(name) < 0]
        if missing:
            raise ConfigError(part, None, f"not a quotaquake history part (missing columns {', '.join(missing)})")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def write_part(folder: Path, name: str, table: pa.Table) -> Path:
    """Write ``table`` as ``<folder>/<name>`` atomically (hidden temp file, then rename): readers never
    see half a part."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_history(folder: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """All parts in ``folder`` as one frame sorted by ``sent_ns`` (empty frame if none)."""
    parts = part_paths(folder)
    if not parts:
        empty = SCHEMA.empty_table()
        empty_frame: pd.DataFrame = (empty if columns is None else empty.select(columns)).to_pandas()
        return empty_frame
    check_parts(parts)
    table = pq.read_table(parts, schema=SCHEMA, columns=columns)
    frame: pd.DataFrame = table.to_pandas()
    if "sent_ns" in frame.columns:
        frame = frame.sort_values("sent_ns", kind="stable", ignore_index=True)
    return frame
