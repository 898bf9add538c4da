"""Headers, latency, error budget, generator health, Prometheus cross-check and degradation on tiny
histories with hand-computed answers (policy from ``test_verify_quota_bucket``: r = 0.1/s, C = 9)."""

from __future__ import annotations

from quotaquake.runfolder.models import FaultWindow, PrometheusSnapshot
from quotaquake.verify.checks.crosscheck import check_prometheus_crosscheck
from quotaquake.verify.checks.degradation import check_degradation, check_degraded_over_admission
from quotaquake.verify.checks.error_budget import check_error_budget
from quotaquake.verify.checks.generator import check_generator_health
from quotaquake.verify.checks.headers import check_headers
from quotaquake.verify.checks.latency import check_latency, check_limiter_latency
from quotaquake.verify.thresholds import Thresholds
from tests.support.synthetic import START_S, finished, frame_from_rows, run_data
from tests.unit.test_verify_quota_bucket import POLICY

T = Thresholds()


def run(rows, **kwargs):
    return run_data(frame_from_rows(rows), POLICY, **kwargs)


def row(t: float, **fields: object) -> dict[str, object]:
    return {"t": t, "consumer": "c1", "tier": "small", **fields}


# headers ---------------------------------------------------------------------------------------------


def test_429_without_retry_after_fails_headers():
    ok = [row(0, rl_limit=6, rl_remaining=0, rl_reset=90, status=429, retry_after=10)]
    assert check_headers(run(ok), T).status == "pass"
    verdict = check_headers(run([row(0, rl_limit=6, rl_remaining=0, status=429)]), T)
    assert verdict.status == "fail"
    assert verdict.evidence["violations"]["429 without Retry-After"] == 1


def test_limit_must_match_the_tier():
    assert check_headers(run([row(0, rl_limit=7, rl_remaining=5)]), T).status == "fail"


def test_reset_must_be_within_a_full_refill():
    # capacity / refill = 9 / 0.1 = 90 s, + 1 s rounding
    assert check_headers(run([row(0, rl_limit=6, rl_remaining=5, rl_reset=91)]), T).status == "pass"
    assert check_headers(run([row(0, rl_limit=6, rl_remaining=5, rl_reset=92)]), T).status == "fail"


def test_remaining_may_only_rise_by_refill():
    # 30 s later: allowed rise 0.1 x (30 + 0.001) + 1 = 4.0001
    rise_ok = [row(0, rl_limit=6, rl_remaining=1), row(30, rl_limit=6, rl_remaining=5)]
    assert check_headers(run(rise_ok), T).status == "pass"
    # 1 s later: allowed 1.1001
    rise_bad = [row(0, rl_limit=6, rl_remaining=1), row(1, rl_limit=6, rl_remaining=5)]
    verdict = check_headers(run(rise_bad), T)
    assert verdict.status == "fail"
    assert verdict.evidence["violations"]["Remaining rose beyond refill"] == 1


def test_remaining_within_a_kong_window_never_rises():
    rows = [row(1, rl_limit=6, rl_remaining=3), row(2, rl_limit=6, rl_remaining=4)]
    assert check_headers(run(rows, model="fixed-window"), T).status == "fail"
    rows = [row(59, rl_limit=6, rl_remaining=0), row(61, rl_limit=6, rl_remaining=5)]
    assert check_headers(run(rows, model="fixed-window"), T).status == "pass"


def test_unlimited_tier_carries_no_headers():
    assert check_headers(run([row(0, tier="open", consumer="e1", rl_limit=6)]), T).status == "fail"


def test_no_headers_at_all_is_unknown():
    assert check_headers(run([row(0)]), T).status == "unknown"


# latency (more in test_verify_latency) ---------------------------------------------------------------

T0 = Thresholds.model_validate({"slo": {"warmup_s": 0}})  # rows of these tests start at t = 0


