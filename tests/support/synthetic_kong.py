"""Synthetic run folders of a Kong 3.9 target (``policy: redis``, ``sync_rate: -1``), correct or with a seeded
defect, for the Kong checks' unit tests.

Each request reads Kong's clock at a random instant of [sent, response] (``handler.lua:127``) and runs its
INCRs at a later random instant (``policies/init.lua:407-415``); requests are decided in INCR order against
one shared counter per (identifier, period, window) with ``kong_decision`` (a replay of
``handler.lua:89-205``), so the headers are Kong's. Identifiers: a consumer's id; ``anon:<ip>`` keyless
clients (Kong trusts X-Forwarded-For); ``invalid`` keys count under the peer address with the anonymous
limits. While Redis is down (``redis_fault``) a limited request is proxied without headers or counting
(``fault_tolerant``) or answered 500; Redis comes back empty. ``counters`` carries Kong's Redis between runs.

Defects: ``no-count-429`` (rejected requests not counted, Kong <= 3.3), ``limit`` (``actual_limits``: the
plugin of some consumer configured with other limits than the target declares), ``500-on-fault`` (500
although fault_tolerant), ``pass-on-fault`` (unlimited although not fault_tolerant), ``reset-61`` (a
RateLimit-Reset that never exceeds 61 s), ``ignore-seed`` (a month seed Kong never reads: the quota-month
scenario writing a key of its own).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from quotaquake.kongspec import KongSpec
from quotaquake.policy import Policy
from quotaquake.runfolder import RunFolder, append_probe_requests
from quotaquake.runfolder.models import (
    EngineRecord,
    Expectation,
    FaultKind,
    FaultWindow,
    InitialState,
    MonthlySeed,
    ProbeRequest,
    RunInfo,
    ServiceRole,
)
from quotaquake.verify.models.kong import kong_decision, window_start_ns
from tests.support.synthetic import START_S, SyntheticConsumer, write_history

Counters = collections.Counter[tuple[str, str, int]]
KONG_START_S = START_S + 11 * 86_400 + 10 * 3600 + 30  # 2026-01-12T10:00:30Z: mid-month, 30 s into a minute


@dataclass
class KongRun:
    """What to simulate. Times are seconds from ``start_s``; ``redis_fault`` is (start, end) offsets."""

    policy: Policy
    spec: KongSpec
    consumers: tuple[SyntheticConsumer, ...]
    duration_s: float
    start_s: float = KONG_START_S
    latency_ms: float = 6.0
    seed: int = 0
    redis_fault: tuple[float, float] | None = None
    defect: str | None = None
    actual_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    month_seeds: dict[str, int] = field(default_factory=dict)
    initial_state: InitialState = InitialState.RESET
    counters: Counters = field(default_factory=collections.Counter)
    probes: list[tuple[float, str]] = field(default_factory=list)  # (offset s, consumer): chaos probe requests
    probe_answers: list[tuple[int, str, str]] = field(default_factory=list)  # filled: (sent ns, status, consumer)
    ledger: bool = True  # the probes' requests are recorded in chaos/probe-requests.jsonl
    store_errors: float = 0.0  # share of limited requests whose Redis call fails (a timeout) outside faults


def kong_consumers(per_tier: int = 2, rate: float = 3.0) -> tuple[SyntheticConsumer, ...]:
    """``per_tier`` consumers of each seed tier, two keyless IPs and unknown keys, ``rate`` req/s each."""
    consumers = [SyntheticConsumer(f"{t}-{i}", t, rate) for t in ("free", "pro", "enterprise", "partner")
                 for i in range(1, per_tier + 1)]  # fmt: skip
    consumers += [SyntheticConsumer(f"anon:198.51.100.{i}", "anonymous", rate / 4) for i in (1, 2)]
    consumers.append(SyntheticConsumer("invalid", "invalid", rate / 4))
    return tuple(consumers)


def identifier(consumer: SyntheticConsumer, spec: KongSpec) -> str:
    """Kong's counter: keyless clients per forwarded IP when Kong trusts X-Forwarded-For, else the peer's."""
    keyless = consumer.tier == "invalid" or (consumer.tier == "anonymous" and not spec.forwarded_ip_trusted)
    return "peer" if keyless else consumer.id


def _limits(run: KongRun, consumer: SyntheticConsumer) -> dict[str, int]:
    if consumer.id in run.actual_limits:
        return run.actual_limits[consumer.id]
    tier = "anonymous" if consumer.tier == "invalid" else consumer.tier
    return run.spec.limits_of(tier) or {}


def simulate_kong(run: KongRun) -> pd.DataFrame:
    """The history frame of the simulated run; ``run.counters`` holds Redis afterwards."""
    rng = np.random.default_rng(run.seed)
    rows: list[dict[str, object]] = []
    t0 = int(run.start_s * 1e9)
    for consumer in run.consumers:
        n = rng.poisson(consumer.rate * run.duration_s)
        for offset in np.sort(rng.uniform(0.0, run.duration_s, n)):
            sent = t0 + int(offset * 1e9)
            latency = run.latency_ms * float(rng.lognormal(0.0, 0.3))
            done = sent + int(latency * 1e6)
            clock = sent + int(rng.uniform(0.0, 0.5) * (done - sent))
            incr = clock + int(rng.uniform(0.0, 1.0) * (done - clock))
            rows.append({"consumer": consumer, "sent": sent, "latency": latency, "clock": clock, "incr": incr})
    by_id = {c.id: c for c in run.consumers}
    for offset, consumer_id in run.probes:  # counted by Kong like any request, absent from the history
        sent = t0 + int(offset * 1e9)
        rows.append({"consumer": by_id[consumer_id], "sent": sent, "latency": 2.0, "clock": sent, "incr": sent,
                     "probe": True})  # fmt: skip
    for month_consumer, used in run.month_seeds.items() if run.defect != "ignore-seed" else ():
        key_start = int(window_start_ns("month", np.array([t0], dtype=np.int64))[0])
        run.counters[(month_consumer, "month", key_start)] = used
    fault = (
        None if run.redis_fault is None else (t0 + int(run.redis_fault[0] * 1e9), t0 + int(run.redis_fault[1] * 1e9))
    )
    cleared = False
    for row in rows:
        row["store_error"] = bool(rng.random() < run.store_errors)
    for row in sorted(rows, key=lambda r: int(r["incr"])):  # type: ignore[call-overload]
        if fault is not None and not cleared and int(row["incr"]) > fault[1]:  # type: ignore[call-overload]
            run.counters.clear()  # Redis restarted empty
            cleared = True
        _decide(run, row, fault)
    run.probe_answers = [(int(str(r["sent"])), str(r["status"]), r["consumer"].id) for r in rows if r.get("probe")]  # type: ignore[union-attr]
    recorded = [r for r in rows if not r.get("probe")]
    return _frame(run, sorted(recorded, key=lambda r: int(r["sent"])))  # type: ignore[call-overload]


def _decide(run: KongRun, row: dict[str, object], fault: tuple[int, int] | None) -> None:
    consumer = row["consumer"]
    assert isinstance(consumer, SyntheticConsumer)
    limits = _limits(run, consumer)
    row["headers"] = {}
    row["status"] = 200
    if not limits:
        return
    clock = int(str(row["clock"]))
    if row.get("store_error") or (fault is not None and fault[0] <= int(str(row["incr"])) <= fault[1]):
        failing_open = run.spec.fault_tolerant != (run.defect in ("500-on-fault", "pass-on-fault"))
        row["status"] = 200 if failing_open else 500
        return
    name = identifier(consumer, run.spec)
    keys = {p: (name, p, int(window_start_ns(p, np.array([clock], dtype=np.int64))[0])) for p in limits}
    decision = kong_decision(limits, {p: run.counters[keys[p]] for p in limits}, clock // 1_000_000_000)
    if decision.admitted or run.defect != "no-count-429":
        for p in limits:
            run.counters[keys[p]] += 1
    headers = dict(decision.headers)
    if run.defect == "reset-61":
        headers["RateLimit-Reset"] = str(min(61, int(headers["RateLimit-Reset"])))
        if "Retry-After" in headers:
            headers["Retry-After"] = headers["RateLimit-Reset"]
    row["headers"] = {} if run.spec.hide_client_headers else headers
    row["status"] = 200 if decision.admitted else run.spec.error_code


def _frame(run: KongRun, rows: list[dict[str, object]]) -> pd.DataFrame:
    def header(name: str) -> list[float]:
        return [float(h[name]) if name in (h := r["headers"]) else np.nan for r in rows]  # type: ignore[operator]

    consumers = [r["consumer"] for r in rows]
    names = sorted({c.id for c in consumers})  # type: ignore[attr-defined]
    tiers = sorted({c.tier for c in consumers})  # type: ignore[attr-defined]
    sent = np.asarray([r["sent"] for r in rows], dtype=np.int64)
    return pd.DataFrame(
        {
            "intended_ns": sent,
            "sent_ns": sent,
            "latency_ms": np.asarray([r["latency"] for r in rows], dtype=np.float64),
            "consumer": pd.Categorical([c.id for c in consumers], categories=names),  # type: ignore[attr-defined]
            "tier": pd.Categorical([c.tier for c in consumers], categories=tiers),  # type: ignore[attr-defined]
            "endpoint": pd.Categorical(["/identify"] * len(rows), categories=["/identify"]),
            "cost": np.ones(len(rows)),
            "status": np.asarray([r["status"] for r in rows], dtype=np.int32),
            "rl_limit": header("X-RateLimit-Limit-Minute"),
            "rl_remaining": header("X-RateLimit-Remaining-Minute"),
            "rl_reset": header("RateLimit-Reset"),
            "retry_after": header("Retry-After"),
            "rl_limit_month": header("X-RateLimit-Limit-Month"),
            "rl_remaining_month": header("X-RateLimit-Remaining-Month"),
            "rl_window_limit": header("RateLimit-Limit"),
            "rl_window_remaining": header("RateLimit-Remaining"),
            "upstream_ms": np.full(len(rows), np.nan),
        }
    )


def redis_kill_window(run: KongRun) -> FaultWindow:
    assert run.redis_fault is not None
    start, end = run.redis_fault
    return FaultWindow(
        name="kill-redis",
        kind=FaultKind.OUTAGE,
        service="redis",
        role=ServiceRole.RATE_LIMIT_STORE,
        expect=Expectation.FAIL_OPEN_UNLIMITED if run.spec.fault_tolerant else Expectation.ERROR_500,
        start=run.start_s + start,
        end=run.start_s + end,
    )


def write_kong_run(run_dir: Path, run: KongRun) -> pd.DataFrame:
    """Simulate and write a complete run folder of a Kong target without Prometheus."""
    history = simulate_kong(run)
    write_history(run_dir, history)
    started = datetime.fromtimestamp(run.start_s, tz=UTC)
    ended = datetime.fromtimestamp(run.start_s + run.duration_s, tz=UTC)
    info = RunInfo(
        run_id=run_dir.name,
        scenario="synthetic-kong",
        duration_s=run.duration_s,
        started_at=started,
        ended_at=ended,
        provider="external",
        replicas=run.spec.replicas,
        model="kong",
        kong=run.spec,
        policy=run.policy,
        initial_state=run.initial_state,
        load_exit_code=0,
    )
    folder = RunFolder(run_dir)
    folder.write_info(info)
    seeds = [MonthlySeed(consumer=k, used=float(v)) for k, v in run.month_seeds.items()]
    folder.write_engine(
        EngineRecord(started_at=started, ended_at=ended, requests=len(history), failures=0, monthly_seeds=seeds)
    )
    if run.redis_fault is not None or run.probes:
        folder.write_faults([redis_kill_window(run)] if run.redis_fault is not None else [])
    if run.probes and run.ledger:
        requests = [
            ProbeRequest(t=sent / 1e9 + 0.002, probe="known_consumer_works", method="GET", path="/health",
                         status=int(status), consumer=consumer)
            for sent, status, consumer in run.probe_answers
        ]  # fmt: skip
        append_probe_requests(folder.probe_ledger, requests)
    return history
