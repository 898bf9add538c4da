"""Matplotlib plots of the run's time series as base64 PNGs (fault windows shaded in every plot)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from quotaquake.report.series import Series
from quotaquake.runfolder.models import FaultWindow

FAULT_COLOUR = "#d62728"


@dataclass(frozen=True)
class Plot:
    title: str
    png_base64: str


def render_plots(series: Series, faults: list[FaultWindow]) -> list[Plot]:
    x = series.times
    specs: list[tuple[str, str, dict[str, npt.NDArray[np.float64]]]] = [
        ("Requests per second by tier", "req/s", series.by_tier),
        ("Requests per second by status", "req/s", series.by_status),
        ("429 ratio", "share of requests", {"429 / all": series.ratio_429}),
        ("Latency from intended send (corrected)", "ms", series.latency),
        ("Limiter degraded decisions", "decisions/s", {"degraded": series.degraded}),
    ]
    plots: list[Plot] = []
    for title, unit, lines in specs:
        figure = Figure(figsize=(11, 2.8), dpi=90, layout="constrained")
        axes = figure.add_subplot()
        for label, values in lines.items():
            if np.any(np.nan_to_num(values) > 0) or len(lines) == 1:
                axes.plot(x, values, label=label, linewidth=1.2)
        _shade_faults(axes, series, faults)
        axes.set_title(title, loc="left", fontsize=11)
        axes.set_xlabel(f"seconds since first request (bins of {series.bin_s:g} s)")
        axes.set_ylabel(unit)
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper right", fontsize=8, ncols=3)
        plots.append(Plot(title, _png(figure)))
    return plots


def _shade_faults(axes: Axes, series: Series, faults: list[FaultWindow]) -> None:
    end_of_run = float(series.times[-1] + series.bin_s) if len(series.times) else 0.0
    for i, window in enumerate(faults):
        start = window.start - series.t0_ns / 1e9
        end = end_of_run if window.end is None else window.end - series.t0_ns / 1e9
        label = f"fault: {window.name}" if i == 0 else None
        axes.axvspan(start, end, color=FAULT_COLOUR, alpha=0.15, label=label)


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
