"""The run's summary from small hand-written histories, and the k6-style thresholds section of a thresholds
file judged against it (one verdict each; pass only when proven; not-applicable without the data source)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quotaquake.errors import ConfigError
from quotaquake.gate.expressions import parse_thresholds
from quotaquake.gate.summary import read_summary
from quotaquake.policy import DEFAULT_POLICY_PATH, load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import AbortRecord, PrometheusSnapshot
from quotaquake.verify.engine import verify_run
from quotaquake.verify.summary import RunSummary, summarize, threshold_verdicts
from quotaquake.verify.thresholds import Thresholds, load_thresholds
from quotaquake.verify.verdict import Verdict
from tests.support.synthetic import (
    START_S,
    SyntheticRun,
    frame_from_rows,
    mixed_consumers,
    redis_kill,
    run_data,
    write_run,
)

POLICY = load_policy(DEFAULT_POLICY_PATH)
NO_WARMUP = Thresholds.model_validate({"slo": {"warmup_s": 0}})
ROWS = [
    {"t": 0.0, "consumer": "pro-1", "tier": "pro", "latency_ms": 10.0, "lag_ms": 2.0},
    {"t": 0.1, "consumer": "pro-1", "tier": "pro", "latency_ms": 20.0, "lag_ms": 2.0},
    {"t": 0.2, "consumer": "pro-1", "tier": "pro", "endpoint": "/compare", "status": 0, "latency_ms": 30.0},
    {"t": 0.3, "consumer": "free-1", "tier": "free", "endpoint": "/compare", "status": 429, "latency_ms": 30.0},
    {"t": 0.4, "consumer": "free-1", "tier": "free", "status": 503, "latency_ms": 5.0},
]


def row(summary: RunSummary, metric: str, tags: str, aggregation: str) -> pd.Series:
    frame = summary.frame
    found = frame[(frame.metric == metric) & (frame.tags == tags) & (frame.aggregation == aggregation)]
    assert len(found) == 1, (metric, tags, aggregation)
    return found.iloc[0]


def test_request_metrics_for_every_tag_combination() -> None:
    summary = summarize(run_data(frame_from_rows(ROWS), POLICY), NO_WARMUP, [])
    assert row(summary, "http_reqs", "", "count").value == 5
    assert row(summary, "http_reqs", "tier:pro", "count").value == 3
    assert row(summary, "http_reqs", "endpoint:/identify,tier:pro", "count").value == 2
    assert row(summary, "http_reqs", "endpoint:/identify,phase:run,tier:pro", "count").value == 2
    failed = row(summary, "http_req_failed", "", "rate")  # the 503 and the request without a response
    assert (failed.value, failed.n) == (0.4, 5)
    assert (failed.low, failed.high) == pytest.approx((0.0764404, 0.8107446))  # Clopper-Pearson, 2 of 5
    assert row(summary, "qq_rejected_ratio", "tier:free", "rate").value == 0.5
    pro = row(summary, "http_req_duration", "tier:pro", "max")  # the request without a response is left out
    assert (pro.value, pro.n) == (20.0, 2)
    assert row(summary, "http_req_duration", "tier:pro", "med").value == 10.0  # nearest rank 1 of 2
    assert row(summary, "qq_req_duration_intended", "tier:pro", "max").value == 22.0  # + 2 ms lag
    assert row(summary, "qq_generator_lag_ms", "tier:pro", "max").value == 2.0
    assert not summary.frame["tags"].str.contains("fault").any()  # no experiment: no fault tag
    assert summary.missing["qq_recovery_s"][0] == "not-applicable"
    assert summary.missing["qq_limiter_decision_ms"][0] == "not-applicable"  # no Prometheus declared


def test_the_warm_up_is_left_out_of_latency_but_not_of_counts() -> None:
    rows = [*ROWS, {"t": 5.0, "consumer": "pro-1", "tier": "pro", "latency_ms": 40.0}]
    summary = summarize(run_data(frame_from_rows(rows), POLICY), Thresholds(), [])  # 3 s warm-up
    assert row(summary, "http_req_duration", "", "max").n == 1
    assert row(summary, "http_reqs", "", "count").value == 6


def test_fault_windows_tag_phases_and_faults() -> None:
    rows = [{"t": float(t), "consumer": "pro-1", "tier": "pro", "latency_ms": 1.0 + t} for t in range(10)]
    fault = redis_kill(START_S + 3.5, START_S + 6.5, POLICY)
    summary = summarize(run_data(frame_from_rows(rows), POLICY, faults=[fault]), NO_WARMUP, [])
    assert row(summary, "http_reqs", "phase:before", "count").value == 4  # t = 0..3
    assert row(summary, "http_reqs", "fault:kill redis,phase:during", "count").value == 3  # t = 4..6
    assert row(summary, "http_reqs", "phase:after", "count").value == 3
    assert row(summary, "http_req_duration", "fault:kill redis,phase:during", "max").value == 7.0
    with pytest.raises(ConfigError, match="needs a phase filter"):
        parse_thresholds({"http_req_duration{fault:kill redis}": ["p(95)<5"]})


def test_quota_counters_come_from_the_verdict_and_are_lower_bounds_when_it_is_unknown() -> None:
    evidence = {
        "over_admitted_cost": 3.0,
        "false_rejections": 1,
        "consumers": [{"consumer": "pro-1", "tier": "pro", "over_admitted_cost": 3.0, "false_rejections": 1}],
    }
    run = run_data(frame_from_rows(ROWS), POLICY)
    failed = summarize(run, NO_WARMUP, [Verdict("quota-accuracy", "fail", "over", evidence)])
    assert row(failed, "qq_over_admitted_cost", "", "count").value == 3.0
    assert row(failed, "qq_over_admitted_cost", "tier:pro", "count").value == 3.0
    assert row(failed, "qq_false_rejections", "tier:free", "count").value == 0.0
    open_ = summarize(run, NO_WARMUP, [Verdict("quota-accuracy", "unknown", "undecided", evidence)])
    bound = row(open_, "qq_over_admitted_cost", "", "count")
    assert bound.low == 3.0 and bound.high == math.inf
    partial = {**evidence, "consumers": []}  # the table lists no offender: no per-tier breakdown
    listed = summarize(run, NO_WARMUP, [Verdict("quota-accuracy", "fail", "over", partial)]).frame
    assert not ((listed.metric == "qq_over_admitted_cost") & (listed.tags != "")).any()


def test_kong_windows_give_lower_bounds_unless_the_verdict_passed() -> None:
    def table(excess: int) -> dict[str, object]:
        windows = [{"min_excess_admissions": excess, "min_false_rejections": 0}, {"min_excess_admissions": excess}]
        return {"consumers": [{"consumer": "pro-1", "tier": "pro", "windows": windows}]}

    run = run_data(frame_from_rows(ROWS), POLICY)
    failed = summarize(run, NO_WARMUP, [Verdict("quota-accuracy", "fail", "over", table(2))])
    over = row(failed, "qq_over_admitted_cost", "tier:pro", "count")
    assert (over.value, over.low, over.high) == (4.0, 4.0, math.inf)  # at least 4 requests over Kong's limit
    passed = summarize(run, NO_WARMUP, [Verdict("quota-accuracy", "pass", "ok", table(0))])
    exact = row(passed, "qq_over_admitted_cost", "", "count")
    assert (exact.value, exact.low, exact.high) == (0.0, 0.0, 0.0)


def test_limiter_rows_are_bounded_by_bucket_edges() -> None:
    buckets = {"0.001": 900.0, "0.002": 995.0, "0.005": 1000.0, "+Inf": 1000.0}
    snapshot = PrometheusSnapshot(
        url="p", start=START_S, end=START_S + 10, decision_p99_ms=1.95, decision_count=1000, decision_buckets=buckets
    )
    summary = summarize(run_data(frame_from_rows(ROWS), POLICY, prometheus=snapshot), NO_WARMUP, [])
    p99 = row(summary, "qq_limiter_decision_ms", "", "p(99)")
    # ranks (985, 996) of 1000: 996 decisions are first under 5 ms, fewer than 985 under 1 ms
    assert (p99.value, p99.n, p99.low, p99.high) == (1.95, 1000, 1.0, 5.0)
    (verdict,) = threshold_verdicts(summary, parse_thresholds({"qq_limiter_decision_ms": ["p(99)<2"]}))
    assert verdict.status == "unknown" and verdict.check == "threshold qq_limiter_decision_ms: p(99)<2"
    (proven,) = threshold_verdicts(summary, parse_thresholds({"qq_limiter_decision_ms": ["p(99)<6"]}))
    assert proven.status == "pass"


def test_a_metric_the_target_cannot_measure_is_not_applicable() -> None:
    summary = summarize(run_data(frame_from_rows(ROWS), POLICY), NO_WARMUP, [])
    thresholds = parse_thresholds({"qq_limiter_decision_ms": ["p(99)<2"], "qq_recovery_s": ["value<10"]})
    assert [v.status for v in threshold_verdicts(summary, thresholds)] == ["not-applicable", "not-applicable"]


def test_the_threshold_that_aborted_the_run_fails() -> None:
    summary = summarize(run_data(frame_from_rows(ROWS), POLICY), NO_WARMUP, [])
    (threshold,) = parse_thresholds({"http_req_duration": [{"threshold": "p(95)<25", "abortOnFail": True}]})
    record = AbortRecord(at="2026-01-01T00:00:08Z", after_s=8.0, threshold=threshold.label, reason="violated")
    (verdict,) = threshold_verdicts(summary, [threshold], record)
    assert verdict.status == "fail" and "8.0 s" in verdict.summary
    assert threshold_verdicts(summary, [threshold])[0].status == "unknown"  # 3 samples decide nothing


def write_thresholds(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_thresholds_section_loads_beside_the_others(tmp_path: Path) -> None:
    path = write_thresholds(
        tmp_path,
        "slo:\n  error_rate: 0.01\nthresholds:\n  http_req_failed{tier:pro}: ['rate<0.01']\n"
        "gate:\n  current_runs: 2\n  keys: ['http_req_duration{tier:pro}: p(95)']\n",
    )
    loaded = load_thresholds(path)
    assert loaded.slo.error_rate == 0.01
    assert [t.label for t in loaded.thresholds] == ["http_req_failed{tier:pro}: rate<0.01"]
    assert loaded.gate.current_runs == 2 and loaded.gate.keys == ("http_req_duration{tier:pro}: p(95)",)


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("thresholds:\n  http_req_latency: ['p(95)<1']\n", "thresholds.http_req_latency", "unknown metric"),
        ("thresholds:\n  http_req_duration: ['p95<1']\n", "thresholds.http_req_duration[0]", "unknown aggregation"),
        ("thresholds:\n  qq_recovery_s{tier:pro}: ['value<1']\n", "thresholds.qq_recovery_s{tier:pro}", "no tag"),
        ("thresholds:\n  qq_limiter_decision_ms: ['avg<1']\n", "thresholds.qq_limiter_decision_ms[0]", "histogram"),
        (
            "thresholds:\n  http_req_duration{phase:during}: [{threshold: 'p(95)<1', abortOnFail: true}]\n",
            "thresholds.http_req_duration{phase:during}[0]",
            "known only after the experiment",
        ),
        (
            "thresholds:\n  qq_over_admitted_cost: [{threshold: 'count<1', abortOnFail: true}]\n",
            "thresholds.qq_over_admitted_cost[0]",
            "known only after the run",
        ),
        ("gate:\n  keys: ['http_req_duration: p95']\n", "gate.keys", "unknown aggregation"),
        ("gate:\n  min_effect_by_metric: {latency: 0.2}\n", "gate.min_effect_by_metric", "unknown metric"),
    ],
)
def test_a_bad_threshold_names_the_file_and_the_key(tmp_path: Path, text: str, field: str, problem: str) -> None:
    path = write_thresholds(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_thresholds(path)
    assert info.value.path == path
    assert info.value.field is not None and info.value.field.startswith(field)
    assert problem in info.value.problem


def test_verify_writes_the_summary_and_one_verdict_per_threshold(tmp_path: Path) -> None:
    spec = SyntheticRun(POLICY, mixed_consumers(POLICY), duration_s=20.0, redis_fault=(8.0, 12.0))
    write_run(tmp_path / "run", spec)
    path = write_thresholds(
        tmp_path,
        "thresholds:\n  http_req_duration{tier:pro,phase:before}: ['p(95)<50']\n"
        "  qq_fault_availability: ['rate>0.5']\n  qq_over_admitted_cost: ['count<=0']\n",
    )
    outcome = verify_run(tmp_path / "run", path)
    summary = read_summary(RunFolder(tmp_path / "run").summary_file)
    assert {"http_req_duration", "qq_fault_availability", "qq_recovery_s"} <= set(summary["metric"])
    judged = {v.check: v.status for v in outcome.verdicts if v.check.startswith("threshold ")}
    assert judged == {
        "threshold http_req_duration{phase:before,tier:pro}: p(95)<50": "pass",
        "threshold qq_fault_availability: rate>0.5": "pass",
        "threshold qq_over_admitted_cost: count<=0": "pass",
    }
    written = json.loads(RunFolder(tmp_path / "run").verdicts_file.read_text())
    assert sum(v["check"].startswith("threshold ") for v in written["verdicts"]) == 3
    assert np.isfinite(summary["value"]).any()


EVERY_METRIC = """\
thresholds:
  http_req_duration{endpoint:/identify,tier:pro,phase:before}: ["p(95)<50"]
  qq_req_duration_intended{tier:pro}: ["p(99)<100"]
  qq_generator_lag_ms{endpoint:/compare}: ["p(99)<10"]
  http_req_failed{phase:during,fault:kill redis}: ["rate<0.5"]
  http_reqs{tier:free}: ["count>10", "rate>0.1"]
  qq_rejected_ratio{tier:free,phase:after}: ["rate<0.9"]
  qq_over_admitted_cost{tier:pro}: ["count<=0"]
  qq_false_rejections{tier:free}: ["count<=0"]
  qq_limiter_decision_ms: ["p(99)<2"]
  qq_recovery_s{fault:kill redis}: ["value<10"]
  qq_fault_availability{fault:kill redis}: ["rate>0.5"]
  qq_host_other_cpu: ["value<2"]
  qq_host_cpu_pressure: ["value<1"]
  iterations_dropped: ["count<=0"]
