"""Latency, limiter-latency and generator-health rules on tiny histories with hand-computed answers.

Order-statistic ranks used below (one-sided 95 %, ``stats.order_statistic_ranks``): p95 at n = 100 is
bounded by ranks (91, 99); at n = 20 by (17, none); p99 at n = 1000 by (985, 996); the median at n = 1000
by (474, 527); p99 at n = 100 has no upper rank (299 samples are needed). p95 needs n >= 59 for an upper
bound at all (``min_n_for_upper_bound``).
"""

from __future__ import annotations

from quotaquake.runfolder.models import WAKE_DELAY_EDGES_MS, FaultWindow, HostSample, PrometheusSnapshot
from quotaquake.verify.checks.generator import check_generator_health
from quotaquake.verify.checks.latency import check_latency, check_limiter_latency, judge_histogram
from quotaquake.verify.thresholds import Thresholds
from tests.support.synthetic import START_S, frame_from_rows, run_data
from tests.unit.test_verify_quota_bucket import POLICY

T0 = Thresholds.model_validate({"slo": {"warmup_s": 0}})


def run(rows, **kwargs):
    return run_data(frame_from_rows(rows), POLICY, **kwargs)


def row(t: float, **fields: object) -> dict[str, object]:
    return {"t": t, "consumer": "c1", "tier": "small", **fields}


def rows_of(latencies: list[float], start: float = 0.0, **fields: object) -> list[dict[str, object]]:
    return [row(start + i * 0.01, latency_ms=ms, **fields) for i, ms in enumerate(latencies)]


def wake(fast: int, slow: int = 0, slow_ms: float = 8.0) -> list[int]:
    """Probe counts: ``fast`` wake-ups within 0.05 ms, ``slow`` in the bucket whose upper edge is ``slow_ms``."""
    counts = [0] * (len(WAKE_DELAY_EDGES_MS) + 1)
    counts[0] = fast
    counts[WAKE_DELAY_EDGES_MS.index(slow_ms)] += slow
    return counts


def host(seconds: int, *, saturated: bool, slow: int = 10, **fields: object) -> list[HostSample]:
    """One sample a second from START_S - 1 on; saturated ones have CPU pressure 0.5 (>= 0.10)."""
    return [
        HostSample(
            t=START_S + k,
            interval_s=1.0,
            cores=2,
            cpu_busy=[0.5, 0.5],
            psi_some=0.5 if saturated else 0.01,
            wake_delay_counts=wake(1000, slow),
            **fields,
        )
        for k in range(seconds)
    ]


def with_host(rows, samples, thresholds=T0, **kwargs):
    data = run(rows, **kwargs)
    data.host = samples
    return data


# --- groups: pass, fail, unknown, too small, coverage -----------------------------------------------------


def test_undecided_group_is_unknown_with_the_sample_size_that_would_decide():
    # 96 of 100 under 50 ms: upper rank 99 > 96 (no pass), lower rank 91 <= 96 (no fail); the same share
    # decides at n = 1437, where the upper rank 1379 <= floor(0.96 x 1437) = 1379
    verdict = check_latency(run(rows_of([1.0] * 96 + [80.0] * 4)), T0)
    assert verdict.status == "unknown"
    (group,) = verdict.evidence["groups"]
    assert (group["status"], group["needed_n"]) == ("unknown", 1437)


def test_a_group_too_small_to_pass_is_listed_and_can_still_fail():
    verdict = check_latency(run(rows_of([1.0] * 30)), T0)  # 30 < 59: even all-fast cannot pass
    assert verdict.status == "unknown"
    assert verdict.evidence["groups"][0]["status"] == "too-small"
    assert verdict.evidence["groups"][0]["needed_n"] == 59
    # 20 responses, 5 over the target: 15 under < lower rank 17: proven over, small as it is
    assert check_latency(run(rows_of([1.0] * 15 + [80.0] * 5)), T0).status == "fail"


def test_small_tier_groups_are_reported_but_an_uncovered_endpoint_is_unknown():
    big = rows_of([1.0] * 100)
    small_tier = rows_of([1.0] * 10, start=2.0, tier="pro", consumer="p1")
    verdict = check_latency(run(big + small_tier), T0)
    assert verdict.status == "pass"
    assert verdict.evidence["not_judged"] == ["/identify pro run (too-small, 10 responses)"]
    small_endpoint = rows_of([1.0] * 10, start=2.0, endpoint="/batch")
    verdict = check_latency(run(big + small_endpoint), T0)
    assert verdict.status == "unknown"
    assert verdict.evidence["uncovered"] == ["endpoint /batch: no group passed"]


