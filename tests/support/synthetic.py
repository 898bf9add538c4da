"""Synthetic run folders: a simulated token-bucket limiter (correct, or with a seeded defect).

For unit tests, the report test and the throughput benchmark. Each consumer sends Poisson arrivals;
the simulated limiter decides each request at ``sent + delay`` (delay < latency) in decision order with
capacity ``burst_factor x per_minute`` and refill ``per_minute / 60`` per second, a monthly counter, and
during a Redis fault either per-replica local buckets (fail-open-local, marked degraded) or 503s.
Defects mirror the embedded limiter's: ``racy`` (read-then-write: a decision within ``RACE_NS`` of the
previous one reads the stale token count), ``no-retry-after``, ``slow`` (+4 ms, decision p99 5 ms),
``fail-closed`` (503 while Redis is down although the policy fails open); and one only simulated here:
``hoarding`` (rejects once fewer than ``cost + capacity / 2`` tokens are left: 429s while it had room).

State the run did not establish: ``start_tokens`` (the fraction of its capacity each bucket holds at its
first decision) and ``start_month_used`` (cost units already counted this month, per consumer) simulate a
limiter that served traffic before; the run folder then records ``initial_state=unknown`` (``reset``
when buckets start full and months fresh, as after ``quotaquake run``'s reset). ``indeterminate`` is the
fraction of requests whose response is lost (status 0) after the limiter decided them: spent if admitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numba import njit

from quotaquake.kongspec import KongSpec
from quotaquake.policy import Policy, refill_per_second
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import SCHEMA
from quotaquake.runfolder.models import (
    EngineRecord,
    Expectation,
    FaultKind,
    FaultWindow,
    MonthlySeed,
    PrometheusSnapshot,
    RunInfo,
    ServiceRole,
)
from quotaquake.verify.data.rundata import RunData

RACE_NS = 3_000_000
START_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ENDPOINT_WEIGHTS: dict[str, float] = {"/identify": 0.6, "/compare": 0.2, "/batch": 0.1, "/health": 0.1}
UNLIMITED = 1e300

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SyntheticConsumer:
    id: str
    tier: str
    rate: float  # requests per second (Poisson)


@dataclass(frozen=True)
class SyntheticRun:
    """What to simulate. Times are seconds from ``start_s``; ``redis_fault`` is (start, end) offsets."""

    policy: Policy
    consumers: tuple[SyntheticConsumer, ...]
    duration_s: float
    start_s: float = START_S
    defect: str | None = None
    redis_fault: tuple[float, float] | None = None
    replicas: int = 3
    latency_ms: float = 4.0
    seed: int = 0
    monthly_seeds: dict[str, float] = field(default_factory=dict)
    start_tokens: float = 1.0  # fraction of the capacity each bucket holds at the consumer's first decision
    start_month_used: dict[str, float] = field(default_factory=dict)  # usage counted before the run
    indeterminate: float = 0.0  # fraction of responses lost (status 0) after the decision
    initial_state: str | None = None  # what run.json records; None: reset iff buckets start full, months fresh

    @property
    def recorded_initial_state(self) -> str:
        if self.initial_state is not None:
            return self.initial_state
        fresh = self.start_tokens >= 1.0 and not any(self.start_month_used.values())
        return "reset" if fresh else "unknown"


def mixed_consumers(policy: Policy, per_tier: int = 2, overload: float = 2.0) -> tuple[SyntheticConsumer, ...]:
    """``per_tier`` consumers per tier plus ``per_tier`` anonymous IPs, each sending ``overload`` x its
    per-minute rate (10 req/s for unlimited tiers), so limited consumers hit their quota."""
    consumers: list[SyntheticConsumer] = []
    for tier in [*policy.tiers, "anonymous"]:
        limits = policy.limits_for(tier)
        rate = 10.0 if limits.per_minute is None else overload * limits.per_minute / 60.0
        for i in range(per_tier):
            name = f"anon:10.0.0.{i + 1}" if tier == "anonymous" else f"{tier}-{i + 1}"
            consumers.append(SyntheticConsumer(name, tier, rate))
    return tuple(consumers)


def simulate(spec: SyntheticRun) -> pd.DataFrame:
    """The history frame (``SCHEMA`` columns, sorted by ``sent_ns``) of the simulated run."""
    rng = np.random.default_rng(spec.seed)
    consumer, intended = _arrivals(spec, rng)
    n = len(consumer)
    endpoints = list(ENDPOINT_WEIGHTS)
    endpoint = rng.choice(len(endpoints), size=n, p=np.asarray(list(ENDPOINT_WEIGHTS.values())))
    cost = np.asarray([spec.policy.cost_of(e) for e in endpoints])[endpoint]
    lag = rng.exponential(0.3e6, size=n).astype(np.int64)
    sent = intended + lag
    latency = spec.latency_ms * rng.lognormal(0.0, 0.3, size=n) + (4.0 if spec.defect == "slow" else 0.0)
    decided = sent + (latency * 1e6 * rng.uniform(0.05, 0.5, size=n)).astype(np.int64)
    replica = rng.integers(0, spec.replicas, size=n)
    params = _consumer_params(spec)
    order = np.lexsort((decided, consumer))
    fault = _fault_ns(spec)
    start_used = np.asarray([spec.start_month_used.get(c.id, 0.0) for c in spec.consumers], dtype=np.float64)
    out = _decide(
        order,
        consumer,
        decided,
        cost,
        replica,
        *params,
        fault[0],
        fault[1],
        spec.defect == "racy",
        _fails_closed(spec),
        spec.replicas,
        spec.start_tokens,
        start_used,
        spec.defect == "hoarding",
    )
    if spec.indeterminate > 0:
        lost = rng.random(n) < spec.indeterminate
        out[0][lost & ~out[4]] = 0  # the response is lost after the decision (degraded rows keep theirs)
    return _frame(spec, consumer, intended, sent, latency, endpoint, endpoints, cost, replica, out)


def _arrivals(spec: SyntheticRun, rng: np.random.Generator) -> tuple[I64, I64]:
    counts = rng.poisson([c.rate * spec.duration_s for c in spec.consumers])
    consumer = np.repeat(np.arange(len(spec.consumers)), counts)
    offsets = rng.uniform(0.0, spec.duration_s, size=len(consumer))
    intended = (np.int64(spec.start_s * 1e9) + (offsets * 1e9).astype(np.int64)).astype(np.int64)
    return consumer.astype(np.int64), intended


def _consumer_params(spec: SyntheticRun) -> tuple[F64, F64, F64, F64]:
    n = len(spec.consumers)
    capacity, rate, per_minute, month_room = (
        np.full(n, UNLIMITED),
        np.zeros(n),
        np.full(n, np.nan),
        np.full(n, UNLIMITED),
    )
    for i, c in enumerate(spec.consumers):
        limits = spec.policy.limits_for(c.tier)
        cap, refill = spec.policy.capacity(limits), refill_per_second(limits)
        if cap is not None and refill is not None:
            capacity[i], rate[i], per_minute[i] = cap, refill, float(limits.per_minute or 0.0)
        if limits.per_month is not None:
            month_room[i] = limits.per_month - spec.monthly_seeds.get(c.id, 0.0)
    return capacity, rate, per_minute, month_room


def _fault_ns(spec: SyntheticRun) -> tuple[int, int]:
    if spec.redis_fault is None:
        return -1, -1
    start, end = spec.redis_fault
    return int((spec.start_s + start) * 1e9), int((spec.start_s + end) * 1e9)


def _fails_closed(spec: SyntheticRun) -> bool:
    return spec.defect == "fail-closed" or spec.policy.degradation.on_redis_unavailable == "fail-closed"


@njit(cache=True)
def _decide(  # pragma: no cover - compiled by numba
    order: I64,
    consumer: I64,
    decided: I64,
    cost: F64,
    replica: I64,
    capacity: F64,
    rate: F64,
    per_minute: F64,
    month_room: F64,
    fault_start: int,
    fault_end: int,
    racy: bool,
    fail_closed: bool,
    replicas: int,
    start_tokens: float = 1.0,
    start_used: F64 | None = None,
    hoarding: bool = False,
) -> tuple[npt.NDArray[np.int32], F64, F64, F64, npt.NDArray[np.bool_]]:
    n = len(order)
    status = np.full(n, 200, dtype=np.int32)
    remaining = np.full(n, np.nan)
    reset = np.full(n, np.nan)
    retry = np.full(n, np.nan)
    degraded = np.zeros(n, dtype=np.bool_)
    local = np.empty((len(capacity), replicas))
    local_t = np.zeros((len(capacity), replicas), dtype=np.int64)
    prev_c = -1
    tokens, last, used, before_prev, prev_t = 0.0, 0, 0.0, 0.0, 0
    for p in range(n):
        i = order[p]
        c = consumer[i]
        t = decided[i]
        if c != prev_c:
            prev_c, tokens, last = c, capacity[c] * start_tokens, t
            used = 0.0 if start_used is None else start_used[c]
            before_prev, prev_t = tokens, -(10**18)
            local[c, :] = capacity[c]
            local_t[c, :] = t
        if fault_start <= t <= fault_end:
            degraded[i] = True
            if fail_closed:
                status[i] = 503
                continue
            k = replica[i]
            local[c, k] = min(capacity[c], local[c, k] + rate[c] * (t - local_t[c, k]) / 1e9)
            local_t[c, k] = t
            if local[c, k] >= cost[i]:
                local[c, k] -= cost[i]
            else:
                status[i] = 429
                retry[i] = np.ceil((cost[i] - local[c, k]) / rate[c])
            continue
        if fault_end >= 0 and last <= fault_end < t:
            tokens = capacity[c]  # Redis restarted empty
        tokens = min(capacity[c], tokens + rate[c] * (t - last) / 1e9)
        last = t
        seen = tokens
        if racy and t - prev_t < RACE_NS:
            seen = min(capacity[c], before_prev + rate[c] * (t - prev_t) / 1e9)
        before_prev, prev_t = tokens, t
        reserve = capacity[c] / 2 if hoarding and capacity[c] < UNLIMITED else 0.0
        if seen >= cost[i] + reserve and used + cost[i] <= month_room[c]:
            tokens = seen - cost[i]
            used += cost[i]
        else:
            status[i] = 429
            retry[i] = max(1.0, np.ceil((cost[i] - seen) / rate[c])) if rate[c] > 0 else 3600.0
        if not np.isnan(per_minute[c]):
            remaining[i] = np.floor(max(tokens, 0.0))
            reset[i] = np.ceil((capacity[c] - tokens) / rate[c])
    return status, remaining, reset, retry, degraded


def _frame(
    spec: SyntheticRun,
    consumer: I64,
    intended: I64,
    sent: I64,
    latency: F64,
    endpoint: I64,
    endpoints: list[str],
    cost: F64,
    replica: I64,
    out: tuple[npt.NDArray[np.int32], F64, F64, F64, npt.NDArray[np.bool_]],
) -> pd.DataFrame:
    status, remaining, reset, retry, degraded = out
    if spec.defect == "no-retry-after":
        retry = np.full(len(retry), np.nan)
    names = [c.id for c in spec.consumers]
    tiers = sorted({c.tier for c in spec.consumers})
    tier_of = np.asarray([tiers.index(c.tier) for c in spec.consumers])[consumer]
    per_minute = _consumer_params(spec)[2][consumer]
    limit = np.where(np.isnan(remaining), np.nan, per_minute)
    upstream = np.where(status == 200, latency * 0.7, np.nan)
    frame = pd.DataFrame(
        {
            "intended_ns": intended,
            "sent_ns": sent,
            "latency_ms": latency,
            "consumer": pd.Categorical.from_codes(consumer, categories=pd.Index(names, dtype=str)),
            "tier": pd.Categorical.from_codes(tier_of, categories=pd.Index(tiers, dtype=str)),
            "endpoint": pd.Categorical.from_codes(endpoint, categories=pd.Index(endpoints, dtype=str)),
            "method": pd.Categorical.from_codes(
                np.zeros(len(sent), dtype=np.int8), categories=pd.Index(["POST"], dtype=str)
            ),
            "cost": cost,
            "status": status,
            "error": pd.Categorical.from_codes(
                np.full(len(sent), -1, dtype=np.int8), categories=pd.Index(["x"], dtype=str)
            ),
            "rl_limit": limit,
            "rl_remaining": remaining,
            "rl_reset": reset,
            "retry_after": retry,
            "degraded": pd.Categorical.from_codes(
                np.where(degraded, 0, -1), categories=pd.Index(["redis-unavailable"], dtype=str)
            ),
            "replica": pd.Categorical.from_codes(
                replica, categories=pd.Index([f"gateway-{i + 1}" for i in range(spec.replicas)], dtype=str)
            ),
            "upstream_ms": upstream,
            "worker": pd.Categorical.from_codes(
                np.zeros(len(sent), dtype=np.int8), categories=pd.Index(["synthetic-1"], dtype=str)
            ),
        },
        copy=False,
    )
    return frame.sort_values("sent_ns", kind="stable", ignore_index=True)


def write_history(run_dir: Path, frame: pd.DataFrame, parts: int = 1, row_group: int = 1_000_000) -> None:
    """Write ``frame`` as ``parts`` Parquet files under ``run_dir/history`` in the history ``SCHEMA``
    (columns missing from ``frame`` are written as nulls)."""
    folder = RunFolder(run_dir).history_dir
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    for k in range(parts):
        path = folder / f"part-synthetic-{k:04d}.parquet"
        with pq.ParquetWriter(path, SCHEMA) as writer:
            for lo in range(bounds[k], bounds[k + 1], row_group):
                hi = min(lo + row_group, bounds[k + 1])
                chunk = frame.iloc[lo:hi]
                arrays = [
                    _arrow_column(chunk[name], SCHEMA.field(name).type)
                    if name in chunk.columns
                    else pa.nulls(len(chunk), SCHEMA.field(name).type)
                    for name in SCHEMA.names
                ]
                writer.write_table(pa.Table.from_arrays(arrays, schema=SCHEMA))


def _arrow_column(series: pd.Series, arrow_type: pa.DataType) -> pa.Array:
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes, dtype=np.int32)
        dictionary = pa.array([str(c) for c in series.cat.categories], type=pa.string())
        indices = pa.array(codes, mask=codes < 0)
        return pa.DictionaryArray.from_arrays(indices, dictionary).cast(arrow_type)
    values = series.to_numpy()
    if pa.types.is_floating(arrow_type):
        return pa.array(values, type=arrow_type, from_pandas=True)
    return pa.array(values, type=arrow_type)


def write_run(run_dir: Path, spec: SyntheticRun, frame: pd.DataFrame | None = None, parts: int = 1) -> pd.DataFrame:
    """Simulate (unless ``frame`` is given) and write a complete run folder; returns the history frame."""
    history = simulate(spec) if frame is None else frame
    write_history(run_dir, history, parts=parts)
    started = datetime.fromtimestamp(spec.start_s, tz=UTC)
    total_rate = sum(c.rate for c in spec.consumers)
    info = RunInfo(
        run_id=run_dir.name,
        scenario="synthetic",
        initial_state=spec.recorded_initial_state,
        initial_state_at=started if spec.recorded_initial_state == "reset" else None,
        target_rate=total_rate,
        duration_s=spec.duration_s,
        started_at=started,
        ended_at=datetime.fromtimestamp(spec.start_s + spec.duration_s, tz=UTC),
        provider="synthetic",
        replicas=spec.replicas,
        defect=spec.defect,
        policy=spec.policy,
    )
    folder = RunFolder(run_dir)
    folder.write_info(info)
    seeds = [MonthlySeed(consumer=k, used=v) for k, v in spec.monthly_seeds.items()]
    folder.write_engine(
        EngineRecord(started_at=started, ended_at=info.ended_at, requests=len(history), failures=0, monthly_seeds=seeds)
    )
    if spec.redis_fault is not None:
        start, end = spec.redis_fault
        folder.write_faults([redis_kill(spec.start_s + start, spec.start_s + end, spec.policy)])
    folder.write_prometheus(_snapshot(spec, history))
    return history


def redis_kill(start_s: float, end_s: float | None, policy: Policy) -> FaultWindow:
    """The fault window of a Redis kill, with what ``policy`` expects meanwhile."""
    fail_closed = policy.degradation.on_redis_unavailable == "fail-closed"
    return FaultWindow(
        name="kill redis",
        kind=FaultKind.OUTAGE,
        service="redis",
        role=ServiceRole.RATE_LIMIT_STORE,
        expect=Expectation.FAIL_CLOSED if fail_closed else Expectation.FAIL_OPEN_LOCAL,
        start=start_s,
        end=end_s,
    )


def _snapshot(spec: SyntheticRun, history: pd.DataFrame) -> PrometheusSnapshot:
    status = history["status"].to_numpy()
    return PrometheusSnapshot(
        url="synthetic://prometheus",
        start=spec.start_s,
        end=spec.start_s + spec.duration_s,
        requests=float(np.sum(status != 0)),
        rejected_429=float(np.sum(status == 429)),
        degraded_decisions=float(history["degraded"].notna().sum()),
        decision_p99_ms=5.0 if spec.defect == "slow" else 0.8,
    )


def frame_from_rows(rows: list[dict[str, Any]], t0_s: float = START_S) -> pd.DataFrame:
    """A history frame from a few hand-written rows, for tests with hand-computed answers.

    Each row needs ``t`` (send time, seconds after ``t0_s``), ``consumer`` and ``tier``; defaults:
    ``status`` 200, ``cost`` 1, ``latency_ms`` 1, ``endpoint`` /identify, ``lag_ms`` 0, headers absent.
    Rows are put in send order.
    """
    ordered = sorted(rows, key=lambda r: float(r["t"]))
    t0_ns = int(t0_s * 1e9)
    sent = np.asarray([t0_ns + round(float(r["t"]) * 1e9) for r in ordered], dtype=np.int64)
    lag = np.asarray([round(float(r.get("lag_ms", 0.0)) * 1e6) for r in ordered], dtype=np.int64)

    def numbers(name: str, default: float) -> F64:
        return np.asarray([r.get(name, default) for r in ordered], dtype=np.float64)

    def strings(name: str, default: str | None) -> Any:
        values = [r.get(name, default) for r in ordered]
        present = sorted({str(v) for v in values if v is not None})
        codes = [present.index(str(v)) if v is not None else -1 for v in values]
        return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int32), categories=pd.Index(present, dtype=str))

    return pd.DataFrame(
        {
            "intended_ns": sent - lag,
            "sent_ns": sent,
            "latency_ms": numbers("latency_ms", 1.0),
            "consumer": strings("consumer", None),
            "tier": strings("tier", None),
            "endpoint": strings("endpoint", "/identify"),
            "cost": numbers("cost", 1.0),
            "status": np.asarray([r.get("status", 200) for r in ordered], dtype=np.int32),
            "rl_limit": numbers("rl_limit", np.nan),
            "rl_remaining": numbers("rl_remaining", np.nan),
            "rl_reset": numbers("rl_reset", np.nan),
            "retry_after": numbers("retry_after", np.nan),
            "degraded": strings("degraded", None),
            "upstream_ms": numbers("upstream_ms", np.nan),
            "rl_limit_month": numbers("rl_limit_month", np.nan),
            "rl_remaining_month": numbers("rl_remaining_month", np.nan),
            "rl_window_limit": numbers("rl_window_limit", np.nan),
            "rl_window_remaining": numbers("rl_window_remaining", np.nan),
        },
        copy=False,
    )


def run_data(
    history: pd.DataFrame,
    policy: Policy,
    *,
    model: str = "token-bucket",
    faults: list[FaultWindow] | None = None,
    prometheus: PrometheusSnapshot | None = None,
    target_rate: float | None = None,
    replicas: int = 3,
    monthly_seeds: dict[str, float] | None = None,
    t0_s: float = START_S,
    prometheus_url: str | None = None,
    kong: KongSpec | None = None,
    initial_state: str = "unknown",
    initial_state_at: float | None = None,
) -> RunData:
    """A ``RunData`` around ``history`` (e.g. from ``frame_from_rows``) without a run folder.

    ``initial_state``: what ``run.json`` records (``reset``: every consumer's bucket full and month at 0,
    or at its seed, at ``initial_state_at`` seconds after ``t0_s`` (default: ``t0_s``); ``unknown``).
    """
    reset_at = t0_s + (initial_state_at or 0.0)
    info = RunInfo.model_validate(
        {
            "run_id": "synthetic",
            "scenario": "synthetic",
            "target_rate": target_rate,
            "started_at": datetime.fromtimestamp(t0_s, tz=UTC),
            "replicas": replicas,
            "model": model,
            "kong": kong,
            "policy": policy,
            "prometheus_url": prometheus_url,
            "initial_state": initial_state,
            "initial_state_at": datetime.fromtimestamp(reset_at, tz=UTC) if initial_state == "reset" else None,
        }
    )
    seeds = [MonthlySeed(consumer=k, used=v) for k, v in (monthly_seeds or {}).items()]
    return RunData(info=info, history=history, faults=faults or [], prometheus=prometheus, monthly_seeds=seeds)


def finished(run: RunData, duration_s: float = 10.0) -> RunData:
    """``run`` as a run that finished as planned (``run.json``'s end, the engine's end and its count of
    every history row): the completeness check passes it."""
    started = run.info.started_at
    ended = datetime.fromtimestamp(started.timestamp() + duration_s, tz=UTC)
    run.info = run.info.model_copy(update={"duration_s": duration_s, "ended_at": ended, "load_exit_code": 0})
    run.engine = EngineRecord(started_at=started, ended_at=ended, requests=len(run.history), failures=0)
    return run
