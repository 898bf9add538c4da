"""The report of a verified run: ``index.html`` (self-contained) and ``junit.xml``.

Renderers only show what verification decided; they never judge.
"""

from __future__ import annotations

from pathlib import Path

from quotaquake.record import FAULTS_FILE, read_run_info
from quotaquake.report.html import render_html, write_html
from quotaquake.report.junit import write_junit
from quotaquake.report.plots import render_plots
from quotaquake.report.series import time_series
from quotaquake.verify.rundata import read_faults, read_verify_history
from quotaquake.verify.verdict import Outcome

INDEX_FILE = "index.html"
JUNIT_FILE = "junit.xml"
SERIES_COLUMNS = ("intended_ns", "sent_ns", "latency_ms", "status", "tier", "degraded")

__all__ = ["INDEX_FILE", "JUNIT_FILE", "render_report"]


def render_report(run_dir: Path, outcome: Outcome) -> Path:
    """Write ``index.html`` and ``junit.xml`` into ``run_dir``; returns the path of ``index.html``."""
    info = read_run_info(run_dir)
    faults = read_faults(run_dir / FAULTS_FILE)
    series = time_series(read_verify_history(run_dir, SERIES_COLUMNS))
    plots = [] if series is None else render_plots(series, faults)
    write_junit(run_dir / JUNIT_FILE, outcome)
    return write_html(run_dir / INDEX_FILE, render_html(outcome, info, faults, plots))
