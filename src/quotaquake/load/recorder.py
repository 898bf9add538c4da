"""History recorder: a Locust ``request`` event listener that collects one row per request and writes parts.

Rows follow ``quotaquake.runfolder.history.SCHEMA``. The listener only appends to per-column Python lists:
response headers are kept as the text Locust's client already decoded, and numbers are parsed in bulk
(vectorised, pyarrow) when flushed, so its cost per request is a handful of list appends and dict lookups
(~1 us). Nothing it keeps is a container object, so the rows held between flushes add no work to Python's
garbage collector. A background greenlet hands the rows collected so far every ``FLUSH_INTERVAL_S``
(1 s) to a ``PartWriter`` as the part ``part-<worker>-<seq>.parquet``; the last rows are handed over when
Locust quits (``close``). The default writer, ``FolderWriter``, writes the part into the run folder's
history (``quotaquake.runfolder.history.write_part``: atomic, so readers never see half a part); a remote
worker's writer ships it to the master instead (``quotaquake.load.distributed``).

Requests that carry no quotaquake context (another User class in the same locustfile) are recorded too,
with ``intended_ns = sent_ns`` = Locust's start time, so the row count always equals Locust's count.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
import pyarrow as pa
import pyarrow.compute as pc

from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import RATE_LIMIT_COLUMNS, SCHEMA, write_part

log = logging.getLogger(__name__)

CONTEXT_KEY = "qq"
FLUSH_INTERVAL_S = 1.0
ERROR_TEXT_MAX = 300

# column -> response headers to try, in order (names lower-case). Kong 3.9 sends per-period headers
# (X-RateLimit-{Limit,Remaining}-{Minute,Month}) and the tightest window's RateLimit-{Limit,Remaining,Reset}
# (kong/plugins/rate-limiting/handler.lua:28-50,160-190); the embedded limiter X-RateLimit-{Limit,Remaining,
# Reset} and the -Month pair. Kong's X-Kong-Upstream-Latency is the upstream's time, like Envoy's header.
HEADER_COLUMNS: dict[str, tuple[str, ...]] = {
    "rl_limit": ("x-ratelimit-limit", "x-ratelimit-limit-minute"),
    "rl_remaining": ("x-ratelimit-remaining", "x-ratelimit-remaining-minute"),
    "rl_reset": ("x-ratelimit-reset", "ratelimit-reset"),
    "retry_after": ("retry-after",),
    "degraded": ("x-quotaquake-degraded",),
    "replica": ("x-quotaquake-replica",),
    "upstream_ms": ("x-envoy-upstream-service-time", "x-kong-upstream-latency"),
    "rl_limit_month": ("x-ratelimit-limit-month",),
    "rl_remaining_month": ("x-ratelimit-remaining-month",),
    "rl_window_limit": ("ratelimit-limit",),
    "rl_window_remaining": ("ratelimit-remaining",),
}
NUMERIC_HEADER_COLUMNS = (*RATE_LIMIT_COLUMNS, "upstream_ms")
COLLECTED_COLUMNS: tuple[str, ...] = tuple(name for name in SCHEMA.names if name != "worker")
"""Columns collected per request; ``worker`` is the same for every row of a recorder and added at flush."""


@dataclass(slots=True)
class RequestContext:
    """What a quotaquake user knows about a request, passed to Locust as ``context={"qq": ...}``."""

    intended_ns: int
    sent_ns: int
    consumer: str
    tier: str
    endpoint: str
    cost: float


class PartWriter(Protocol):
    """Where a recorder's parts go: ``write`` one part named ``name`` (raises if it could not)."""

    def write(self, name: str, table: pa.Table) -> None: ...


class FolderWriter:
    """Writes parts into a run folder's history. ``folder`` is called at each write (not at construction)
    because remote workers learn the master's ``--qq-out`` only with the first spawn message."""

    def __init__(self, folder: Callable[[], RunFolder]) -> None:
        self.folder = folder

    def write(self, name: str, table: pa.Table) -> None:
        write_part(self.folder().history_dir, name, table)