"""


def test_every_metric_can_be_thresholded_with_tags(tmp_path: Path) -> None:
    from quotaquake.runfolder.models import HostSample

    spec = SyntheticRun(POLICY, mixed_consumers(POLICY), duration_s=20.0, redis_fault=(8.0, 12.0))
    folder = RunFolder(tmp_path / "run")
    write_run(folder.path, spec)
    snapshot = folder.read_prometheus()
    assert snapshot is not None
    buckets = {"0.001": 900.0, "0.002": 995.0, "0.005": 1000.0, "+Inf": 1000.0}
    folder.write_prometheus(snapshot.model_copy(update={"decision_buckets": buckets, "decision_count": 1000.0}))
    for second in range(1, 21):
        folder.append_host_sample(
            HostSample(t=START_S + second, interval_s=1.0, cores=2, cpu_busy=[0.6, 0.5], psi_some=0.2,
                       generator_cpu=0.2, stack_cpu=0.5, stack_processes=9, wake_delay_counts=[90, 10] + [0] * 11)
        )  # fmt: skip
    outcome = verify_run(folder.path, write_thresholds(tmp_path, EVERY_METRIC))
    judged = {v.check: v for v in outcome.verdicts if v.check.startswith("threshold ")}
    assert len(judged) == 15
    for check, verdict in judged.items():
        assert "no summary row" not in verdict.summary, check
        if check.startswith("threshold iterations_dropped"):
            assert verdict.status == "not-applicable"  # Locust sends late, it drops nothing
        else:
            assert verdict.status in ("pass", "fail", "unknown") and verdict.evidence["n"], check
    assert judged["threshold qq_host_other_cpu: value<2"].status == "pass"  # 1.1 x 2 cores - 0.5 - 0.2 = 0.4
    assert judged["threshold qq_recovery_s{fault:kill redis}: value<10"].status == "pass"