def test_warmup_is_left_out_and_reported():
    # a 200 ms spike in the first 3 s, then 100 fast responses
    rows = [row(i * 0.03, latency_ms=200.0) for i in range(100)] + rows_of([1.0] * 100, start=3.0)
    verdict = check_latency(run(rows), Thresholds())  # default warm-up: 3 s
    assert verdict.status == "pass"
    assert verdict.evidence["warmup"]["excluded_rows"] == 100
    assert "100 requests) left out as warm-up" in verdict.summary
    assert check_latency(run(rows), T0).status == "fail"


# --- targets per endpoint, tier and phase -----------------------------------------------------------------


def test_endpoint_tier_and_phase_overrides():
    batch = rows_of([100.0] * 100, endpoint="/batch")
    assert check_latency(run(batch), T0).status == "fail"
    relaxed = Thresholds.model_validate({"slo": {"warmup_s": 0, "latency": {"endpoints": {"/batch": 120}}}})
    verdict = check_latency(run(batch), relaxed)
    assert verdict.status == "pass" and verdict.evidence["groups"][0]["target_ms"] == 120
    # a tier's own, smaller target applies with the endpoint's: the smaller of the two (90 ms)
    both = Thresholds.model_validate(
        {"slo": {"warmup_s": 0, "latency": {"endpoints": {"/batch": 120}, "tiers": {"small": 90}}}}
    )
    assert check_latency(run(batch), both).status == "fail"


def test_groups_during_faults_are_judged_only_with_their_own_target():
    rows = rows_of([1.0] * 100) + rows_of([150.0] * 100, start=2.0) + rows_of([1.0] * 100, start=4.0)
    fault = FaultWindow(name="kill redis", kind="outage", start=START_S + 1.5, end=START_S + 3.5)
    assert check_latency(run(rows, faults=[fault]), T0).status == "pass"
    during = Thresholds.model_validate({"slo": {"warmup_s": 0, "latency": {"phases": {"during": 100}}}})
    verdict = check_latency(run(rows, faults=[fault]), during)
    assert verdict.status == "fail"
    assert {g["phase"]: g["status"] for g in verdict.evidence["groups"]} == {
        "before": "pass",
        "during:kill redis": "fail",
        "after:kill redis": "pass",
    }


# --- generator lag: judged from the actual send -----------------------------------------------------------


def test_a_late_generator_moves_the_slo_to_the_actual_send():
    # 30 ms of lag (> 10 ms) + 30 ms of service: corrected 60 ms would fail, the system's 30 ms passes
    rows = [row(i * 0.01, latency_ms=30.0, lag_ms=30.0) for i in range(100)]
    verdict = check_latency(run(rows), T0)
    assert verdict.status == "pass"
    assert verdict.evidence["judged_on"] == "actual"
    assert "generator was late" in verdict.evidence["why"]
    assert verdict.evidence["groups"][0]["corrected_ms"]["p95"] == 60.0
    on_time = Thresholds.model_validate({"slo": {"warmup_s": 0}, "generator": {"max_lag_p99_ms": 40}})
    assert check_latency(run(rows), on_time).status == "fail"


def test_the_generator_limit_must_be_tighter_than_the_slo():
    # see test_thresholds for the ConfigError; here: the default protects a 50 ms target with 10 ms
    assert Thresholds().generator.max_lag_p99_ms < Thresholds().slo.latency.default_p95_ms


# --- contention ------------------------------------------------------------------------------------------

# 90 fast responses and 10 slow ones: p95's lower rank 91 is slow, the median fast. Probe: 1000 wake-ups
# within 0.05 ms, 10 in the 8 ms bucket; 8 request hops read the 1 - 0.05/8 = 0.99375 quantile: rank
# ceil(0.99375 x 1010) = 1004 > 1000, so 8 ms, and the allowance is 8 x 8 = 64 ms (target + 64 = 114 ms).
TAIL_100 = rows_of([5.0] * 90 + [100.0] * 10)
TAIL_200 = rows_of([5.0] * 90 + [200.0] * 10)


