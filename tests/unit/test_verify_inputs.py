"""Reading run folders, thresholds and the Prometheus snapshot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

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
    assert Thresholds().slo.proxy_p95_ms == 50.0
    assert Thresholds().slo.limiter_decision_p99_ms == 2.0
    assert Thresholds().slo.error_rate == 0.001


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