def test_exact_percentiles_from_intended_and_actual_send():
    # corrected = 10 ms lag + latency; the lag p99 (10 ms) is within the limit, so the SLO reads corrected:
    # 39 of 100 under 50 ms, fewer than the lower rank 91 of p95 at n = 100: proven over
    rows = [row(i * 0.01, latency_ms=float(i + 1), lag_ms=10.0) for i in range(100)]
    verdict = check_latency(run(rows), T0)
    group = verdict.evidence["groups"][0]
    assert group["actual_ms"] == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert group["corrected_ms"] == {"p50": 60.0, "p95": 105.0, "p99": 109.0}
    assert verdict.evidence["judged_on"] == "corrected"
    assert verdict.status == "fail"
    fast = [row(i * 0.01, latency_ms=float(i % 40 + 1)) for i in range(100)]  # all 100 under: upper rank 99 <= 100
    assert check_latency(run(fast), T0).status == "pass"


def test_gateway_overhead_uses_upstream_time():
    rows = [row(i * 0.01, latency_ms=10.0, upstream_ms=7.0) for i in range(30)]
    overhead = check_latency(run(rows), T0).evidence["gateway_overhead_ms"]
    assert overhead == [{"endpoint": "/identify", "count": 30, "p50": 3.0, "p95": 3.0, "p99": 3.0}]


def test_latency_inside_faults_is_not_judged_against_the_slo():
    rows = [row(i * 0.01, latency_ms=80.0) for i in range(100)] + [row(2 + i * 0.01) for i in range(60)]
    fault = FaultWindow(name="kill redis", kind="outage", start=START_S - 1, end=START_S + 1.5)
    verdict = check_latency(run(rows, faults=[fault]), T0)
    assert verdict.status == "pass"
    phases = {g["phase"]: g["status"] for g in verdict.evidence["groups"]}
    assert phases == {"during:kill redis": None, "after:kill redis": "pass"}


def test_limiter_decision_time_from_prometheus():
    snap = PrometheusSnapshot(url="u", start=0, end=1, decision_p99_ms=3.0)
    assert check_limiter_latency(run([row(0)], prometheus=snap), T).status == "fail"
    snap = PrometheusSnapshot(url="u", start=0, end=1, decision_p99_ms=0.5)
    assert check_limiter_latency(run([row(0)], prometheus=snap), T).status == "pass"
    declared = check_limiter_latency(run([row(0)], prometheus_url="http://127.0.0.1:9090"), T)
    assert declared.status == "unknown"  # a declared source that did not answer
    assert check_limiter_latency(run([row(0)]), T).status == "not-applicable"  # none declared


def test_kong_decision_time_is_bounded_by_kongs_own_latency_histogram():
    # kong_kong_latency_ms (exporter.lua:113-117): every plugin's time, so only an upper bound of the check
    fast = {"1": 995.0, "2": 1000.0, "5": 1000.0, "+Inf": 1000.0}
    slow = {"1": 900.0, "2": 995.0, "5": 1000.0, "+Inf": 1000.0}
    for buckets, expected in ((fast, "pass"), (slow, "unknown"), ({}, "unknown")):
        snap = PrometheusSnapshot(url="u", start=0, end=1, latency_buckets={"kong_latency_ms": buckets})
        assert check_limiter_latency(run([row(0)], model="kong", prometheus=snap), T).status == expected


# error budget, generator (more in test_verify_latency) ------------------------------------------------


def test_error_budget_passes_only_when_the_bound_proves_it():
    # 0 of 3000: upper bound 1 - 0.05^(1/3000) = 0.0998 % < 0.1 %
    assert check_error_budget(run([row(i * 0.001) for i in range(3000)]), T).status == "pass"
    # 0 of 2994: upper bound 0.100008 % >= 0.1 %: unknown, 2995 requests would decide
    verdict = check_error_budget(run([row(i * 0.001) for i in range(2994)]), T)
    assert verdict.status == "unknown" and verdict.evidence["needed_n"] == 2995
    # 1 of 1000 sits on the budget: no sample size decides
    ok = [row(i * 0.001) for i in range(999)] + [row(1.0, status=502)]
    verdict = check_error_budget(run(ok), T)
    assert verdict.status == "unknown" and verdict.evidence["needed_n"] is None


