"""The baseline store: a folder of Parquet files, one per run, named ``<run_id>.parquet``.

Each file holds the run's summary rows (``summary.SUMMARY_COLUMNS``) with the run's identity repeated on
every row (``IDENTITY_COLUMNS``: run id, UTC time, commit, machine, stack identity/provider, scenario).
One file per run makes the store safe to keep as a CI cache or artifact: appending never rewrites other
runs, and two copies merge by taking the union of files (a run id present in both is kept once).
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from quotaquake.errors import ConfigError, UsageError
from quotaquake.gate.summary import SUMMARY_COLUMNS, conform

IDENTITY_COLUMNS: dict[str, str] = {
    "run_id": "str",
    "time": "datetime64[us, UTC]",
    "commit": "str",
    "machine": "str",
    "cpus": "int64",
    "stack": "str",
    "scenario": "str",
    "rate": "float64",
    "duration_s": "float64",
    "defect": "str",
    "status": "str",
    "verdicts": "str",
    "aborted": "str",
}
"""Column name -> pandas dtype of the identity of a run, in order, in front of the summary columns."""

MATCH_COLUMNS: tuple[str, ...] = ("scenario", "rate", "duration_s", "stack", "cpus")
"""Identity columns two runs must share to be compared: what was asked of which stack on how many cores
(not the host name: CI runners are new machines every night; not the commit or defect: what the gate
judges)."""

RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SUFFIX = ".parquet"


@dataclass(frozen=True)
class RunIdentity:
    """Which run a summary belongs to. ``time`` must be timezone-aware (stored in UTC, microseconds);
    ``machine`` is the host name and ``cpus`` its CPU count; ``stack`` names the system under test
    (``provider/replicas/model``, e.g. ``local/3-replicas/token-bucket``); ``rate`` (req/s) and
    ``duration_s`` what the load was asked for (NaN: not given); ``defect`` a seeded defect ("" for none);
    ``status`` the run's own outcome (pass, fail, unknown) and ``verdicts`` each check's status as JSON
    (``{"quota-accuracy": "pass", ...}``): the absolute verdicts the gate keeps applying; ``aborted`` why
    an abortOnFail threshold stopped the load ("" when it ran to its end)."""

    run_id: str
    time: datetime
    commit: str
    machine: str
    stack: str
    scenario: str
    cpus: int = 0
    rate: float = math.nan
    duration_s: float = math.nan
    defect: str = ""
    status: str = "unknown"
    verdicts: str = "{}"
    aborted: str = ""


def run_file(store: Path, run_id: str) -> Path:
    """The file of ``run_id`` in ``store``; ``ValueError`` unless the id is a safe file name
    (letters, digits, ``.``, ``_``, ``-``; at most 128 characters; not starting with a dot)."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} is not a safe file name")
    return store / f"{run_id}{SUFFIX}"


def append(store: Path, summary: pd.DataFrame, identity: RunIdentity) -> Path:
    """Add one run's summary to ``store`` (created if missing) as ``<run_id>.parquet``; returns the file.

    The write is atomic (temporary file, then rename). A run id already in the store is a ``UsageError``:
    runs are immutable, so a rerun needs a new id.
    """
    if identity.time.tzinfo is None:
        raise ValueError("identity.time must be timezone-aware")
    target = run_file(store, identity.run_id)
    if target.exists():
        raise UsageError(f"{target}: run {identity.run_id} is already in the baseline store")
    store.mkdir(parents=True, exist_ok=True)
    frame = conform(summary)
    identity_values: dict[str, str | int | float | pd.Timestamp] = {
        name: getattr(identity, name) for name in IDENTITY_COLUMNS if name != "time"
    } | {"time": pd.Timestamp(identity.time.astimezone(UTC))}
    _write_atomic(_conform_run(frame.assign(**identity_values)), target)
    return target


def _write_atomic(frame: pd.DataFrame, target: Path) -> None:
    temporary = target.with_name(f".{target.name}.tmp")
    frame.to_parquet(temporary, engine="pyarrow", index=False)
    os.replace(temporary, target)


