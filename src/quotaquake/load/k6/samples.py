"""k6's per-request output -> the request history (``quotaquake.runfolder.history.SCHEMA``).

k6 writes every metric sample as a CSV row (``--out csv``, gzip, ``timeFormat=unix_nano``): 14 rows per
request with our script. Three kinds are read, batch by batch (the file is streamed, never read whole):

* ``http_reqs`` (one per request k6 counted): its timestamp is when the response ended (k6's
  ``Trail.EndTime``, wall clock, ns), its ``status``/``error`` tags what k6 saw, its metadata
  ``qq=<iteration>`` which iteration sent it;
* ``qq_response`` (the script's record, see ``script.js``): iteration, the scenario's start (ms), status,
  error code, latency (ms, from asking for a connection to the response's end), error text and the
  rate-limit headers, ``~``-separated and URL-encoded;
* ``dropped_iterations``: when a tick found no free VU.

A history row per ``http_reqs`` row, joined with its record by iteration: caller and endpoint from the
plan's pick of that iteration, ``sent_ns = end - latency``, ``intended_ns`` from the schedule
(``quotaquake.load.k6.schedule.intended_times``). A request without a record (its VU was interrupted
between the response and the record: a hard stop) keeps k6's status and error, no latency, and
``sent_ns`` = its end. A file cut short (k6 killed) yields the rows before the cut.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from quotaquake.load.k6.plan import RECORD_METRIC, K6Plan
from quotaquake.load.k6.schedule import intended_times
from quotaquake.load.recorder import HEADER_COLUMNS, NUMERIC_HEADER_COLUMNS, float_column
from quotaquake.runfolder.history import SCHEMA, write_part

REQUEST_METRIC = "http_reqs"
DROP_METRIC = "dropped_iterations"
RECORD_FIELDS = ("iteration", "start_ms", "status", "error_code", "latency_ms", "error", *HEADER_COLUMNS)
PART_ROWS = 250_000
BLOCK_BYTES = 1 << 20
_QQ = r"(?:^|&)qq=(?P<qq>[^&]*)"
_COLUMNS = {"metric_name": pa.string(), "timestamp": pa.int64(), "status": pa.string(), "error": pa.string(),
            "metadata": pa.string()}  # fmt: skip

I64 = npt.NDArray[np.int64]


@dataclass
class K6Samples:
    """The rows of k6's CSV that make the history."""

    requests: pa.Table  # iteration, end_ns, status (k6's tag), error (k6's tag)
    records: pa.Table  # RECORD_FIELDS: iteration as int64, the rest as strings
    drops_ns: I64
    truncated: str | None = None  # why the file ended early, if it did
    rows_read: int = field(default=0)


def read_samples(path: Path) -> K6Samples:
    """Stream ``path`` (k6's gzipped CSV) and keep the rows of requests, records and drops."""
    requests: list[pa.Table] = []
    records: list[pa.Table] = []
    drops: list[I64] = []
    truncated, rows = None, 0
    read = pacsv.ReadOptions(block_size=BLOCK_BYTES)
    convert = pacsv.ConvertOptions(column_types=_COLUMNS, include_columns=list(_COLUMNS), strings_can_be_null=True)
    try:
        with pa.input_stream(str(path), compression="gzip") as stream:
            reader = pacsv.open_csv(stream, read_options=read, convert_options=convert)
            for batch in reader:
                rows += batch.num_rows
                _collect(pa.Table.from_batches([batch]), requests, records, drops)
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        truncated = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return K6Samples(
        requests=pa.concat_tables(requests) if requests else _empty_requests(),
        records=pa.concat_tables(records) if records else _empty_records(),
        drops_ns=np.concatenate(drops) if drops else np.zeros(0, dtype=np.int64),
        truncated=truncated,
        rows_read=rows,
    )


def _collect(table: pa.Table, requests: list[pa.Table], records: list[pa.Table], drops: list[I64]) -> None:
    names = table.column("metric_name")
    asked = table.filter(pc.equal(names, REQUEST_METRIC))
    if asked.num_rows:
        iteration = pc.cast(pc.struct_field(pc.extract_regex(asked.column("metadata"), _QQ), "qq"), pa.int64())
        requests.append(
            pa.table(
                {
                    "iteration": iteration,
                    "end_ns": asked.column("timestamp"),
                    "status": pc.cast(asked.column("status"), pa.int32()),
                    "error": asked.column("error"),
                }
            ).filter(pc.is_valid(iteration))
        )
    answered = table.filter(pc.equal(names, RECORD_METRIC))
    if answered.num_rows:
        parts = pc.split_pattern(pc.struct_field(pc.extract_regex(answered.column("metadata"), _QQ), "qq"), "~")
        whole = parts.filter(pc.equal(pc.list_value_length(parts), len(RECORD_FIELDS)))
        fields = {name: pc.list_element(whole, n) for n, name in enumerate(RECORD_FIELDS)}
        fields["iteration"] = pc.cast(fields["iteration"], pa.int64())
        records.append(pa.table(fields))
    dropped = table.filter(pc.equal(names, DROP_METRIC))
    if dropped.num_rows:
        drops.append(dropped.column("timestamp").to_numpy().astype(np.int64))