def test_a_tail_miss_on_a_saturated_machine_is_unknown():
    verdict = check_latency(with_host(TAIL_100, host(3, saturated=True)), T0)
    assert verdict.status == "unknown"
    group = verdict.evidence["groups"][0]
    assert group["status"] == "unknown" and "64 ms" in group["excused"]
    assert verdict.evidence["host"]["run"]["saturated_samples"] == 1  # the one second overlapping t = 0 .. 0.99 s


def test_a_miss_beyond_what_contention_explains_still_fails():
    assert check_latency(with_host(TAIL_200, host(3, saturated=True)), T0).status == "fail"  # 200 >= 114
    median_over = rows_of([60.0] * 100)
    assert check_latency(with_host(median_over, host(3, saturated=True)), T0).status == "fail"


def test_a_miss_on_a_quiet_or_unmeasured_machine_fails():
    assert check_latency(with_host(TAIL_100, host(3, saturated=False)), T0).status == "fail"
    assert check_latency(run(TAIL_100), T0).status == "fail"  # no host.jsonl: nothing to excuse it


def test_contention_here_excuses_one_wait_for_a_remote_target():
    # remote stack: one hop, the 0.95 quantile: rank ceil(0.95 x 1010) = 960 <= 1000, so 0.05 ms
    samples = host(3, saturated=True, stack_on_host=False)
    assert check_latency(with_host(TAIL_100, samples), T0).status == "fail"


def test_a_cpu_bound_generator_excuses_a_miss():
    samples = host(3, saturated=False, generator_max_process_cpu=0.97)
    rows = [row(i * 0.01, latency_ms=5.0 if i < 90 else 100.0, lag_ms=20.0) for i in range(100)]
    verdict = check_latency(with_host(rows, samples), T0)
    assert verdict.status == "unknown"
    assert "generator's CPU" in verdict.evidence["groups"][0]["excused"]


# --- the limiter's decision time ---------------------------------------------------------------------------


def snapshot(**buckets_ms: int) -> PrometheusSnapshot:
    """A snapshot whose histogram has the given cumulative counts at edges ``e<ms>`` (``e1=950``) and
    a total of the last one at +Inf."""
    edges = {str(float(name[1:].replace("_", ".")) / 1e3): float(v) for name, v in buckets_ms.items()}
    edges["+Inf"] = float(max(buckets_ms.values()))
    return PrometheusSnapshot(
        url="u",
        start=START_S,
        end=START_S + 3,
        decision_p99_ms=4.0,
        decision_p50_ms=0.6,
        decision_count=edges["+Inf"],
        decision_buckets=edges,
    )


CORRECT_BUSY = snapshot(e1=950, e2=980, e5=995, e10=1000)  # p99 between 2 and 5 ms, median under 1 ms
SLOW = snapshot(e1=0, e2=0, e5=0, e10=1000)  # every decision 5-10 ms: the slow defect


def test_histogram_judgment_from_exact_counts_at_the_edges():
    # p99 at n = 1000: pass needs the upper rank 996 <= decisions <= 2 ms; fail needs the lower rank 985
    # > decisions <= 2 ms
    assert judge_histogram(CORRECT_BUSY.decision_buckets, 99, 2.0, 0.95).status == "fail"  # 985 > 980
    passing = snapshot(e1=990, e2=996, e5=1000)
    assert judge_histogram(passing.decision_buckets, 99, 2.0, 0.95).status == "pass"  # 996 <= 996
    undecided = judge_histogram(snapshot(e1=990, e2=990, e5=1000).decision_buckets, 99, 2.0, 0.95)
    # rank 985 has 990 decisions <= 1 ms: no edge under it (bound 0); rank 996 first reached at 5 ms
    assert undecided.status == "unknown" and (undecided.low_ms, undecided.high_ms) == (0.0, 5.0)
    too_few = judge_histogram(snapshot(e1=100).decision_buckets, 99, 2.0, 0.95)
    assert too_few.status == "unknown" and too_few.needed_n == 299


def test_a_correct_limiter_on_a_saturated_machine_is_unknown_not_fail():
    # p99 lower bound: the largest edge under rank 985 is 2 ms; 2 limiter hops read the 0.995 quantile:
    # rank ceil(0.995 x 1010) = 1005 > 1000, so 8 ms, and the allowance is 16 ms: 2 < 2 + 16
    data = with_host([row(0)], host(4, saturated=True), prometheus=CORRECT_BUSY)
    verdict = check_limiter_latency(data, Thresholds())
    assert verdict.status == "unknown"
    assert "saturated in 3 of 3 s" in verdict.summary and "16 ms" in verdict.summary  # seconds ending at 1, 2, 3


