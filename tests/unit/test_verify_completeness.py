"""Completeness: an incomplete run (killed, stopped early, history lost) is never a pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from quotaquake.policy import load_policy
from quotaquake.runfolder.models import Delivery, EngineRecord, WorkerRecord
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


def worker(name: str, rows: int, **update: object) -> WorkerRecord:
    fields: dict[str, object] = {"worker": name, "host": "gen-a", "rows": rows, "requests": rows, "final_report": True}
    return WorkerRecord(id=f"client-{name}", delivery=Delivery.SHIPPED, **{**fields, **update})


def distributed(*workers: WorkerRecord) -> EngineRecord:
    return engine().model_copy(update={"distributed": True, "workers": list(workers)})


def test_workers_that_all_delivered_their_rows_make_a_complete_run() -> None:
    verdict = judge(distributed(worker("w1", 60, clock_uncertainty_ms=0.3), worker("w2", 40)))
    assert verdict.status == "pass", verdict.summary
    assert verdict.evidence["clock_uncertainty_ms"] == 0.3
    assert [w["rows"] for w in verdict.evidence["workers"]] == [60, 40]  # type: ignore[index]


def test_a_worker_killed_mid_run_makes_the_run_incomplete_never_pass() -> None:
    # Locust lost its heartbeat; its last rows never arrived; the other worker's rows and Locust's total agree
    killed = worker("w2", 40, missing=True, final_report=False, requests=None)
    verdict = judge(distributed(worker("w1", 60), killed))
    assert verdict.status == "unknown"
    assert "worker w2 on gen-a went missing" in verdict.summary


def test_no_final_report_rows_left_elsewhere_or_short_rows_are_each_named() -> None:
    silent = judge(distributed(worker("w1", 60), worker("w2", 40, final_report=False, requests=None)))
    assert silent.status == "unknown" and "worker w2 on gen-a sent no final report" in silent.summary
    spilled = worker("w2", 30, requests=40, rows_elsewhere=10, spill_dir="/data/run/history")
    left = judge(distributed(worker("w1", 70), spilled))
    assert left.status == "unknown" and "10 rows are not in this run folder (left in /data/run/history)" in left.summary
    short = judge(distributed(worker("w1", 60, requests=65), worker("w2", 40)))
    assert short.status == "unknown" and "worker w1 on gen-a: 60 rows here for 65 requests" in short.summary


def test_workers_rows_must_add_up_to_the_history_and_a_master_needs_workers() -> None:
    verdict = judge(distributed(worker("w1", 60), worker("w2", 50)))
    assert verdict.status == "unknown" and "the workers put 110 into this run folder" in verdict.summary
    assert "recorded no worker" in judge(distributed()).summary


def test_an_empty_history_is_incomplete_even_when_the_engine_agrees() -> None:
    run = run_data(frame_from_rows(ROWS[:0]), POLICY)
    run.info = run.info.model_copy(update={"duration_s": 10.0, "ended_at": T0 + timedelta(seconds=12)})
    run.engine = engine(requests=0)
    verdict = check_completeness(run, Thresholds())
    assert verdict.status == "unknown" and "the history is empty" in verdict.summary


def test_requests_the_engine_dropped_make_the_run_incomplete() -> None:
    # k6 dropped 3 ticks (no free VU): 100 rows = 100 requests k6 counted, but 103 were scheduled
    record = engine().model_copy(update={"engine": "k6", "dropped_iterations": 3})
    verdict = judge(record)
    assert verdict.status == "unknown"
    assert "dropped 3 scheduled request(s)" in verdict.summary and "--qq-max-vus" in verdict.summary
    assert judge(engine().model_copy(update={"engine": "k6", "dropped_iterations": 0})).status == "pass"