def test_error_budget_fails_when_the_bound_proves_the_violation():
    # 10 of 1000: Clopper-Pearson lower bound 0.54 % > 0.1 %
    bad = [row(i * 0.001) for i in range(990)] + [row(1.0 + i * 0.001, status=0 if i % 2 else 503) for i in range(10)]
    verdict = check_error_budget(run(bad), T)
    assert verdict.status == "fail"
    assert verdict.evidence["errors_by_status"] == {"0": 5, "503": 5}
    assert verdict.evidence["by_endpoint"] == [{"name": "/identify", "requests": 1000, "errors": 10}]


def test_errors_inside_faults_do_not_spend_the_budget():
    rows = [row(i * 0.001) for i in range(3000)] + [row(5 + i * 0.001, status=503) for i in range(50)]
    fault = FaultWindow(name="kill redis", kind="outage", start=START_S + 4, end=START_S + 6)
    verdict = check_error_budget(run(rows, faults=[fault]), T)
    assert verdict.status == "pass" and verdict.evidence["in_fault_errors"] == 50
    assert check_error_budget(run([]), T).status == "unknown"


def test_generator_that_falls_behind_its_schedule_is_not_healthy():
    # scheduled 10 req/s for 20 s; the sends of the first 10 s slipped by 0 .. 5 s: the peak is not reached
    on_time = [row(i * 0.1) for i in range(201)]
    assert check_generator_health(run(on_time, target_rate=10.0), T0).status == "pass"
    late = [row(i * 0.1 + i * 0.05, lag_ms=i * 50.0) for i in range(100)] + [row(15 + i * 0.1) for i in range(50)]
    verdict = check_generator_health(run(late, target_rate=10.0), T0)
    assert verdict.status == "unknown"  # no host samples: who held it back is not known
    assert verdict.evidence["peak_scheduled_rate"] == 10.0
    assert verdict.evidence["limit_hit"] is None


def test_generator_rate_is_judged_at_the_peak_of_a_shaped_load():
    # 5 s at 2 req/s, then a 5 s spike at 20 req/s, all on time
    rows = [row(i * 0.5) for i in range(10)] + [row(5 + i * 0.05) for i in range(100)] + [row(10.0)]
    verdict = check_generator_health(run(rows, target_rate=20.0), T0)
    assert verdict.status == "pass"
    assert verdict.evidence["peak_sent_rate"] == verdict.evidence["peak_scheduled_rate"] == 20.0


# Prometheus cross-check ------------------------------------------------------------------------------


def test_crosscheck_counts():
    rows = [row(i * 0.01) for i in range(1000)] + [row(20 + i * 0.01, status=429) for i in range(100)]
    agree = PrometheusSnapshot(url="u", start=0, end=1, requests=1095, rejected_429=100)  # 5 <= max(11, 5)
    assert check_prometheus_crosscheck(run(rows, prometheus=agree), T).status == "pass"
    off = PrometheusSnapshot(url="u", start=0, end=1, requests=1000, rejected_429=100)
    verdict = check_prometheus_crosscheck(run(rows, prometheus=off), T)
    assert verdict.status == "fail"
    assert "requests" in verdict.summary


def test_crosscheck_without_prometheus_is_unknown_or_not_applicable():
    declared = run([row(0)])
    declared.info = declared.info.model_copy(update={"prometheus_url": "http://127.0.0.1:9090"})
    assert check_prometheus_crosscheck(declared, T).status == "unknown"
    assert check_prometheus_crosscheck(run([row(0)]), T).status == "not-applicable"  # the target has none
    broken = PrometheusSnapshot(url="u", start=0, end=1, error="ConnectionError: refused")
    assert check_prometheus_crosscheck(run([row(0)], prometheus=broken), T).status == "unknown"


