"""What a run folder holds, file by file, as pydantic models: the contracts between record and check.

Each model is written by exactly one process (named in its docstring) and read by verification and the
report through ``quotaquake.runfolder.RunFolder``. Times are UTC: ``datetime`` fields are timezone-aware,
``float`` fields are epoch seconds.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, JsonValue, computed_field

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


class CommandSetting(BaseModel):
    """One option of the quotaquake command that recorded the run, its value and where it came from
    (``run.json`` ``settings``).

    ``option``: as typed (``--rate``; ``locust arguments`` for the arguments passed on to Locust);
    ``source``: ``command line``, ``environment variable <NAME>``, ``config file <path> (<key>)``,
    ``default``, ``project file`` (the project's ``stack/policy.yaml``...) or ``packaged default``; a name
    resolved to a file says so (``command line (packaged scenario tiered)``). Passwords in URLs are ``***``.
    """

    option: str
    value: JsonValue
    source: str


class AbortRecord(BaseModel):
    """``run.json`` ``aborted``: ``quotaquake run`` stopped the load early because a k6-style threshold with
    ``abortOnFail`` was proven broken from the history (or the Prometheus) so far. ``after_s``: seconds of
    load at the decision; ``value``/``low``/``high``/``n``: the judged row then (bounds at the stricter
    confidence of a repeated look)."""

    at: datetime
    after_s: float
    threshold: str  # the threshold's label: "http_req_duration{tier:pro}: p(95)<50"
    reason: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    n: int | None = None
    confidence: float | None = None


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
    aborted: AbortRecord | None = None  # the load was stopped early by a threshold with abortOnFail
    config_file: str | None = None  # the quotaquake.toml / pyproject.toml that applied (None: none found)
    settings: list[CommandSetting] = Field(default_factory=list)  # every option of the command and its source
    engine_config_files: list[str] = Field(default_factory=list)  # engine.json's config_files, copied at the end


class Delivery(StrEnum):
    """How a Locust worker's history parts reached the master's run folder.

    ``shared-folder``: the worker wrote them there itself (it found the master's token in the folder: same
    machine or a shared file system); ``shipped``: it sent them to the master over Locust's messaging and
    the master wrote them; ``none``: it never learned where they go (no answer from the master).
    """

    SHARED_FOLDER = "shared-folder"
    SHIPPED = "shipped"
    NONE = "none"


class WorkerRecord(BaseModel):
    """One Locust worker process that joined the master (``engine.json`` ``workers``), as the master saw it.

    ``rows``: history rows of this worker in the master's run folder (parts the master wrote, plus the
    rows the worker reported writing there itself); ``requests``: requests the worker recorded, from its
    final report (``None``: no final report arrived: it died or its report came too late).
    ``rows_elsewhere``: rows the worker wrote into its own folder instead (``spill_dir`` on ``host``),
    because the master was not answering or did not take them fast enough. ``missing``: Locust's master
    stopped hearing its heartbeat (killed, hung or cut off). Clock: ``clock_offset_ms`` = master clock minus
    worker clock, from the lowest-round-trip of several pings at join; when its magnitude exceeds half the
    round trip the worker shifted its rows' times by it (``clock_corrected``); ``clock_uncertainty_ms`` bounds
    how far this worker's times may still be from the master's clock.
    """

    id: str  # Locust's client id of the worker
    worker: str | None = None  # the history's ``worker`` column value (host-pid)
    host: str | None = None
    pid: int | None = None
    delivery: Delivery = Delivery.NONE
    rows: int = 0
    requests: int | None = None
    rows_elsewhere: int = 0
    spill_dir: str | None = None
    joined_at: datetime | None = None
    left_at: datetime | None = None
    missing: bool = False
    final_report: bool = False
    clock_offset_ms: float | None = None
    clock_uncertainty_ms: float | None = None
    clock_corrected: bool = False


class GeneratorProcess(BaseModel):
    """One Locust process of the run as it reported itself once its users had stopped (``engine.json``
    ``generator.processes``). Counts cover the process's users from its test start to its report.

    ``worker``: ``<host>-<pid>``, the history's ``worker`` column (a master sends nothing and has no rows).
    ``role``: ``local`` (one process did everything), ``worker`` or ``master`` (runs no users).
    ``cpu_s``: user + system CPU seconds the process used; ``wall_s``: seconds it was measured, so
    ``cpu_s / wall_s`` is the share of one core it used (one Locust process runs on one core: near 1.0 the
    generator's CPU was the limit).
    ``scheduled``: intended send times that came due while its users ran (counted when each user stops);
    ``sent``: requests its users sent (each one a history row once answered or failed); ``scheduled - sent``
    were due but never sent because the user was stopped (end of the run, a ramp-down, a signal) first:
    many when sends were waiting for a free slot, about one per user at most when they were not (an intended
    time that fell due while the stop was under way).
    ``slot_waits``: sends that found their user's in-flight cap reached (``max_in_flight_per_user``
    requests in flight) and waited for a response first; ``slot_wait_s`` the seconds they waited in total,
    ``slot_wait_max_s`` the longest single wait. A wait shows in the history as lag (``sent - intended``).
    ``in_flight_peak``: the most requests one of its users had in flight at once.
    """

    worker: str
    role: Literal["local", "worker", "master"]
    cpu_s: float
    wall_s: float
    scheduled: int = 0
    sent: int = 0
    slot_waits: int = 0
    slot_wait_s: float = 0.0
    slot_wait_max_s: float = 0.0
    in_flight_peak: int = 0


class GeneratorRecord(BaseModel):
    """``engine.json`` ``generator``: what the load generator says about its own limits, so verdicts can
    tell which one was hit when the schedule was not kept (fields of ``GeneratorProcess`` for units).

    * the in-flight cap: ``max_in_flight`` (``--qq-max-in-flight``, requests in flight at once over the
      whole run) is split over the ``peak_users`` users as ``max_in_flight_per_user`` each (at least 1);
      ``slot_waits`` > 0 means the cap was reached and sends waited (lag), ``slot_wait_s`` for how long;
    * the generator's CPU: ``cpu_s`` over the processes, and per process ``cpu_s / wall_s``;
    * the schedule: ``scheduled`` vs ``sent`` (``unsent`` = the difference).

    Totals are sums over the processes that reported. ``missing_reports`` lists workers that joined but
    sent no report (died, or their report came too late): the totals then cover only part of the run and
    ``complete`` is False.
    """

    max_in_flight: int
    max_in_flight_per_user: int
    peak_users: int
    processes: list[GeneratorProcess] = Field(default_factory=list)
    missing_reports: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def complete(self) -> bool:
        return not self.missing_reports

    @computed_field  # type: ignore[prop-decorator]
    @property
    def scheduled(self) -> int:
        return sum(p.scheduled for p in self.processes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sent(self) -> int:
        return sum(p.sent for p in self.processes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def unsent(self) -> int:
        return self.scheduled - self.sent

    @computed_field  # type: ignore[prop-decorator]
    @property
    def slot_waits(self) -> int:
        return sum(p.slot_waits for p in self.processes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def slot_wait_s(self) -> float:
        return round(sum(p.slot_wait_s for p in self.processes), 6)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def slot_wait_max_s(self) -> float:
        return max((p.slot_wait_max_s for p in self.processes), default=0.0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def in_flight_peak(self) -> int:
        return max((p.in_flight_peak for p in self.processes), default=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cpu_s(self) -> float:
        return round(sum(p.cpu_s for p in self.processes), 6)


class EngineSetting(BaseModel):
    """One option value the load engine ran with, and where it came from (``engine.json`` ``settings``).

    ``option``: the option as typed (``--run-time``, ``--qq-rate``); ``source``: ``command line``,
    ``environment variable <NAME>``, ``config file <path>`` (``locust.conf``, ``~/.locust.conf``,
    ``pyproject.toml`` ``[tool.locust]`` or ``--config``), ``default``, ``web UI form`` (changed in the form
    for this swarm) or ``quotaquake`` (set by the scenario, e.g. a stop timeout when none was given).
    Secret values are replaced by ``"***"``.
    """

    option: str
    value: JsonValue
    source: str


class EngineRecord(BaseModel):
    """``engine.json``: what the load engine itself recorded. Written only by the Locust master (or the
    single local runner): its start, its end and final counts when it quit, and the monthly usage it seeded.
    For ``engine="k6"`` the orchestrating process writes it from k6's own summary, after k6 exited.

    ``requests``/``failures`` are Locust's own totals over all workers, taken when every user had stopped
    (``None`` while running, and for ever when Locust was killed before it could quit). A master also
    records each worker that joined (``workers``, written when it quits).
    ``stop_reason``: why the load stopped (``completed``: the run time was over; ``signal SIGTERM``,
    ``signal SIGINT``; ``duration cap``: no run time was given and the cap was reached; ``stopped``: the web
    UI's stop or another runner stop; ``quit``: Locust shut down). ``swarm``: the swarm's number in a web UI
    run (1, 2, ...), else None. ``settings``: every option value the run used and its source;
    ``config_files``: the configuration files that supplied at least one of them. ``generator``: the
    generator's own limits (``GeneratorRecord``).
    """

    engine: str = "locust"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    requests: int | None = None
    failures: int | None = None
    monthly_seeds: list[MonthlySeed] = Field(default_factory=list)
    distributed: bool = False  # a Locust master with workers (then ``workers`` lists every one that joined)
    workers: list[WorkerRecord] = Field(default_factory=list)
    dropped_iterations: int | None = None  # scheduled sends the engine never made (k6: no free VU); None: n/a
    stop_reason: str | None = None
    swarm: int | None = None
    generator: GeneratorRecord | None = None
    settings: list[EngineSetting] = Field(default_factory=list)
    config_files: list[str] = Field(default_factory=list)


class K6Summary(BaseModel):
    """``k6-summary.json`` (``k6 run --summary-export``): written by k6; quotaquake reads its metrics.

    ``metrics[name]``: a counter has ``count``/``rate``; a rate (``http_req_failed``) ``passes`` (true
    samples: failed requests), ``fails`` and ``value``; a trend its ``summaryTrendStats``.
    """

    metrics: dict[str, dict[str, object]] = Field(default_factory=dict)

    def number(self, metric: str, field: str) -> int:
        """A metric's whole-number field (``count``, ``passes``); 0 when k6 never sampled the metric (a
        counter without a sample, e.g. no dropped iteration, is left out of the export)."""
        value = self.metrics.get(metric, {}).get(field)
        return int(value) if isinstance(value, int | float) else 0


class FaultKind(StrEnum):
    """What a fault does to its service (``quotaquake.faults`` has one module per kind)."""

    OUTAGE = "outage"  # the service dies (SIGKILL, docker kill)
    PAUSE = "pause"  # the service hangs with its connections open (SIGSTOP, docker pause)
    REPLICA_LOSS = "replica-loss"  # gateway replicas die behind the load balancer
    POD_LOSS = "pod-loss"  # Kubernetes pods terminated (chaosk8s)
    FAILOVER = "failover"  # the Redis primary dies or hangs and Sentinel promotes a replica
    LATENCY = "latency"  # every Redis command is delayed (a proxy between the limiters and Redis)


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
    the fault; ``None`` if it was never undone. ``details``: what the fault's own activities measured
    (their journal outputs, by fault kind: ``failover``: the promotion time and the replication offsets
    around the fault, see ``quotaquake.faults.failover``; ``latency``: the delay and the limiters' decision
    histogram over the window; ``replica-loss``: when the load balancer ejected the replica); ``None`` when
    the kind records nothing.
    """

    name: str  # the activity's name, e.g. "kill-redis"
    kind: FaultKind
    service: str | None = None  # service name(s), comma-separated for several replicas
    role: ServiceRole = ServiceRole.OTHER
    expect: Expectation = Expectation.AVAILABLE
    start: float
    end: float | None
    details: dict[str, JsonValue] | None = None


