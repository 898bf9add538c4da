"""The run folder: what one run records, and ``run.json``, the metadata needed to judge and reproduce it.

Layout of ``reports/<run-id>/``::

    run.json            RunInfo below
    history/            request history (quotaquake.load.history)
    locust_*.csv        Locust's own stats; locust.html its report; locust.log its output
    locust_totals.json  Locust's final request and failure counts, written at quit
    chaos/journal.json  Chaos Toolkit journal, when an experiment ran
    chaos/probe-requests.jsonl  requests the experiment's probes sent through the gateway
    faults.json         fault windows derived from the journal (list of FaultWindow)
    prometheus.json     server-side counters snapshotted before teardown (PrometheusSnapshot)
    verdicts.json       written by verification; index.html and junit.xml by the report
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from quotaquake.policy import Policy
from quotaquake.stack.state import QuotaModel

RUN_FILE = "run.json"
FAULTS_FILE = "faults.json"
PROMETHEUS_FILE = "prometheus.json"
VERDICTS_FILE = "verdicts.json"


class MonthlySeed(BaseModel):
    """Monthly usage already counted for a consumer before the run (the quota-month scenario seeds it)."""

    consumer: str
    used: float


class RunInfo(BaseModel):
    run_id: str
    scenario: str
    target_rate: float | None = None  # req/s the open model aimed for (None for closed-model runs)
    duration_s: float | None = None
    started_at: datetime
    ended_at: datetime | None = None
    provider: str = "local"
    replicas: int = 3
    defect: str | None = None
    model: QuotaModel = "token-bucket"
    policy: Policy
    command: list[str] = Field(default_factory=list)  # how to reproduce the run
    locust_processes: int = 1
    monthly_seeds: list[MonthlySeed] = Field(default_factory=list)
    locust_request_count: int | None = None
    notes: list[str] = Field(default_factory=list)


class FaultWindow(BaseModel):
    """A period during which a fault was active, from the chaos journal (epoch seconds)."""

    name: str  # e.g. "kill redis"
    service: str | None = None
    start: float
    end: float | None  # rollback end; None if never rolled back


class PrometheusSnapshot(BaseModel):
    """Server-side counts over the run window, taken from Prometheus before the stack went down."""

    url: str
    start: float
    end: float
    requests: float | None = None  # requests the gateway replicas answered on the API routes
    rejected_429: float | None = None
    degraded_decisions: float | None = None
    queries: dict[str, str] = Field(default_factory=dict)
    error: str | None = None


def read_run_info(run_dir: Path) -> RunInfo:
    return RunInfo.model_validate_json((run_dir / RUN_FILE).read_text(encoding="utf-8"))


def write_run_info(run_dir: Path, info: RunInfo) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_FILE).write_text(info.model_dump_json(indent=2), encoding="utf-8")
