"""Completeness: an incomplete run (killed, stopped early, history lost) is never a pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from quotaquake.policy import load_policy
from quotaquake.runfolder.models import EngineRecord
from quotaquake.verify.checks.completeness import check_completeness
from quotaquake.verify.thresholds import Thresholds
from tests.support.synthetic import START_S, frame_from_rows, run_data

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")
T0 = datetime.fromtimestamp(START_S, tz=UTC)
ROWS = [{"t": i * 0.1, "consumer": "pro-1", "tier": "pro"} for i in range(100)]  # 10 s of history


def judge(engine: EngineRecord | None, *, ended: bool = True, duration_s: float = 10.0, exit_code: int | None = 0):
    run = run_data(frame_from_rows(ROWS), POLICY)
    info = run.info.model_copy(
        update={
            "duration_s": duration_s,
            "ended_at": T0 + timedelta(seconds=12) if ended else None,
            "load_exit_code": exit_code,
        }
    )
    run.info = info
    run.engine = engine
    return check_completeness(run, Thresholds())


def engine(seconds: float = 10.2, requests: int | None = 100) -> EngineRecord:
    return EngineRecord(started_at=T0, ended_at=T0 + timedelta(seconds=seconds), requests=requests, failures=0)


def test_a_whole_run_is_complete() -> None:
    verdict = judge(engine())
    assert verdict.status == "pass", verdict.summary


def test_locust_killed_mid_run_is_incomplete_never_pass() -> None:
    # killed 4 s into a 10 s run: engine.json has a start but neither an end nor totals, exit -9
    verdict = judge(EngineRecord(started_at=T0), exit_code=-9)
    assert verdict.status == "unknown"
    assert verdict.summary.startswith("incomplete: ")
    assert "killed by signal 9" in verdict.summary and "never quit" in verdict.summary


def test_stopped_early_and_lost_rows_are_named() -> None:
    assert "stopped after 4.0 s of 10 s planned" in judge(engine(seconds=4.0)).summary
    lost = judge(engine(requests=103))
    assert lost.status == "unknown" and "100 rows for 103 requests the engine counted (3 lost)" in lost.summary
    extra = judge(engine(requests=90))
    assert extra.status == "unknown" and "counted only 90" in extra.summary


def test_no_engine_record_or_no_end_of_the_run_is_incomplete() -> None:
    assert "left no record" in judge(None).summary
    assert "did not finish" in judge(engine(), ended=False).summary


def test_failed_requests_exit_code_is_data_not_a_gap() -> None:
    assert judge(engine(), exit_code=1).status == "pass"  # Locust exits 1 when some requests failed
    assert judge(engine(), exit_code=2).status == "unknown"


def test_requests_the_engine_dropped_make_the_run_incomplete() -> None:
    # k6 dropped 3 ticks (no free VU): 100 rows = 100 requests k6 counted, but 103 were scheduled
    record = engine().model_copy(update={"engine": "k6", "dropped_iterations": 3})
    verdict = judge(record)
    assert verdict.status == "unknown"
    assert "dropped 3 scheduled request(s)" in verdict.summary and "--qq-max-vus" in verdict.summary
    assert judge(engine().model_copy(update={"engine": "k6", "dropped_iterations": 0})).status == "pass"