def test_an_incomplete_history_short_of_the_server_counts_is_unknown_not_fail():
    """A killed recorder loses its last rows: the server counting more then proves nothing; the history
    counting more than the server is a disagreement however the run ended."""
    rows = [row(i * 0.01) for i in range(1000)] + [row(20 + i * 0.01, status=429) for i in range(64)]
    more = PrometheusSnapshot(url="u", start=0, end=1, requests=1085, rejected_429=70)
    killed = check_prometheus_crosscheck(run(rows, prometheus=more), T)
    assert killed.status == "unknown" and "incomplete" in killed.summary
    assert check_prometheus_crosscheck(finished(run(rows, prometheus=more)), T).status == "fail"
    fewer = PrometheusSnapshot(url="u", start=0, end=1, requests=1064, rejected_429=50)
    assert check_prometheus_crosscheck(run(rows, prometheus=fewer), T).status == "fail"


def test_probe_traffic_nobody_recorded_makes_the_crosscheck_unknown_not_fail():
    snapshot = PrometheusSnapshot(url="u", start=0, end=1, requests=160, rejected_429=0)
    manual = finished(run([row(i * 0.01) for i in range(100)], prometheus=snapshot))
    manual.chaos_ran = True  # a journal, but the probes wrote no ledger: 60 requests unaccounted
    assert check_prometheus_crosscheck(manual, T).status == "unknown"
    manual.probe_ledger = True  # with a ledger the 60 are unexplained: the server saw requests we did not send
    assert check_prometheus_crosscheck(manual, T).status == "fail"


# degradation -----------------------------------------------------------------------------------------

REDIS_FAULT = FaultWindow(
    name="kill redis",
    kind="outage",
    service="redis",
    role="rate-limit-store",
    expect="fail-open-local",
    start=START_S + 10,
    end=START_S + 20,
)


def around_fault(inside: dict[str, object], after: dict[str, object] | None = None) -> list[dict[str, object]]:
    rows = [row(i * 0.5) for i in range(20)]
    rows += [row(10 + i * 0.5, **inside) for i in range(20)]
    rows += [row(20.1 + i * 0.5, **(after or {})) for i in range(40)]
    return rows


def test_fail_open_redis_fault_with_degraded_admissions_passes():
    verdict = check_degradation(run(around_fault({"degraded": "redis-unavailable"}), faults=[REDIS_FAULT]), T)
    assert verdict.status == "pass"
    assert verdict.evidence[0]["recovery_s"] == 0.0


def test_503_storm_under_fail_open_fails():
    rows = around_fault({"degraded": "redis-unavailable", "status": 503})
    verdict = check_degradation(run(rows, faults=[REDIS_FAULT]), T)
    assert verdict.status == "fail"
    assert "503 storm" in verdict.summary


def test_slow_recovery_fails():
    rows = around_fault({"degraded": "redis-unavailable"})
    rows += [row(35.0, degraded="redis-unavailable"), row(40.0)]  # still degraded 15 s after rollback
    verdict = check_degradation(run(rows, faults=[REDIS_FAULT]), T)
    assert verdict.status == "fail"
    assert verdict.evidence[0]["recovery_s"] == 15.0


def test_no_faults_is_unknown_by_default():
    assert check_degradation(run([row(0)]), T).status == "unknown"


def test_degraded_over_admission_is_bounded_by_replicas():
    # bound with 3 replicas: 3 x (9 + 0.1 x (span 2.9 s + w 0.001 s)) = 27.8703
    rows = [row(10 + i * 0.1, degraded="redis-unavailable") for i in range(30)]
    assert check_degraded_over_admission(run(rows, faults=[REDIS_FAULT]), T).status == "fail"
    rows = [row(10 + i * 0.1, degraded="redis-unavailable") for i in range(27)]
    assert check_degraded_over_admission(run(rows, faults=[REDIS_FAULT]), T).status == "pass"
