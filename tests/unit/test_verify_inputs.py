"""Reading run folders, thresholds and the Prometheus snapshot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quotaquake.errors import ConfigError
from quotaquake.prometheus import snapshot_prometheus
from quotaquake.runfolder import RunFolder
from quotaquake.verify.data.rundata import read_verify_history
from quotaquake.verify.thresholds import Thresholds, load_thresholds
from tests.support.synthetic import frame_from_rows, write_history

REPO = Path(__file__).resolve().parents[2]


def test_history_parts_are_merged_in_send_order_as_categoricals(tmp_path: Path):
    frame = frame_from_rows([{"t": t, "consumer": f"c{int(t) % 3}", "tier": "free"} for t in range(10)])
    write_history(tmp_path / "a", frame.iloc[5:].reset_index(drop=True))
    shuffled = pd.concat([frame.iloc[5:], frame.iloc[:5]], ignore_index=True)
    write_history(tmp_path / "b", shuffled, parts=2)
    history = read_verify_history(RunFolder(tmp_path / "b"))
    assert np.all(np.diff(history["sent_ns"].to_numpy()) > 0)
    assert isinstance(history["consumer"].dtype, pd.CategoricalDtype)
    assert list(history["consumer"].astype(str)) == [f"c{t % 3}" for t in range(10)]
    assert np.isnan(history["rl_limit"].to_numpy()).all()
    assert len(read_verify_history(RunFolder(tmp_path / "missing"))) == 0


def test_thresholds_file_holds_the_defaults():
    assert load_thresholds(REPO / "stack" / "thresholds.yaml") == Thresholds()
    assert Thresholds().slo.latency.default_p95_ms == 50.0
    assert Thresholds().slo.limiter_decision_p99_ms == 2.0
    assert Thresholds().slo.error_rate == 0.001
    assert Thresholds().slo.warmup_s == 3.0
    assert Thresholds().generator.max_lag_p99_ms == 10.0


def test_latency_targets_per_endpoint_tier_and_phase():
    latency = Thresholds.model_validate(
        {"slo": {"latency": {"endpoints": {"/batch": 120}, "tiers": {"pro": 40}, "phases": {"after": 80}}}}
    ).slo.latency
    assert latency.target_ms("/identify", "free", "before") == 50  # the default
    assert latency.target_ms("/batch", "free", "run") == 120
    assert latency.target_ms("/batch", "pro", "run") == 40  # both promises: the smaller
    assert latency.target_ms("/batch", "pro", "after:kill redis") == 80  # the phase's own
    assert latency.target_ms("/batch", "pro", "during:kill redis") is None  # faults: not judged unless given


def test_bad_latency_thresholds_name_the_file_and_field(tmp_path: Path):
    path = tmp_path / "thresholds.yaml"
    cases = {
        "generator: {max_lag_p99_ms: 50}\n": r"generator\.max_lag_p99_ms: must be below the smallest latency "
        r"target \(50 ms\)",
        "slo: {latency: {endpoints: {/batch: 8}}}\n": r"generator\.max_lag_p99_ms: .*\(8 ms\)",
        "slo: {latency: {phases: {halfway: 80}}}\n": r"slo\.latency\.phases\.halfway",
        "slo: {latency: {tiers: {pro: 0}}}\n": r"slo\.latency\.tiers\.pro: Input should be greater than 0",
        "slo: {proxy_p95_ms: 40, latency: {default_p95_ms: 30}}\n": r"slo\.proxy_p95_ms: conflicts",
        "slo: {confidence: 1}\n": r"slo\.confidence",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(ConfigError, match=f"thresholds.yaml: {message}"):
            load_thresholds(path)
    path.write_text("slo: {proxy_p95_ms: 40}\n")  # the former name of the default target still reads
    assert load_thresholds(path).slo.latency.default_p95_ms == 40


def fake_prometheus(values: dict[tuple[str, float], float]):
    asked: list[tuple[str, float]] = []

    def query(expression: str, at: float) -> float | None:
        asked.append((expression, at))
        for (fragment, time), value in values.items():
            if fragment in expression and time == at:
                return value
        return None

    return query, asked


def test_snapshot_uses_counter_differences():
    query, asked = fake_prometheus(
        {
            ("upstream_rq_total", 100.0): 1000.0,
            ("upstream_rq_total", 160.0): 4000.0,
            ('envoy_response_code="429"', 160.0): 30.0,  # absent at start: counts from 0
            ("increase(quotaquake_limiter_degraded", 160.0): 7.5,
            ("degraded_decisions", 100.0): 5.0,
            ("degraded_decisions", 160.0): 2.0,  # reset: falls back to increase()
            ("histogram_quantile", 160.0): 0.0012,
        }
    )
    snap = snapshot_prometheus("http://prom", 100.0, 160.0, query=query)
    assert (snap.requests, snap.rejected_429, snap.degraded_decisions) == (3000.0, 30.0, 7.5)
    assert snap.decision_p99_ms == 1.2
    assert snap.error is None
    assert any("[60s]" in expression for expression, _ in asked)


def test_unreachable_prometheus_gives_an_error_snapshot():
    snap = snapshot_prometheus("http://127.0.0.1:1", 0.0, 10.0)
    assert snap.error is not None and "ConnectionError" in snap.error
    assert snap.requests is None


def test_absent_429_series_means_none_but_absent_request_series_means_unknown():
    query, _ = fake_prometheus({("upstream_rq_total", 160.0): 50.0})
    snap = snapshot_prometheus("http://prom", 100.0, 160.0, query=query)
    assert (snap.requests, snap.rejected_429, snap.degraded_decisions) == (50.0, 0.0, 0.0)
    query, _ = fake_prometheus({})
    snap = snapshot_prometheus("http://prom", 100.0, 160.0, query=query)
    assert (snap.requests, snap.rejected_429) == (None, None)


def test_snapshot_has_the_decision_median_count_and_bucket_differences():
    query, _ = fake_prometheus(
        {
            ("upstream_rq_total", 160.0): 50.0,
            ("histogram_quantile(0.5", 160.0): 0.0006,
            ("histogram_quantile(0.99", 160.0): 0.004,
            ("decision_seconds_count", 100.0): 200.0,
            ("decision_seconds_count", 160.0): 1200.0,
        }
    )
    buckets = {100.0: {"0.001": 150.0, "0.002": 190.0, "+Inf": 200.0}, 160.0: {"0.002": 1170.0, "+Inf": 1200.0}}
    buckets[160.0]["0.001"] = 1100.0

    def vector(expression: str, at: float) -> dict[str, float]:
        return buckets[at] if "increase" not in expression else {}

    snap = snapshot_prometheus("http://prom", 100.0, 160.0, query=query, vector_query=vector)
    assert (snap.decision_p50_ms, snap.decision_p99_ms, snap.decision_count) == (0.6, 4.0, 1000.0)
    assert snap.decision_buckets == {"0.001": 950.0, "0.002": 980.0, "+Inf": 1000.0}


def test_snapshot_buckets_fall_back_to_increase_after_a_restart():
    query, _ = fake_prometheus({("upstream_rq_total", 160.0): 50.0})
    at = {100.0: {"0.001": 500.0, "+Inf": 600.0}, 160.0: {"0.001": 90.0, "+Inf": 100.0}}

    def vector(expression: str, when: float) -> dict[str, float]:
        return {"+Inf": 160.0, "0.001": 140.0} if "increase" in expression else at[when]

    snap = snapshot_prometheus("http://prom", 100.0, 160.0, query=query, vector_query=vector)
    assert snap.decision_buckets == {"0.001": 140.0, "+Inf": 160.0}
    assert snapshot_prometheus("http://prom", 100.0, 160.0, query=query).decision_buckets is None
