"""The report of a verified run: ``index.html`` (self-contained, interactive) and ``junit.xml``.

Renderers only show what verification decided; they never judge. The page: verdicts with their evidence
as tables; admitted vs allowed per tier and for the worst consumers (``allowance``); the per endpoint x
tier table (``endpoints``); request rate by status class, latency percentiles and generator lag over time
(``series``); fault windows shaded in every chart; links to every artifact of the run folder.
"""

from __future__ import annotations

from pathlib import Path

from quotaquake.report.allowance import admitted_vs_allowed
from quotaquake.report.artifacts import artifacts
from quotaquake.report.charts import allowance_charts, allowance_note, time_series_charts
from quotaquake.report.endpoints import endpoint_table
from quotaquake.report.html import Charts, render_html, write_html
from quotaquake.report.junit import write_junit
from quotaquake.report.series import time_series, timeline_of
from quotaquake.report.verdict_marks import marks, offenders, quota_evidence
from quotaquake.runfolder import RunFolder
from quotaquake.verify.data.rundata import RunData, read_verify_history
from quotaquake.verify.verdict import Outcome

__all__ = ["render_report"]

REPORT_COLUMNS: tuple[str, ...] = (
    *("intended_ns", "sent_ns", "latency_ms", "status", "cost"),
    *("consumer", "tier", "endpoint", "degraded"),
)


def render_report(folder: RunFolder, outcome: Outcome) -> Path:
    """Write ``junit.xml`` and ``index.html`` into the run folder; returns the path of ``index.html``."""
    write_junit(folder.junit_file, outcome)
    run = _load(folder)
    html = render_html(
        outcome,
        run.info,
        run.faults,
        charts(run, outcome),
        endpoint_table(run.history),
        artifacts(folder),
        run.monthly_seeds,
    )
    return write_html(folder.report_file, html)


def _load(folder: RunFolder) -> RunData:
    """What the report shows of the run folder, read as verification reads it (``load_run``) but only the
    history columns the report uses."""
    engine = folder.read_engine()
    return RunData(
        info=folder.read_info(),
        history=read_verify_history(folder, REPORT_COLUMNS),
        faults=folder.read_faults(),
        monthly_seeds=[] if engine is None else engine.monthly_seeds,
        engine=engine,
        chaos_ran=folder.had_experiment(),
    )


def charts(run: RunData, outcome: Outcome) -> Charts:
    """Every chart of the run (none for an empty history)."""
    timeline = timeline_of(run.history["sent_ns"].to_numpy())
    if timeline is None:
        return Charts()
    evidence = quota_evidence(outcome)
    grid = timeline.t0_s + timeline.edges_s
    allowances = admitted_vs_allowed(run, grid, offenders(evidence))
    tiers, consumers = allowance_charts(allowances, timeline, run.faults, marks(evidence))
    series = time_series(run.history, timeline)
    return Charts(
        time_series_charts(series, run.faults),
        tiers,
        consumers,
        t0_ms=round(timeline.t0_ns / 1e6),
        allowance_note=allowance_note(allowances.model),
    )