class PrometheusSnapshot(BaseModel):
    """``prometheus.json``: server-side counts over the run window, taken from the target's Prometheus
    before the stack went down. Written by the orchestrating process.

    ``decision_p99_ms``/``decision_p50_ms``: the limiter's decision-time p99/p50 from its histogram over the
    window (``histogram_quantile``, interpolated within a bucket); ``decision_count``: decisions in the window;
    ``decision_buckets``: per bucket edge ``le`` (seconds, as Prometheus writes it), the decisions that took
    at most that long over the window, so checks can count exactly how many decisions met a target that is
    a bucket edge.
    """

    url: str
    start: float
    end: float
    requests: float | None = None  # requests the gateway replicas answered on the API routes
    rejected_429: float | None = None
    degraded_decisions: float | None = None
    decision_p99_ms: float | None = None
    decision_p50_ms: float | None = None
    decision_count: float | None = None  # limiter decisions over the window (histogram _count difference)
    decision_buckets: dict[str, float] | None = None  # cumulative decisions <= each bucket edge (seconds, "+Inf")
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


WAKE_DELAY_EDGES_MS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
"""Upper edges (ms) of the scheduler-delay buckets of ``HostSample.wake_delay_counts``; one more bucket
(the last count) holds the delays above the last edge."""


class HostSample(BaseModel):
    """``host.jsonl`` lines: one second of the machine that ran the load, sampled by the orchestrating process.

    Written by the host sampler (``quotaquake.load.host``): ``quotaquake run`` around the load, or the Locust
    master of a plain ``locust -f`` run. Shares are in [0, 1] of the interval; CPU use is in cores (1.0 = one
    core busy for the whole interval). ``t`` is the epoch second at the end of the interval.

    ``psi_some``: share of the interval in which at least one runnable task waited for a CPU (Linux PSI
    ``/proc/pressure/cpu`` "some" total; ``psi_some_avg10`` its kernel 10 s average in percent); ``None`` where
    the kernel has no PSI. ``runnable``: tasks running or waiting for a CPU at the sample (``procs_running``,
    the sampler itself included). ``stack_on_host``: False when the target runs elsewhere (external
    provider), ``None`` when it runs here but its processes are not known (containers); ``stack_cpu`` and
    ``stack_wait`` (threads of the stack waiting in a run queue, on average) are then ``None``.
    ``wake_delay_counts``: how long a probe thread, waking every few ms, waited in the run queue before it
    ran (the scheduler delay any process of this machine met), counted per ``WAKE_DELAY_EDGES_MS`` bucket.
    """

    t: float
    interval_s: float
    cores: int
    cpu_busy: list[float]  # per core, share of the interval not idle (steal excluded)
    steal: float = 0.0
    load1: float = 0.0
    runnable: int = 0
    psi_some: float | None = None
    psi_some_avg10: float | None = None
    generator_cpu: float = 0.0
    generator_max_process_cpu: float = 0.0
    generator_processes: int = 0
    stack_on_host: bool | None = True
    stack_cpu: float | None = None
    stack_processes: int = 0
    stack_wait: float | None = None
    wake_delay_counts: list[int] = Field(default_factory=list)
