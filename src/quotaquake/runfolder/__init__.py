"""The run folder: every path under ``reports/<run-id>/`` and the one reader and writer of each file.

Layout (models in ``quotaquake.runfolder.models``, the history schema in ``quotaquake.runfolder.history``)::

    run.json                    RunInfo: what was asked for, against what (orchestrating process)
    engine.json                 EngineRecord: the load engine's start, end, totals, seeds, workers (Locust master)
    history/                    request history, Parquet parts (every Locust worker process, or the master
                                for workers on other machines, which ship their parts to it)
    .qq-master-token            the Locust master's token: workers that find it here share this folder
    locust_*.csv, locust.html   Locust's own stats and report; locust.log its output
    k6-script.js                the k6 script of a ``--engine k6`` run (plan inlined: re-runnable with ``k6 run``)
    k6-samples.csv.gz           k6's every metric sample (``--out csv``): what history/ is converted from
    k6-summary.json, k6.log     k6's end-of-test summary (``--summary-export``) and its output
    chaos/journal.json          Chaos Toolkit journal; chaostoolkit.log, chaos-output.txt its output
    chaos/probe-requests.jsonl  requests the experiment's probes sent through the gateway (chaos probes)
    faults.json                 fault windows derived from the journal (orchestrating process)
    prometheus.json             server-side counters over the run window (orchestrating process)
    host.jsonl                  the machine each second during the load: CPU, pressure, who used it (host sampler)
    verdicts.json               verification; index.html and junit.xml: the report
    summary.parquet             verification: one row per metric x tags x aggregation, with bounds (the gate's input)

Readers turn a missing, truncated or corrupt file into a one-line ``ConfigError`` naming the file
(exit code 2), never a traceback and never exit code 1, which means "the system failed a check".
Writers replace files atomically (temp file + rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from quotaquake.config import validation_problem
from quotaquake.errors import ConfigError
from quotaquake.runfolder.history import check_parts, part_paths
from quotaquake.runfolder.models import (
    EngineRecord,
    FaultWindow,
    HostSample,
    K6Summary,
    ProbeRequest,
    PrometheusSnapshot,
    RunInfo,
)

ModelT = TypeVar("ModelT", bound=BaseModel)
_FAULTS = TypeAdapter(list[FaultWindow])

__all__ = ["RunFolder", "append_probe_requests"]


@dataclass(frozen=True)
class RunFolder:
    """One run's folder. Paths are properties; ``read_*``/``write_*`` are the only access to each file."""

    path: Path

    # -- paths -----------------------------------------------------------------------------------------
    @property
    def run_file(self) -> Path:
        return self.path / "run.json"

    @property
    def engine_file(self) -> Path:
        return self.path / "engine.json"

    @property
    def history_dir(self) -> Path:
        return self.path / "history"

    @property
    def master_token_file(self) -> Path:
        """Written by a Locust master: a worker that finds the master's token here shares this folder."""
        return self.path / ".qq-master-token"

    @property
    def locust_csv_prefix(self) -> Path:
        """Locust's ``--csv`` prefix: ``locust_stats.csv``, ``locust_stats_history.csv``, ... beside it."""
        return self.path / "locust"

    @property
    def locust_stats_csv(self) -> Path:
        return self.path / "locust_stats.csv"

    @property
    def locust_html(self) -> Path:
        return self.path / "locust.html"

    @property
    def locust_log(self) -> Path:
        return self.path / "locust.log"

    @property
    def k6_script(self) -> Path:
        return self.path / "k6-script.js"

    @property
    def k6_samples(self) -> Path:
        """k6's CSV output, gzipped (k6 compresses because of the ``.gz`` name)."""
        return self.path / "k6-samples.csv.gz"

    @property
    def k6_summary(self) -> Path:
        return self.path / "k6-summary.json"

    @property
    def k6_log(self) -> Path:
        return self.path / "k6.log"

    @property
    def chaos_dir(self) -> Path:
        return self.path / "chaos"

    @property
    def journal_file(self) -> Path:
        return self.chaos_dir / "journal.json"

    @property
    def chaos_log(self) -> Path:
        return self.chaos_dir / "chaostoolkit.log"

    @property
    def chaos_output(self) -> Path:
        return self.chaos_dir / "chaos-output.txt"

    @property
    def probe_ledger(self) -> Path:
        return self.chaos_dir / "probe-requests.jsonl"

    @property
    def faults_file(self) -> Path:
        return self.path / "faults.json"

    @property
    def prometheus_file(self) -> Path:
        return self.path / "prometheus.json"

    @property
    def stack_logs_dir(self) -> Path:
        """The service logs of a stack the run started (copied before it stops and its folders go)."""
        return self.path / "stack-logs"

    @property
    def host_file(self) -> Path:
        return self.path / "host.jsonl"

    @property
    def verdicts_file(self) -> Path:
        return self.path / "verdicts.json"

    @property
    def summary_file(self) -> Path:
        """The run's summary (``quotaquake.gate.summary`` schema), written by verification after the checks."""
        return self.path / "summary.parquet"

    @property
    def report_file(self) -> Path:
        return self.path / "index.html"

    @property
    def junit_file(self) -> Path:
        return self.path / "junit.xml"

    # -- the folder --------------------------------------------------------------------------------------
    def check_creatable(self) -> None:
        """Refuse, before anything starts, a folder that could not be created: a file in the way, or a
        nearest existing ancestor that is not a writable folder (``ConfigError``)."""
        ancestor = self.path
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise ConfigError(self.path, None, f"cannot create the run folder: {ancestor} is not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise ConfigError(self.path, None, f"cannot create the run folder: {ancestor} is not writable")

    def create(self) -> RunFolder:
        """Make the folder (and its parents); a one-line ``ConfigError`` when that is impossible (a file
        in the way, no permission, a read-only or full disk)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".quotaquake-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(self.path, None, f"cannot write the run folder here: {exc.strerror}") from None
        return self

    def is_run(self) -> bool:
        return self.run_file.is_file()

    # -- run.json ------------------------------------------------------------------------------------------
    def read_info(self) -> RunInfo:
        if not self.run_file.is_file():
            raise ConfigError(self.run_file, None, "file not found (is this a run folder?)")
        return _read_model(self.run_file, RunInfo)

    def write_info(self, info: RunInfo) -> None:
        _write_text(self.run_file, info.model_dump_json(indent=2))

    # -- engine.json ---------------------------------------------------------------------------------------
    def read_engine(self) -> EngineRecord | None:
        """The load engine's record, or ``None`` when the engine never wrote one (killed at start)."""
        return _read_model(self.engine_file, EngineRecord) if self.engine_file.is_file() else None

    def write_engine(self, record: EngineRecord) -> None:
        _write_text(self.engine_file, record.model_dump_json(indent=2))

    # -- k6 ------------------------------------------------------------------------------------------------
    def write_k6_script(self, text: str) -> None:
        _write_text(self.k6_script, text)

    def read_k6_summary(self) -> K6Summary | None:
        """k6's summary export, or ``None`` when k6 wrote none (killed before the end of its test)."""
        return _read_model(self.k6_summary, K6Summary) if self.k6_summary.is_file() else None

    # -- history -------------------------------------------------------------------------------------------
    def history_parts(self) -> list[Path]:
        """Every history part, checked to be a readable part of our schema (``ConfigError`` otherwise)."""
        parts = part_paths(self.history_dir)
        check_parts(parts)
        return parts

    # -- faults.json ---------------------------------------------------------------------------------------
    def had_experiment(self) -> bool:
        """True when an experiment was part of the run (``faults.json`` exists, maybe empty)."""
        return self.faults_file.is_file()

    def read_faults(self) -> list[FaultWindow]:
        """The fault windows; none when the run had no experiment."""
        if not self.faults_file.is_file():
            return []
        try:
            return _FAULTS.validate_json(_read_bytes(self.faults_file))
        except ValidationError as exc:
            raise _problem(self.faults_file, exc) from None

    def write_faults(self, windows: Iterable[FaultWindow]) -> None:
        _write_text(self.faults_file, json.dumps([w.model_dump(mode="json") for w in windows], indent=2))

    # -- prometheus.json -----------------------------------------------------------------------------------
    def read_prometheus(self) -> PrometheusSnapshot | None:
        if not self.prometheus_file.is_file():
            return None
        return _read_model(self.prometheus_file, PrometheusSnapshot)

    def write_prometheus(self, snapshot: PrometheusSnapshot) -> None:
        _write_text(self.prometheus_file, snapshot.model_dump_json(indent=2))

    # -- host.jsonl -----------------------------------------------------------------------------------------
    def append_host_sample(self, sample: HostSample) -> None:
        """Append one sample as a line (one ``write`` of the whole line)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self.host_file.open("a", encoding="utf-8") as out:
            out.write(sample.model_dump_json() + "\n")

    def read_host_samples(self) -> list[HostSample]:
        """The host samples in file order; none without a file. A last line without its newline (the
        sampler was killed mid-write) is left out; any other bad line is a ``ConfigError``."""
        if not self.host_file.is_file():
            return []
        text = _read_bytes(self.host_file).decode("utf-8", "replace")
        lines = text.split("\n")
        complete = lines[:-1]  # the text after the last newline is empty, or a line cut short
        samples = []
        for number, line in enumerate(complete, 1):
            if not line.strip():
                continue
            try:
                samples.append(HostSample.model_validate_json(line))
            except ValidationError as exc:
                raise _problem(self.host_file, exc, f"line {number}") from None
        return samples

    # -- chaos ---------------------------------------------------------------------------------------------
    def read_probe_requests(self) -> list[ProbeRequest]:
        """Every request the chaos probes sent through the gateway; none without a ledger."""
        if not self.probe_ledger.is_file():
            return []
        requests = []
        for number, line in enumerate(_read_bytes(self.probe_ledger).decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                requests.append(ProbeRequest.model_validate_json(line))
            except ValidationError as exc:
                raise _problem(self.probe_ledger, exc, f"line {number}") from None
        return requests

    # -- verdicts.json -------------------------------------------------------------------------------------
    def write_verdicts(self, text: str) -> None:
        _write_text(self.verdicts_file, text)


def append_probe_requests(ledger: Path | None, requests: Iterable[ProbeRequest]) -> None:
    """Append ``requests`` to a probe ledger (one JSON line each); no-op when ``ledger`` is ``None``.

    The chaos probes' process learns the path from the experiment's configuration, not from a RunFolder.
    """
    if ledger is None:
        return
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a", encoding="utf-8") as out:
        for request in requests:
            out.write(request.model_dump_json() + "\n")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror}") from None


def _read_model(path: Path, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate_json(_read_bytes(path))
    except ValidationError as exc:
        raise _problem(path, exc) from None


def _problem(path: Path, exc: ValidationError, where: str | None = None) -> ConfigError:
    """A one-line error: corrupt JSON says so; a schema mismatch names the field."""
    first = exc.errors()[0]
    if first["type"].startswith("json"):
        return ConfigError(path, where, f"corrupt or truncated JSON ({first['msg']})")
    problem = validation_problem(path, exc)
    return ConfigError(path, f"{where}: {problem.field}" if where else problem.field, problem.problem)


def _write_text(path: Path, text: str) -> None:
    """Write atomically: a temp file beside ``path``, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