def worker_id() -> str:
    """``<host>-<pid>``: names this generator process in rows and part files."""
    return f"{socket.gethostname()}-{os.getpid()}"


_dict_get = dict.get
_HEADER_NAMES = tuple(HEADER_COLUMNS.values())
NO_HEADERS: tuple[None, ...] = (None,) * len(HEADER_COLUMNS)


def header_text(entry: Any) -> str | None:
    """A raw header entry as text: ``(field, value)`` -> value; repeated field -> first value."""
    if entry is None or isinstance(entry, str):
        return entry
    if isinstance(entry, tuple):
        return str(entry[1])
    if isinstance(entry, list):
        return header_text(entry[0]) if entry else None
    return str(entry)


def header_texts(headers: Any) -> list[str | None]:
    """The ``HEADER_COLUMNS`` headers' values as text, in that order (``None`` where absent).

    Hot path: geventhttpclient's ``Headers`` is a dict keyed by lower-case name holding ``(field, value)``
    (a list of them for repeated fields); reading it with ``dict.get`` skips its KeyError-based ``get``,
    which matters because most looked-up headers are absent. Other mappings go through their ``.get``.
    """
    plain = isinstance(headers, dict)
    texts: list[str | None] = []
    for names in _HEADER_NAMES:
        entry = None
        for name in names:
            entry = _dict_get(headers, name) if plain else headers.get(name)
            if entry is not None:
                break
        texts.append(entry if entry is None else entry[1] if entry.__class__ is tuple else header_text(entry))
    return texts


def header_value(headers: Any, names: tuple[str, ...]) -> str | None:
    """First present header of ``names`` (lower-case; first line if repeated), or ``None``."""
    get = headers.get if not isinstance(headers, dict) else None
    for name in names:
        entry = _dict_get(headers, name) if get is None else get(name)
        if entry is not None:
            return header_text(entry)
    return None


def _to_float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def float_column(values: list[str | None]) -> pa.Array:
    """Header strings -> float64; absent or unparsable values (e.g. an HTTP-date Retry-After) -> null."""
    try:
        return pc.cast(pa.array(values, pa.string()), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_to_float(v) for v in values], pa.float64())


