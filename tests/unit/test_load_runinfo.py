"""run.json of plain Locust runs, monthly seeds, and the steady-rate measure."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quotaquake.load.measure import arrival_stats, steady_rate
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.runinfo import add_monthly_seeds, complete_run_info, ensure_run_info, new_run_info
from quotaquake.policy import load_policy
from quotaquake.record import MonthlySeed, RunInfo, read_run_info
from quotaquake.stack.state import StackState

REPO = Path(__file__).resolve().parents[2]


def make_info(run_dir: Path) -> RunInfo:
    parser = argparse.ArgumentParser()
    add_options(parser, ScenarioDefaults())
    options = ScenarioOptions.from_namespace(parser.parse_args(["--qq-out", str(run_dir), "--qq-rate", "250"]))
    state = StackState(
        provider="local", stack_id="s", work_dir="/tmp", state_file="/tmp/s.json", replicas=2, defect="racy"
    )
    return new_run_info(
        options=options,
        state=state,
        policy=load_policy(REPO / "stack" / "policy.yaml"),
        scenario="scenarios/tiered.py",
        duration_s=20.0,
        processes=2,
        command=["locust"],
    )


def test_run_json_written_once_then_completed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-1"
    assert ensure_run_info(run_dir, make_info(run_dir))
    info = read_run_info(run_dir)
    assert (info.run_id, info.target_rate, info.replicas, info.defect) == ("run-1", 250, 2, "racy")
    assert info.ended_at is None
    assert not ensure_run_info(run_dir, make_info(run_dir))  # present: left alone
    add_monthly_seeds(run_dir, [MonthlySeed(consumer="free-1", used=49_950)])
    complete_run_info(run_dir, request_count=1234)
    info = read_run_info(run_dir)
    assert info.locust_request_count == 1234 and info.ended_at is not None
    assert info.monthly_seeds == [MonthlySeed(consumer="free-1", used=49_950)]


def test_complete_without_run_json_is_a_no_op(tmp_path: Path) -> None:
    complete_run_info(tmp_path, request_count=1)
    assert not (tmp_path / "run.json").exists()


def test_steady_rate_ignores_start_and_stop_transients() -> None:
    steady = np.arange(0, 10_000_000_000, 1_000_000)  # 1000 req/s for 10 s
    ramp = np.arange(-1_000_000_000, 0, 4_000_000)  # 250 req/s for the first second
    sent = np.concatenate([ramp, steady])
    assert steady_rate(sent, trim_s=1.0) == pytest.approx(1000, rel=0.001)
    assert len(sent) / ((sent.max() - sent.min()) / 1e9) < 950
    assert np.isnan(steady_rate(sent[:3], trim_s=1.0))


def test_arrival_stats_lag() -> None:
    frame = pd.DataFrame({"intended_ns": [0, 10_000_000, 20_000_000], "sent_ns": [0, 30_000_000, 20_500_000]})
    stats = arrival_stats(frame)
    assert stats.requests == 3
    assert stats.lag_max_ms == pytest.approx(20.0)
    assert stats.late_over_10ms == pytest.approx(1 / 3)
