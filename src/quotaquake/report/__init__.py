"""The report of a verified run: ``index.html`` (self-contained) and ``junit.xml``.

Renderers only show what verification decided; they never judge.
"""

from __future__ import annotations

from pathlib import Path

from quotaquake.report.html import render_html, write_html
from quotaquake.report.junit import write_junit
from quotaquake.report.plots import render_plots
from quotaquake.report.series import time_series
from quotaquake.runfolder import RunFolder
from quotaquake.verify.data.rundata import read_verify_history
from quotaquake.verify.verdict import Outcome

SERIES_COLUMNS = ("intended_ns", "sent_ns", "latency_ms", "status", "tier", "degraded")

__all__ = ["render_report"]


def render_report(folder: RunFolder, outcome: Outcome) -> Path:
    """Write ``index.html`` and ``junit.xml`` into the run folder; returns the path of ``index.html``."""
    info = folder.read_info()
    faults = folder.read_faults()
    series = time_series(read_verify_history(folder, SERIES_COLUMNS))
    plots = [] if series is None else render_plots(series, faults)
    engine = folder.read_engine()
    seeds = [] if engine is None else engine.monthly_seeds
    write_junit(folder.junit_file, outcome)
    return write_html(folder.report_file, render_html(outcome, info, faults, plots, seeds))