def build_table(columns: Mapping[str, list[Any]], worker: str) -> pa.Table:
    """The collected columns (header columns as text) plus ``worker`` as a table of ``SCHEMA``."""
    rows = len(columns["sent_ns"])
    arrays = []
    for field in SCHEMA:
        if field.name == "worker":
            arrays.append(pa.repeat(pa.scalar(worker, pa.string()), rows))
        elif field.name in NUMERIC_HEADER_COLUMNS:
            arrays.append(float_column(columns[field.name]))
        else:
            arrays.append(pa.array(columns[field.name], field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


class HistoryRecorder:
    """Collects rows from Locust ``request`` events and hands them to a ``PartWriter`` (see module docstring).

    ``folder`` builds the default ``FolderWriter``; pass ``writer`` to send parts elsewhere. ``writer`` may
    be replaced while running (a remote worker does so once it knows where its parts go).
    """

    def __init__(
        self,
        *,
        folder: Callable[[], RunFolder] | None = None,
        worker: str | None = None,
        writer: PartWriter | None = None,
    ) -> None:
        if writer is None and folder is None:
            raise ValueError("HistoryRecorder needs a folder or a writer")
        self.writer: PartWriter = writer if writer is not None else FolderWriter(folder)  # type: ignore[arg-type]
        self.worker = worker or worker_id()
        self.rows_recorded = 0  # rows handed to the writer or still pending: every request seen so far
        self.rows_written = 0
        self.parts_written = 0
        self.write_errors = 0
        self._seq = 0
        self._columns: dict[str, list[Any]] = {}
        self._appenders: tuple[Callable[[Any], None], ...] = ()
        self._new_columns()
        self._flusher: gevent.Greenlet | None = None

    def _new_columns(self) -> dict[str, list[Any]]:
        """Start empty columns; returns the previous ones. ``_appenders`` are their bound ``append``s."""
        previous, self._columns = self._columns, {name: [] for name in COLLECTED_COLUMNS}
        self._appenders = tuple(self._columns[name].append for name in COLLECTED_COLUMNS)
        return previous

    @property
    def pending(self) -> int:
        return len(self._columns["sent_ns"])

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        response_length: int,
        response: Any = None,
        context: Mapping[str, Any] | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        """Locust ``request`` event listener: append one row (hot path: only appends and dict lookups)."""
        (
            a_intended,
            a_sent,
            a_latency,
            a_consumer,
            a_tier,
            a_endpoint,
            a_method,
            a_cost,
            a_status,
            a_error,
            a_limit,
            a_remaining,
            a_reset,
            a_retry,
            a_degraded,
            a_replica,
            a_upstream,
            a_limit_month,
            a_remaining_month,
            a_window_limit,
            a_window_remaining,
        ) = self._appenders
        qq: RequestContext | None = context.get(CONTEXT_KEY) if context else None
        if qq is not None:
            a_intended(qq.intended_ns)
            a_sent(qq.sent_ns)
            a_consumer(qq.consumer)
            a_tier(qq.tier)
            a_endpoint(qq.endpoint)
            a_cost(qq.cost)
        else:
            sent = int((start_time if start_time is not None else time.time()) * 1e9)
            a_intended(sent)
            a_sent(sent)
            a_consumer(None)
            a_tier(None)
            a_endpoint(name.split("?", 1)[0])
            a_cost(None)
        a_latency(response_time)
        a_method(request_type)
        status = (getattr(response, "status_code", 0) or 0) if response is not None else 0
        a_status(status)
        if exception is not None:
            a_error(str(exception)[:ERROR_TEXT_MAX] or type(exception).__name__)
        else:
            a_error("no response" if status == 0 else None)
        headers = getattr(response, "headers", None) if response is not None else None
        limit, remaining, reset, retry, degraded, replica, upstream, month_limit, month_left, w_limit, w_left = (
            NO_HEADERS if headers is None else header_texts(headers)
        )
        a_limit(limit)
        a_remaining(remaining)
        a_reset(reset)
        a_retry(retry)
        a_degraded(degraded)
        a_replica(replica)
        a_upstream(upstream)
        a_limit_month(month_limit)
        a_remaining_month(month_left)
        a_window_limit(w_limit)
        a_window_remaining(w_left)
        self.rows_recorded += 1

    def flush(self) -> str | None:
        """Hand the rows collected so far to the writer as the next part; returns its name (``None`` if no rows)."""
        if not self.pending:
            return None
        columns = self._new_columns()
        rows = len(columns["sent_ns"])
        self._seq += 1
        name = f"part-{self.worker}-{self._seq:06d}.parquet"
        try:
            self.writer.write(name, build_table(columns, self.worker))
        except Exception:
            self.write_errors += rows
            raise
        self.rows_written += rows
        self.parts_written += 1
        return name

    def _flush_forever(self, interval_s: float) -> None:
        while True:
            gevent.sleep(interval_s)
            try:
                self.flush()
            except Exception:
                log.exception("history: writing a part failed (%d rows lost so far)", self.write_errors)

    def start(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        """Start the background flusher greenlet (idempotent).

        Also warms up pyarrow's compute kernels (~0.3 s the first time), so the first flush during the
        run does not stall this process's users.
        """
        float_column(["0"])
        if self._flusher is None or self._flusher.dead:
            self._flusher = gevent.spawn(self._flush_forever, interval_s)

    def close(self) -> None:
        """Stop the flusher and write the remaining rows."""
        if self._flusher is not None:
            self._flusher.kill(block=True)
            self._flusher = None
        self.flush()
