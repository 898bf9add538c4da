"""Everything verification reads from a run folder, loaded once in a compact in-memory form.

The history is read column by column (peak memory: the frame plus one column), strings as categoricals
(dictionary codes, not Python objects) and rows put in ``sent_ns`` order. Columns no checker uses
(``method``, ``error``, ``replica``, ``worker``) are not loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quotaquake.errors import ConfigError
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import RATE_LIMIT_COLUMNS, SCHEMA
from quotaquake.runfolder.models import (
    EngineRecord,
    FaultWindow,
    HostSample,
    MonthlySeed,
    PrometheusSnapshot,
    RunInfo,
)
from quotaquake.verify.data.grouping import Groups, group_rows

CATEGORY_COLUMNS: tuple[str, ...] = ("consumer", "tier", "endpoint", "degraded")
NUMERIC_COLUMNS: tuple[str, ...] = (
    "intended_ns",
    "sent_ns",
    "latency_ms",
    "cost",
    "status",
    *RATE_LIMIT_COLUMNS,
    "upstream_ms",
)
VERIFY_COLUMNS: tuple[str, ...] = NUMERIC_COLUMNS + CATEGORY_COLUMNS
# Held as float32 (exact for the integers up to 2**24 and short decimals they carry) to save 4 bytes/row
# each; latencies and times stay 64-bit.
FLOAT32_COLUMNS: frozenset[str] = frozenset({"cost", *RATE_LIMIT_COLUMNS})

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass
class RunData:
    """A run as the checkers see it. ``history`` is sorted by ``sent_ns``; derived masks are cached."""

    info: RunInfo
    history: pd.DataFrame
    faults: list[FaultWindow] = field(default_factory=list)
    prometheus: PrometheusSnapshot | None = None
    monthly_seeds: list[MonthlySeed] = field(default_factory=list)  # usage seeded before the run
    engine: EngineRecord | None = None  # what the load engine recorded (None: it never wrote engine.json)
    chaos_ran: bool = False  # an experiment was part of the run (faults.json exists, maybe empty)
    probe_statuses: list[int | None] = field(default_factory=list)  # chaos probes' own gateway requests
    probe_times: list[float] = field(default_factory=list)  # when each of them was answered (epoch s)
    probe_consumers: list[str | None] = field(default_factory=list)  # whose key each of them carried
    probe_ledger: bool = False  # the experiment's probes recorded their requests (a ledger exists)
    host: list[HostSample] = field(default_factory=list)  # the machine each second (host.jsonl); none if unsampled

    @cached_property
    def groups(self) -> Groups:
        """Rows grouped by consumer (block layout, send order within each consumer)."""
        consumer = self.history["consumer"].cat
        return group_rows(np.asarray(consumer.codes), np.asarray(self.history["sent_ns"]), len(consumer.categories))

    @cached_property
    def in_fault(self) -> BoolArray:
        """True for rows sent inside a fault window (open windows last to the end of the run)."""
        sent = np.asarray(self.history["sent_ns"])
        mask = np.zeros(len(sent), dtype=np.bool_)
        for window in self.faults:
            start, end = fault_bounds_ns(window)
            mask |= (sent >= start) & (sent <= end)
        return mask

    @cached_property
    def degraded(self) -> BoolArray:
        """True for responses marked ``x-quotaquake-degraded`` (decided without Redis)."""
        return np.asarray(self.history["degraded"].cat.codes >= 0)

    @cached_property
    def fault_ends_ns(self) -> IntArray:
        """Sorted rollback ends of the fault windows (epoch ns); open windows are left out."""
        ends = [fault_bounds_ns(w)[1] for w in self.faults if w.end is not None]
        return np.sort(np.asarray(ends, dtype=np.int64))


def fault_bounds_ns(window: FaultWindow) -> tuple[int, int]:
    """(start, end) of a fault window in epoch ns; an open window ends at the largest int64."""
    end = np.iinfo(np.int64).max if window.end is None else int(window.end * 1e9)
    return int(window.start * 1e9), end


def consumer_codes(history: pd.DataFrame) -> npt.NDArray[np.int64]:
    return np.asarray(history["consumer"].cat.codes, dtype=np.int64)


def load_run(run_dir: Path) -> RunData:
    """Everything verification reads from ``run_dir``; a missing or corrupt file is a ``ConfigError``."""
    folder = RunFolder(run_dir)
    info = folder.read_info()
    engine = folder.read_engine()
    probes = folder.read_probe_requests()
    return RunData(
        info=info,
        history=read_verify_history(folder),
        faults=folder.read_faults(),
        prometheus=folder.read_prometheus(),
        monthly_seeds=[] if engine is None else engine.monthly_seeds,
        engine=engine,
        chaos_ran=folder.had_experiment(),
        probe_statuses=[p.status for p in probes],
        probe_times=[p.t for p in probes],
        probe_consumers=[p.consumer for p in probes],
        probe_ledger=folder.probe_ledger.is_file(),
        host=folder.read_host_samples(),
    )


def read_verify_history(folder: RunFolder, columns: tuple[str, ...] = VERIFY_COLUMNS) -> pd.DataFrame:
    """The history's ``columns`` in send order: numbers as numpy arrays (nulls NaN), strings categorical."""
    parts = folder.history_parts()
    if not parts:
        return _empty_frame(columns)
    data: dict[str, object] = {}
    order = None
    if "sent_ns" in columns:
        sent = np.asarray(_numeric(_read_table(parts, "sent_ns").column(0), "sent_ns"), dtype=np.int64)
        order = _send_order(sent)
        data["sent_ns"] = sent if order is None else sent[order]
    for name in columns:
        if name not in data:
            data[name] = _read_column(parts, name, order)
    pa.default_memory_pool().release_unused()  # hand Arrow's freed read buffers back to the OS
    return pd.DataFrame({name: data[name] for name in columns}, copy=False)