def test_the_slow_defect_fails_on_a_saturated_machine():
    # no decision within 2 ms: the median's lower rank 474 > 0 proves the median over the limit
    data = with_host([row(0)], host(4, saturated=True), prometheus=SLOW)
    verdict = check_limiter_latency(data, Thresholds())
    assert verdict.status == "fail"
    assert "beyond what contention explains" in verdict.summary


def test_a_limiter_miss_on_a_quiet_machine_or_a_remote_one_fails():
    quiet = with_host([row(0)], host(4, saturated=False), prometheus=CORRECT_BUSY)
    assert check_limiter_latency(quiet, Thresholds()).status == "fail"
    remote = with_host([row(0)], host(4, saturated=True, stack_on_host=False), prometheus=CORRECT_BUSY)
    assert check_limiter_latency(remote, Thresholds()).status == "fail"
    assert check_limiter_latency(run([row(0)], prometheus=CORRECT_BUSY), Thresholds()).status == "fail"


def test_too_few_decisions_are_unknown():
    verdict = check_limiter_latency(run([row(0)], prometheus=snapshot(e1=100)), Thresholds())
    assert verdict.status == "unknown" and verdict.evidence["needed_n"] == 299


# --- generator health: which limit was hit ---------------------------------------------------------------

# 10 s scheduled at 10 req/s; the generator's sends slip by 50 ms more each time (lag p99 > 10 ms)
LATE = [row(i * 0.15, lag_ms=i * 50.0) for i in range(100)]


def test_generator_health_names_the_generator_cpu():
    samples = host(16, saturated=False, generator_max_process_cpu=0.97, generator_cpu=0.97)
    verdict = check_generator_health(with_host(LATE, samples), T0)
    assert verdict.status == "unknown" and verdict.evidence["limit_hit"] == "generator"
    assert "the generator's CPU" in verdict.summary


def test_generator_health_names_the_machine():
    samples = host(16, saturated=True, generator_max_process_cpu=0.4, generator_cpu=0.4, stack_cpu=1.5)
    verdict = check_generator_health(with_host(LATE, samples), T0)
    assert verdict.status == "unknown" and verdict.evidence["limit_hit"] == "machine"
    # busy 0.5 x 2 cores = 1.0 core, less than stack + generator (1.9): no other processes (clamped at 0)
    assert "stack 1.5, generator 0.4, other processes 0.0 of 2" in verdict.summary


def test_generator_health_names_the_system():
    samples = host(16, saturated=False, generator_max_process_cpu=0.2, generator_cpu=0.2)
    verdict = check_generator_health(with_host(LATE, samples), T0)
    assert verdict.status == "pass" and verdict.evidence["limit_hit"] == "system"
    assert "responses were slow" in verdict.summary


def test_sent_rate_is_sends_per_second_of_send_time():
    # 100 sends over 14.85 s of send time: 6.734 req/s; 100 intended over 9.9 s of intended time: 10.101
    verdict = check_generator_health(run(LATE), T0)
    assert verdict.evidence["sent_rate"] == 6.734
    assert verdict.evidence["scheduled_rate"] == 10.101
    assert any(p.startswith("sent 6.7 req/s < 0.95 x the scheduled 10.1") for p in verdict.evidence["problems"])


def test_a_point_estimate_pass_needs_enough_decisions_for_a_p99():
    few = PrometheusSnapshot(url="u", start=0, end=1, decision_p99_ms=0.5, decision_count=298)
    verdict = check_limiter_latency(run([row(0)], prometheus=few), Thresholds())
    assert verdict.status == "unknown" and verdict.evidence["needed_n"] == 299
    enough = few.model_copy(update={"decision_count": 299})
    assert check_limiter_latency(run([row(0)], prometheus=enough), Thresholds()).status == "pass"


def test_host_samples_without_wake_delays_are_summarised():
    from quotaquake.runfolder.models import HostSample
    from quotaquake.verify.data.contention import host_window
    from quotaquake.verify.thresholds import Contention

    sample = HostSample(t=10.0, interval_s=1.0, cores=2, cpu_busy=[0.5, 0.5])  # no wake delays recorded
    assert host_window([sample], 0.0, 20.0, Contention()).samples == 1