def _conform_run(frame: pd.DataFrame) -> pd.DataFrame:
    """Identity columns then summary columns, each in its schema dtype."""
    identity = frame.loc[:, list(IDENTITY_COLUMNS)].astype(IDENTITY_COLUMNS)
    summary = conform(frame, extra=("run_id",)).drop(columns="run_id")
    return pd.concat([identity.reset_index(drop=True), summary], axis=1)


def empty_frame() -> pd.DataFrame:
    """A store frame with no rows (identity and summary columns in their dtypes)."""
    columns = {**IDENTITY_COLUMNS, **SUMMARY_COLUMNS}
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def read_run(path: Path) -> pd.DataFrame:
    """One run file, schema-checked; a file that is not a run of this store is a ``ConfigError``."""
    try:
        frame = _conform_run(pd.read_parquet(path, engine="pyarrow"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(path, None, f"not a quotaquake baseline run: {exc}") from None
    ids = frame["run_id"].unique().tolist()
    if ids != [path.name.removesuffix(SUFFIX)]:
        raise ConfigError(path, "run_id", f"holds run(s) {ids}, expected only the file's own name")
    return frame


def run_files(store: Path) -> list[Path]:
    """The run files of ``store``, sorted by name (none when the folder does not exist)."""
    if not store.is_dir():
        return []
    return sorted(p for p in store.iterdir() if p.name.endswith(SUFFIX) and RUN_ID_RE.fullmatch(p.stem))


def load(
    store: Path,
    filters: Mapping[str, str | Collection[str]] | None = None,
    last_n: int | None = None,
) -> pd.DataFrame:
    """All rows of the store's runs, oldest run first (by time, then run id).

    ``filters`` keeps rows whose column equals a value (a string) or is one of several (a collection), on
    any identity or summary column, e.g. ``{"machine": "ci-2core", "metric": ["http_req_duration"]}``.
    ``last_n`` then keeps only the newest ``last_n`` runs that remain. A missing store is empty.
    """
    frames = [read_run(path) for path in run_files(store)]
    frame = pd.concat(frames, ignore_index=True) if frames else empty_frame()
    frame = _filtered(frame, filters or {})
    frame = frame.sort_values(["time", "run_id"], kind="stable").reset_index(drop=True)
    if last_n is not None:
        frame = frame[frame["run_id"].isin(run_ids(frame)[-last_n:] if last_n > 0 else [])]
    return frame.reset_index(drop=True)


def _filtered(frame: pd.DataFrame, filters: Mapping[str, str | Collection[str]]) -> pd.DataFrame:
    for column, wanted in filters.items():
        if column not in frame.columns:
            raise ValueError(f"cannot filter on {column!r}: not a column of the baseline store")
        values = [wanted] if isinstance(wanted, str) else list(wanted)
        frame = frame[frame[column].isin(values)]
    return frame


def run_ids(frame: pd.DataFrame) -> list[str]:
    """The distinct run ids of a store frame, oldest first (by time, then run id)."""
    runs = frame.loc[:, ["time", "run_id"]].drop_duplicates().sort_values(["time", "run_id"], kind="stable")
    return [str(run_id) for run_id in runs["run_id"]]


def merge(store_a: Path, store_b: Path, into: Path | None = None) -> list[str]:
    """Union of two stores into ``into`` (default ``store_a``); returns the run ids copied, sorted.

    A run id present in both is kept once, from ``store_a`` (runs are immutable, so either copy serves);
    every copied file is validated first, and each copy is atomic.
    """
    target = store_a if into is None else into
    target.mkdir(parents=True, exist_ok=True)
    present = {p.name for p in run_files(target)}
    added: list[str] = []
    for source in (store_a, store_b):
        for path in run_files(source):
            if path.name in present:
                continue
            read_run(path)
            temporary = target / f".{path.name}.tmp"
            shutil.copyfile(path, temporary)
            os.replace(temporary, target / path.name)
            present.add(path.name)
            added.append(path.name.removesuffix(SUFFIX))
    return sorted(added)