def _empty_requests() -> pa.Table:
    schema = pa.schema(
        [("iteration", pa.int64()), ("end_ns", pa.int64()), ("status", pa.int32()), ("error", pa.string())]
    )
    return schema.empty_table()


def _empty_records() -> pa.Table:
    return pa.schema(
        [(name, pa.int64() if name == "iteration" else pa.string()) for name in RECORD_FIELDS]
    ).empty_table()


def _decoded(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """URL-decoded strings, empty -> null (decoded once per distinct value)."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    encoded = pc.dictionary_encode(pc.if_else(pc.equal(array, ""), None, array))
    words = [None if w is None else unquote(w) for w in encoded.dictionary.to_pylist()]
    return pa.array(words, pa.string()).take(encoded.indices) if len(words) else pa.nulls(len(array), pa.string())


def worker_name(pid: int) -> str:
    """``<host>-k6-<pid>``: the generator process, in rows and part names (like Locust's ``<host>-<pid>``)."""
    return f"{socket.gethostname()}-k6-{pid}"


@dataclass(frozen=True)
class History:
    """The history of a k6 run (rows in send order) and what its conversion established."""

    table: pa.Table
    origin_ns: int | None  # the schedule's start the intended times count from
    orphans: int  # requests without a record (latency unknown)


def history_table(plan: K6Plan, samples: K6Samples, worker: str) -> History:
    """One ``SCHEMA`` row per request k6 counted (see the module docstring)."""
    joined = samples.requests.join(samples.records, keys="iteration", right_keys="iteration", join_type="left outer",
                                   right_suffix="_record", coalesce_keys=True)  # fmt: skip
    if joined.num_rows == 0:
        return History(SCHEMA.empty_table(), None, 0)
    iteration = joined.column("iteration").to_numpy().astype(np.int64)
    pick = np.asarray(plan.picks, dtype=np.int64)[iteration % len(plan.picks)]
    caller, endpoint = pick // len(plan.endpoints), pick % len(plan.endpoints)
    latency = pc.cast(joined.column("latency_ms"), pa.float64())
    has_record = pc.is_valid(latency).to_numpy(zero_copy_only=False)
    end = joined.column("end_ns").to_numpy().astype(np.int64)
    latency_ns = np.round(np.nan_to_num(latency.to_numpy(zero_copy_only=False)) * 1e6).astype(np.int64)
    sent = end - np.where(has_record, latency_ns, 0)
    starts = pc.cast(joined.column("start_ms"), pa.int64()).drop_null()
    start_ms = int(pc.min(starts).as_py()) if len(starts) else int(sent.min() // 1_000_000)
    intended, origin = intended_times(plan.schedule, sent, samples.drops_ns, start_ms)
    status = pc.coalesce(pc.cast(joined.column("status_record"), pa.int32()), joined.column("status"))
    columns = {
        "intended_ns": pa.array(intended, pa.int64()),
        "sent_ns": pa.array(sent, pa.int64()),
        "latency_ms": latency,
        "consumer": pa.array([c.consumer for c in plan.callers], pa.string()).take(caller),
        "tier": pa.array([c.tier for c in plan.callers], pa.string()).take(caller),
        "endpoint": pa.array([e.path for e in plan.endpoints], pa.string()).take(endpoint),
        "method": pa.array([e.method for e in plan.endpoints], pa.string()).take(endpoint),
        "cost": pa.array([e.cost for e in plan.endpoints], pa.float64()).take(endpoint),
        "status": status,
        "error": _error_text(joined, status),
        **_header_columns(joined),
        "worker": pa.array([worker] * joined.num_rows, pa.string()),
    }
    table = pa.table({name: columns[name] for name in SCHEMA.names}).cast(SCHEMA)  # in the schema's order
    table = table.take(pc.sort_indices(table.column("sent_ns")))
    return History(table, origin, int(np.count_nonzero(~has_record)))


def _error_text(joined: pa.Table, status: pa.ChunkedArray) -> pa.Array:
    """For status 0 and 5xx (as the Locust recorder): the record's error, else k6's error tag (requests
    without a record), else ``no response`` / ``HTTP <status>``; null for other statuses."""
    texts = pc.coalesce(_decoded(joined.column("error_record")), _decoded(joined.column("error"))).to_pylist()
    codes = status.to_pylist()
    return pa.array([_error(text, code) for text, code in zip(texts, codes, strict=True)], pa.string())


def _error(text: str | None, status: int | None) -> str | None:
    if status in (0, None):
        return text or "no response"
    return (text or f"HTTP {status}") if status >= 500 else None


def _header_columns(joined: pa.Table) -> dict[str, pa.Array]:
    columns = {}
    for name in HEADER_COLUMNS:
        text = _decoded(joined.column(name))
        columns[name] = float_column(text.to_pylist()) if name in NUMERIC_HEADER_COLUMNS else text
    return columns


def write_history(history_dir: Path, history: History, worker: str) -> int:
    """Write the rows as ``part-<worker>-<seq>.parquet`` parts of ``PART_ROWS``; returns the parts written."""
    table = history.table
    parts = 0
    for start in range(0, table.num_rows, PART_ROWS):
        parts += 1
        write_part(history_dir, f"part-{worker}-{parts:06d}.parquet", table.slice(start, PART_ROWS))
    return parts
