"""What a run folder holds, file by file, as pydantic models: the contracts between record and check.

Each model is written by exactly one process (named in its docstring) and read by verification and the
report through ``quotaquake.runfolder.RunFolder``. Times are UTC: ``datetime`` fields are timezone-aware,
``float`` fields are epoch seconds.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from quotaquake.kongspec import KongSpec
from quotaquake.policy import Policy, QuotaModel


class MonthlySeed(BaseModel):
    """Monthly usage already counted for a consumer before the run (the quota-month scenario seeds it)."""

    consumer: str
    used: float


class InitialState(StrEnum):
    """What the run established about its consumers' quota state when it started.

    ``reset``: the limiter's state of every consumer in the state file was deleted before the first request
    (full buckets, month counters at 0, or at what the scenario then seeded); ``unknown``: the run could
    not (an external target) or was told not to, so buckets and month counters may be partly spent.
    """

    RESET = "reset"
    UNKNOWN = "unknown"


class RunInfo(BaseModel):
    """``run.json``: what was asked for and against what. Written only by the orchestrating process:
    ``quotaquake run``, or the Locust master of a plain ``locust -f`` run (which orchestrates itself)."""

    run_id: str
    scenario: str
    target_rate: float | None = None  # req/s the open model aimed for (None for closed-model runs)
    duration_s: float | None = None
    started_at: datetime
    ended_at: datetime | None = None
    provider: str = "local"
    stack_id: str | None = None  # the stack the run ran against (its state file's id)
    prometheus_url: str | None = None  # the target's Prometheus, when it declares one (server-side checks)
    replicas: int = 3
    defect: str | None = None
    model: QuotaModel = "token-bucket"
    kong: KongSpec | None = None  # model "kong": the plugin as the target declared it (stack state)
    policy: Policy
    command: list[str] = Field(default_factory=list)  # how to reproduce the run
    locust_processes: int = 1
    initial_state: InitialState = InitialState.UNKNOWN
    initial_state_at: datetime | None = None  # when the reset happened
    load_exit_code: int | None = None  # the load engine's exit code (negative: killed by that signal)
    notes: list[str] = Field(default_factory=list)


class EngineRecord(BaseModel):
    """``engine.json``: what the load engine itself recorded. Written only by the Locust master (or the
    single local runner): its start, its end and final counts when it quit, and the monthly usage it seeded.

    ``requests``/``failures`` are Locust's own totals over all workers, taken when every user had stopped
    (``None`` while running, and for ever when Locust was killed before it could quit).
    """

    engine: str = "locust"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    requests: int | None = None
    failures: int | None = None
    monthly_seeds: list[MonthlySeed] = Field(default_factory=list)


class FaultKind(StrEnum):
    """What a fault does to its service (``quotaquake.faults`` has one module per kind)."""

    OUTAGE = "outage"  # the service dies (SIGKILL, docker kill)
    PAUSE = "pause"  # the service hangs with its connections open (SIGSTOP, docker pause)
    REPLICA_LOSS = "replica-loss"  # gateway replicas die behind the load balancer
    POD_LOSS = "pod-loss"  # Kubernetes pods terminated (chaosk8s)


class ServiceRole(StrEnum):
    """What a service is for, whatever runs it: decides which degradation a fault of it calls for."""

    RATE_LIMIT_STORE = "rate-limit-store"  # Redis: shared quota state
    REGISTRY = "registry"  # Postgres: consumers and keys
    GATEWAY = "gateway"  # gateway replicas (Envoy + limiter, or Kong)
    LIMITER = "limiter"
    LOAD_BALANCER = "load-balancer"
    UPSTREAM = "upstream"  # the fingerprint API behind the gateway
    MONITORING = "monitoring"
    OTHER = "other"


class Expectation(StrEnum):
    """What the declared policy says clients see while a fault lasts (judged by the degradation check).

    ``fail-open-local``: limited tiers are still decided, by per-replica buckets, and marked degraded;
    ``fail-closed``: limited tiers get 503; ``available``: no declared degradation, clients are served.
    Kong 3.9 (``kong/plugins/rate-limiting/handler.lua:144-152``): ``fail-open-unlimited``: with
    ``fault_tolerant`` the plugin proxies limited tiers without rate-limit headers and without any limit;
    ``error-500``: without it, limited tiers get Kong's 500 ("An unexpected error occurred").
    """

    FAIL_OPEN_LOCAL = "fail-open-local"
    FAIL_CLOSED = "fail-closed"
    AVAILABLE = "available"
    FAIL_OPEN_UNLIMITED = "fail-open-unlimited"
    ERROR_500 = "error-500"


class FaultWindow(BaseModel):
    """``faults.json`` entries: a period during which a fault was active, from the chaos journal.

    Written by the orchestrating process (``quotaquake run``, or ``quotaquake verify --journal``) from
    the experiment's journal through the fault registry. ``end`` is the end of the activity that undid
    the fault; ``None`` if it was never undone.
    """

    name: str  # the activity's name, e.g. "kill-redis"
    kind: FaultKind
    service: str | None = None  # service name(s), comma-separated for several replicas
    role: ServiceRole = ServiceRole.OTHER
    expect: Expectation = Expectation.AVAILABLE
    start: float
    end: float | None


class PrometheusSnapshot(BaseModel):
    """``prometheus.json``: server-side counts over the run window, taken from the target's Prometheus
    before the stack went down. Written by the orchestrating process.

    ``decision_p99_ms``: the limiter's decision-time p99 from its histogram over the window.
    """

    url: str
    start: float
    end: float
    requests: float | None = None  # requests the gateway replicas answered on the API routes
    rejected_429: float | None = None
    degraded_decisions: float | None = None
    decision_p99_ms: float | None = None
    # Kong: per histogram (kong_latency_ms, upstream_latency_ms, request_latency_ms), requests observed over
    # the window per bucket upper bound in ms ("+Inf" included), cumulative as Prometheus keeps them
    latency_buckets: dict[str, dict[str, float]] = Field(default_factory=dict)
    queries: dict[str, str] = Field(default_factory=dict)
    error: str | None = None


class ProbeRequest(BaseModel):
    """``chaos/probe-requests.jsonl`` lines: one request a chaos probe sent through the load balancer.

    Appended by the chaos probes' process. ``t``: epoch seconds when it was answered.
    """

    t: float
    probe: str
    method: str
    path: str
    status: int | None  # None: no response (timeout, connection error)
    consumer: str | None = None  # the provisioned consumer whose key it carried (it counts in its quota)
