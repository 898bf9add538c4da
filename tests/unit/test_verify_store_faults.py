"""Verdicts of a slow Redis (``redis-latency``) and of a lost gateway replica (``gateway-failover``) on small
hand-made histories; and the degradation check's recovery stopping at the next fault.

The policy's Redis timeout is 50 ms. Latency windows run from 10 s to 20 s; their rows (every 0.02 s: 500
of them, all rate-limited: rate-limit headers present, enough for a p99) are judged after the first 50 ms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quotaquake.policy import Policy
from quotaquake.runfolder.models import Expectation, FaultKind, FaultWindow, ServiceRole
from quotaquake.verify.checks.degradation import check_degradation
from quotaquake.verify.checks.redis_latency import check_redis_latency, outside_latency_faults
from quotaquake.verify.checks.replica_failover import check_replica_failover
from quotaquake.verify.thresholds import Thresholds
from tests.support.synthetic import START_S, frame_from_rows, run_data

POLICY = Policy.model_validate(
    {
        "bucket": {"burst_factor": 1.5},
        "tiers": {"pro": {"per_minute": 6000}},
        "endpoints": {"/identify": {"cost": 1.0}},
        "degradation": {"on_redis_unavailable": "fail-open-local", "redis_timeout_ms": 50, "redis_retry_seconds": 1},
    }
)
DEGRADED = "redis-unavailable"


def rows(start: float, end: float, step: float = 0.1, **fields: Any) -> list[dict[str, Any]]:
    count = round((end - start) / step)
    base = {"consumer": "c1", "tier": "pro", "rl_limit": 6000.0, "latency_ms": 5.0}
    return [{**base, **fields, "t": start + step * i} for i in range(count)]


def buckets(decisions: int, slow: int = 0) -> dict[str, float]:
    """Cumulative decision buckets: ``decisions`` of them within 10 ms, ``slow`` between 0.1 s and +Inf."""
    fast = float(decisions - slow)
    return {"0.01": fast, "0.05": fast, "0.1": fast, "+Inf": float(decisions)}


def latency_window(delay_ms: int, expect: Expectation, decisions: dict[str, float] | None = None) -> FaultWindow:
    details: dict[str, Any] = {"delay_ms": delay_ms, "limiter_buckets": decisions or buckets(1000)}
    return FaultWindow(name=f"delay-{delay_ms}", kind=FaultKind.LATENCY, service="redis-proxy",
                       role=ServiceRole.RATE_LIMIT_STORE, expect=expect, start=START_S + 10.0,
                       end=START_S + 20.0, details=details)  # fmt: skip


def latency_verdict(history: list[dict[str, Any]], window: FaultWindow):  # type: ignore[no-untyped-def]
    data = run_data(frame_from_rows([*rows(0.0, 10.0), *history, *rows(20.0, 30.0)]), POLICY, faults=[window])
    return check_redis_latency(data, Thresholds())


def test_a_delay_below_the_timeout_is_waited_for() -> None:
    verdict = latency_verdict(rows(10.1, 20.0, 0.02, latency_ms=11.0), latency_window(5, Expectation.AVAILABLE))
    assert verdict.status == "pass", verdict.summary
    (judged,) = verdict.evidence["windows"]
    assert (judged["degraded"], judged["gateway_p99_ms"]) == (0, 11.0)


def test_giving_up_before_the_declared_timeout_fails() -> None:
    early = rows(10.1, 20.0, degraded=DEGRADED)  # every decision degraded although 5 ms < 50 ms
    verdict = latency_verdict(early, latency_window(5, Expectation.AVAILABLE))
    assert verdict.status == "fail" and "gave up before its declared timeout" in verdict.summary


def test_a_delay_at_the_timeout_degrades_as_declared() -> None:
    # 5 of ~500 replies beat the timer (within libuv's resolution of the timeout): still "most degrade"
    history = rows(10.1, 19.9, 0.02, degraded=DEGRADED) + rows(19.9, 20.0, step=0.02, latency_ms=55.0)
    verdict = latency_verdict(history, latency_window(50, Expectation.FAIL_OPEN_LOCAL))
    assert verdict.status == "pass", verdict.summary


@pytest.mark.parametrize(("delay", "shared_every"), [(50, 1), (60, 20)])
def test_waiting_for_redis_past_its_timeout_fails(delay: int, shared_every: int) -> None:
    # at 50 ms every decision is shared (the timeout ignored); at 60 ms 5 % are (> 1 %)
    history = [
        {**r, "degraded": None if i % shared_every == 0 else DEGRADED, "latency_ms": 65.0}
        for i, r in enumerate(rows(10.1, 20.0))
    ]
    verdict = latency_verdict(history, latency_window(delay, Expectation.FAIL_OPEN_LOCAL))
    assert verdict.status == "fail" and "the timeout is not honoured" in verdict.summary


def test_decisions_waiting_beyond_twice_the_timeout_fail() -> None:
    window = latency_window(50, Expectation.FAIL_OPEN_LOCAL, buckets(1000, slow=50))
    verdict = latency_verdict(rows(10.1, 20.0, degraded=DEGRADED), window)
    assert verdict.status == "fail" and "2 x timeout" in verdict.summary


def test_a_proxy_that_died_inside_the_window_leaves_it_unknown() -> None:
    """A history that looks like a delay handled as declared, but the rollback restarted the dead proxy: the
    window was an outage of unknown length, so nothing about the delay is shown."""
    window = latency_window(50, Expectation.FAIL_OPEN_LOCAL)
    died = window.model_copy(update={"details": {**(window.details or {}), "proxy_restarted": True}})
    verdict = latency_verdict(rows(10.1, 20.0, 0.02, degraded=DEGRADED), died)
    assert verdict.status == "unknown" and "Redis proxy was dead" in verdict.summary
    assert latency_verdict(rows(10.1, 20.0, 0.02, degraded=DEGRADED), window).status == "pass"


def test_too_few_rate_limited_decisions_is_unknown() -> None:
    verdict = latency_verdict(rows(10.1, 11.0), latency_window(5, Expectation.AVAILABLE))
    assert verdict.status == "unknown"


def test_the_limiter_slo_leaves_the_latency_windows_out() -> None:
    run = {"0.002": 1000.0, "0.05": 1100.0, "+Inf": 1100.0}
    inside = {"0.002": 10.0, "0.05": 100.0, "+Inf": 100.0}
    kept, removed = outside_latency_faults(run, [latency_window(50, Expectation.FAIL_OPEN_LOCAL, inside)])
    assert (kept, removed) == ({"0.002": 990.0, "0.05": 1000.0, "+Inf": 1000.0}, 100)
    too_many = {"0.002": 2000.0, "+Inf": 2000.0}  # does not fit: left as it was
    assert outside_latency_faults(run, [latency_window(50, Expectation.FAIL_OPEN_LOCAL, too_many)]) == (run, 0)


# --- gateway replica loss ----------------------------------------------------------------------------

KILL = {
    "replicas": ["gateway-3"], "killed_at": START_S + 10.0, "replicas_before": 3,
    "health_check": {"interval_s": 0.5, "timeout_s": 0.25, "unhealthy_threshold": 2.0},
    "ejected_after_s": {"gateway-3": 0.6}, "healthy_after_s": 0.3,
}  # fmt: skip


def replica_window(**details: Any) -> FaultWindow:
    return FaultWindow(name="kill-one-gateway-replica", kind=FaultKind.REPLICA_LOSS, service="gateway-3",
                       role=ServiceRole.GATEWAY, expect=Expectation.AVAILABLE, start=START_S + 9.9,
                       end=START_S + 20.0, details={**KILL, **details})  # fmt: skip


def replica_verdict(history: list[dict[str, Any]], window: FaultWindow):  # type: ignore[no-untyped-def]
    data = run_data(frame_from_rows([*rows(0.0, 9.9), *history, *rows(20.0, 30.0)]), POLICY, faults=[window])
    return check_replica_failover(data, Thresholds())


def test_errors_within_in_flight_and_ejection_pass_with_both_times() -> None:
    # 100 requests a second; 2 in flight at 10.0 s (sent 9.95 and 9.99, 20 ms); 61 sent from the kill to
    # the ejection at 10.6 s, a third of them to the dead replica (rounded up): bound 2 + 21 = 23; 5 failed
    history = [*rows(9.9, 10.0, step=0.01, latency_ms=5.0), *rows(10.0, 20.0, step=0.01)]
    for r in history:
        if round(r["t"], 2) in (9.95, 9.99):
            r["latency_ms"] = 20.0
    for r in history[12:17]:
        r["status"] = 503
    verdict = replica_verdict(history, replica_window())
    assert verdict.status == "pass", verdict.summary
    (judged,) = verdict.evidence["windows"]
    assert (judged["in_flight"], judged["routed_before_ejection"], judged["errors"]) == (2, 21, 5)
    assert (judged["ejection_s"], judged["healthy_after_s"], judged["detection_s"]) == (0.6, 0.3, 1.25)


def test_more_errors_than_the_bound_fail() -> None:
    history = rows(9.9, 20.0, step=0.01)
    for r in history[10:60]:
        r["status"] = 502
    verdict = replica_verdict(history, replica_window())
    assert verdict.status == "fail" and "error(s) > bound" in verdict.summary


@pytest.mark.parametrize(
    ("details", "problem"),
    [({"ejected_after_s": {"gateway-3": None}}, "did not eject"),
     ({"ejected_after_s": {"gateway-3": 3.0}}, "ejected after 3.00 s"),
     ({"healthy_after_s": 30.0}, "healthy again after 30.0 s")],
)  # fmt: skip
def test_a_late_or_missing_ejection_or_recovery_fails(details: dict[str, Any], problem: str) -> None:
    verdict = replica_verdict(rows(9.9, 20.0), replica_window(**details))
    assert verdict.status == "fail" and problem in verdict.summary


def test_no_measurements_is_unknown() -> None:
    bare = replica_window()
    bare = bare.model_copy(update={"details": None})
    assert replica_verdict(rows(9.9, 20.0), bare).status == "unknown"


# --- degradation: recovery looks no further than the next fault --------------------------------------


def test_recovery_of_one_fault_ignores_the_next_faults_own_degradation() -> None:
    first = latency_window(5, Expectation.AVAILABLE).model_copy(update={"end": START_S + 15.0})
    second = latency_window(50, Expectation.FAIL_OPEN_LOCAL).model_copy(
        update={"start": START_S + 20.0, "end": START_S + 25.0}
    )
    history = [*rows(0.0, 20.0), *rows(20.0, 25.0, degraded=DEGRADED), *rows(25.0, 40.0)]
    data = run_data(frame_from_rows(history), POLICY, faults=[first, second])
    verdict = check_degradation(data, Thresholds())
    recoveries = [w["recovery_s"] for w in verdict.evidence]  # type: ignore[union-attr]
    assert recoveries == [0.0, 0.0] and verdict.status == "pass", verdict.summary
    assert np.all(np.asarray(recoveries) < 10)