def _send_order(sent: npt.NDArray[np.int64]) -> IntArray | None:
    """Permutation putting rows in ``sent_ns`` order; ``None`` if they already are."""
    if len(sent) < 2 or bool(np.all(sent[1:] >= sent[:-1])):
        return None
    return np.argsort(sent, kind="stable").astype(np.int64)


def _read_table(parts: list[Path], name: str) -> pa.Table:
    dictionary = [name] if SCHEMA.field(name).type == pa.string() else None
    schema = pa.schema([SCHEMA.field(name)]) if dictionary is None else None
    try:
        return pq.read_table(parts, columns=[name], read_dictionary=dictionary, schema=schema)
    except (OSError, pa.ArrowException) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(parts[0].parent, None, f"a history part is corrupt: column {name}: {reason}") from None


def _read_column(parts: list[Path], name: str, order: IntArray | None) -> object:
    column = _read_table(parts, name).column(0)
    if SCHEMA.field(name).type == pa.string():
        categorical = column.to_pandas().array
        assert isinstance(categorical, pd.Categorical)
        codes = np.asarray(categorical.codes)
        if order is not None:
            codes = codes[order]
        return pd.Categorical.from_codes(codes, categories=categorical.categories)
    values = _numeric(column, name)
    return values if order is None else values[order]


def _numeric(column: pa.ChunkedArray, name: str) -> npt.NDArray[np.generic]:
    arrow_type = SCHEMA.field(name).type
    if name in FLOAT32_COLUMNS:
        return np.asarray(column.cast(pa.float32()).to_numpy(zero_copy_only=False), dtype=np.float32)
    if pa.types.is_floating(arrow_type):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    filled = column.fill_null(0) if column.null_count else column
    return np.asarray(filled.to_numpy(), dtype=arrow_type.to_pandas_dtype())


def _empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    data: dict[str, object] = {}
    for name in columns:
        arrow_type = SCHEMA.field(name).type
        if arrow_type == pa.string():
            data[name] = pd.Categorical.from_codes(np.zeros(0, dtype=np.int8), categories=pd.Index([], dtype=str))
        else:
            dtype = np.float32 if name in FLOAT32_COLUMNS else arrow_type.to_pandas_dtype()
            data[name] = np.zeros(0, dtype=dtype)
    return pd.DataFrame(data, copy=False)
