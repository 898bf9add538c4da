"""Completeness: did the run record what it planned? An incomplete run never passes.

Compared, from what the run folder itself says:

* the orchestrating process finished (``run.json`` has an end time) and the load engine neither died by a
  signal nor failed to start (``load_exit_code``);
* the load engine recorded its start, its end and its final counts (``engine.json``): Locust killed before
  it could quit writes no end and no totals;
* the engine ran for the planned duration (``run.json``'s ``duration_s``), within ``STOP_SLACK_S``;
* the history holds exactly the requests the engine counted: fewer rows means recorded requests were lost,
  more means rows from elsewhere; an empty history is incomplete whatever the engine says;
* with Locust workers (``engine.json`` ``workers``, written by the master): every worker that joined sent its
  final report, never went missing (heartbeat lost: killed, hung, cut off), and has as many rows in this
  folder as requests it recorded (none left in its own folder); the workers' rows add up to the history.
  The largest clock uncertainty between a worker and the master is in the evidence
  (``clock_uncertainty_ms``): how far apart two workers' times may be beyond what the history shows.
* the engine sent every request its schedule planned: k6's arrival-rate executors drop a tick when no VU
  is free (``dropped_iterations``), and a dropped request is one the system was never asked to answer,
  typically while it was slowest, so the recorded latencies and quotas no longer cover the planned load.

Incomplete is ``unknown`` (exit 3), not ``fail``: the system was not tested as planned, which is no proof
that it is wrong; the summary starts with "incomplete" and says what is missing and what would decide it.
"""

from __future__ import annotations

from quotaquake.runfolder.models import EngineRecord, RunInfo, WorkerRecord
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Verdict

CHECK = "completeness"
STOP_SLACK_S = 1.0
"""How much shorter than planned the engine may have run (seconds): Locust's run timer and its start/stop
events are a few hundred milliseconds apart; a run stopped early misses far more."""


def check_completeness(run: RunData, thresholds: Thresholds) -> Verdict:
    """One verdict listing every way the run folder shows the run to be incomplete."""
    del thresholds
    rows = len(run.history)
    missing = incompleteness(run)
    workers = [] if run.engine is None else run.engine.workers
    evidence: dict[str, object] = {
        "history_rows": rows,
        "engine_requests": None if run.engine is None else run.engine.requests,
        "planned_duration_s": run.info.duration_s,
        "engine_duration_s": _engine_duration_s(run.engine),
        "load_exit_code": run.info.load_exit_code,
        "dropped_iterations": None if run.engine is None else run.engine.dropped_iterations,
        "missing": missing,
        "workers": [_worker_evidence(w) for w in workers],
        "clock_uncertainty_ms": max((w.clock_uncertainty_ms or 0.0 for w in workers), default=None),
    }
    if missing:
        return Verdict(CHECK, "unknown", "incomplete: " + "; ".join(missing), evidence)
    return Verdict(CHECK, "pass", f"complete: {rows} requests recorded, as many as the load engine counted", evidence)


def incompleteness(run: RunData) -> list[str]:
    """Every way the run folder shows the run to be incomplete (empty: complete). A history of an incomplete
    run may lack requests the system answered, so other checks must not read a shortfall as the system's."""
    rows = len(run.history)
    return (
        _orchestration_gaps(run.info, run.engine)
        + _engine_gaps(run.engine, run.info, rows)
        + _worker_gaps(run.engine, rows)
    )


def _orchestration_gaps(info: RunInfo, engine: EngineRecord | None) -> list[str]:
    gaps = []
    if info.ended_at is None:
        gaps.append("the run did not finish (run.json has no end time: the orchestrating process was killed?)")
    code = info.load_exit_code
    if code is not None and code < 0:
        gaps.append(f"the load engine was killed by signal {-code}")
    elif code is not None and code > 1:  # Locust exits 1 when some requests failed: that is data, not a gap
        name = "locust" if engine is None else engine.engine
        gaps.append(f"the load engine exited with code {code} (see {name}'s log in the run folder)")
    return gaps


def _engine_gaps(engine: EngineRecord | None, info: RunInfo, rows: int) -> list[str]:
    if engine is None:
        return ["the load engine left no record (engine.json): it never started or was killed at once"]
    gaps = []
    if engine.started_at is None:
        gaps.append("the load engine never started its test")
    if engine.ended_at is None or engine.requests is None:
        gaps.append("the load engine never quit: no end time and no final counts (killed?)")
    duration = _engine_duration_s(engine)
    if duration is not None and info.duration_s is not None and duration < info.duration_s - STOP_SLACK_S:
        gaps.append(f"the load stopped after {duration:.1f} s of {info.duration_s:g} s planned")
    if engine.dropped_iterations:
        gaps.append(
            f"the load engine dropped {engine.dropped_iterations} scheduled request(s) (no free VU at their time); "
            "a run without drops decides (more VUs: --qq-max-vus, or a lower rate)"
        )
    if rows == 0:
        gaps.append("the history is empty: no request was recorded in this run folder")
    elif engine.requests is not None and rows != engine.requests:
        lost = engine.requests - rows
        gaps.append(
            f"history has {rows} rows for {engine.requests} requests the engine counted ({lost} lost)"
            if lost > 0
            else f"history has {rows} rows but the engine counted only {engine.requests} (rows from elsewhere?)"
        )
    return gaps


def _worker_gaps(engine: EngineRecord | None, rows: int) -> list[str]:
    """What the master's record of its workers shows missing (nothing for a single process)."""
    if engine is None or not engine.distributed:
        return []
    if not engine.workers:
        return ["the Locust master recorded no worker: nobody generated load"]
    gaps = [gap for worker in engine.workers for gap in _gaps_of(worker)]
    reported = sum(w.rows for w in engine.workers)
    if reported != rows and all(w.final_report for w in engine.workers):
        gaps.append(f"history has {rows} rows but the workers put {reported} into this run folder")
    return gaps


def _gaps_of(worker: WorkerRecord) -> list[str]:
    name = f"worker {worker.worker or worker.id}" + (f" on {worker.host}" if worker.host else "")
    gaps = []
    if worker.missing:
        when = f" at {worker.left_at:%H:%M:%S}" if worker.left_at else ""
        gaps.append(f"{name} went missing{when} (heartbeat lost): its rows since its last part are lost")
    elif not worker.final_report:
        gaps.append(f"{name} sent no final report (killed, or it came after the master quit)")
    if worker.rows_elsewhere:
        where = f" (left in {worker.spill_dir})" if worker.spill_dir else ""
        gaps.append(f"{name}: {worker.rows_elsewhere} rows are not in this run folder{where}")
    if worker.requests is not None and worker.rows + worker.rows_elsewhere != worker.requests:
        gaps.append(f"{name}: {worker.rows} rows here for {worker.requests} requests it recorded")
    return gaps


def _worker_evidence(worker: WorkerRecord) -> dict[str, object]:
    return worker.model_dump(
        mode="json",
        include={"worker", "host", "delivery", "rows", "requests", "rows_elsewhere", "missing", "final_report",
                 "clock_offset_ms", "clock_uncertainty_ms"},
    )  # fmt: skip


def _engine_duration_s(engine: EngineRecord | None) -> float | None:
    if engine is None or engine.started_at is None or engine.ended_at is None:
        return None
    return (engine.ended_at - engine.started_at).total_seconds()
