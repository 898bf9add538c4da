"""Interactive charts (Plotly figures as JSON; plotly.js is embedded once in the page, see ``html``).

Every chart has a UTC wall-clock x axis (the page's toggle switches all of them to seconds since the first
request; hovering shows both) and the run's fault windows shaded and labelled (name: kind of service
(role), expected behaviour). Series are computed elsewhere (``series``, ``allowance``); this module only
draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go

from quotaquake.report.allowance import Allowance, Allowances
from quotaquake.report.evidence import number
from quotaquake.report.series import Series, Timeline, wall_clock
from quotaquake.runfolder.models import FaultWindow

F64 = npt.NDArray[np.float64]
FAULT_COLOUR = "#d62728"
BAND_COLOUR = "rgba(31, 119, 180, 0.18)"
STATUS_COLOURS: dict[str, str] = {
    "2xx": "#2ca02c",
    "429": "#ff7f0e",
    "401": "#9467bd",
    "other 4xx": "#bcbd22",
    "5xx": "#d62728",
    "no response": "#222222",
    "other": "#7f7f7f",
}
PERCENTILE_COLOURS: dict[str, str] = {"p50": "#1f77b4", "p95": "#ff7f0e", "p99": "#d62728", "max": "#7f7f7f"}
MARK_SYMBOLS: tuple[str, ...] = ("x", "triangle-down", "diamond", "circle-open")
CAPTIONS: dict[str, str] = {
    "status": "Stacked, {per_bin}. 429: rejected by a quota; 401: unknown key; other 4xx: answered but not a "
    "success; no response: timeout or connection error. Dotted: responses the limiter decided without Redis "
    "(marked degraded).",
    "tiers": "Each tier's request rate, {per_bin}.",
    "latency": "Nearest-rank percentiles {per_bin} over responses. Solid: from the actual send (service time); "
    "dashed: from the intended send of the open-model schedule (includes generator lag: coordinated omission "
    "corrected).",
    "lag": "Actual minus intended send time, {per_bin}. A growing lag means the load generator, not the system "
    "under test, was the bottleneck.",
}


@dataclass(frozen=True)
class Chart:
    """One chart of the page: ``spec`` is the figure's JSON (data + layout), not yet masked."""

    key: str  # unique, used as the element id
    title: str
    caption: str
    spec: str


@dataclass(frozen=True)
class Mark:
    """Rows a verdict named (e.g. over-admitted requests) to mark on the admitted line."""

    label: str
    consumer: str
    tier: str
    sent_s: float  # epoch s


def time_series_charts(series: Series, faults: list[FaultWindow]) -> list[Chart]:
    timeline = series.timeline
    x = timeline.t0_s + timeline.starts_s
    status = go.Figure()
    for name, values in series.by_status.items():
        status.add_trace(_line(x, values, name, timeline, STATUS_COLOURS.get(name), stack=True))
    if np.any(series.degraded > 0):
        status.add_trace(_line(x, series.degraded, "marked degraded", timeline, "#000000", dash="dot"))
    tiers = go.Figure([_line(x, values, name, timeline) for name, values in series.by_tier.items()])
    latency = go.Figure()
    for name, values in series.latency.items():
        key = name.split()[0]
        dash = "dash" if "intended" in name else "solid"
        latency.add_trace(_line(x, values, name, timeline, PERCENTILE_COLOURS.get(key), dash=dash))
    lag = go.Figure([_line(x, v, n, timeline, PERCENTILE_COLOURS.get(n)) for n, v in series.lag.items()])
    per_bin = f"per {timeline.bin_s:g} s bin"
    specs = [
        ("status", "Request rate by status class", "req/s", status),
        ("tiers", "Request rate by tier", "req/s", tiers),
        ("latency", "Latency percentiles", "ms", latency),
        ("lag", "Generator lag", "ms", lag),
    ]
    return [_chart(k, t, u, f, timeline, faults, CAPTIONS[k].format(per_bin=per_bin)) for k, t, u, f in specs]


def allowance_charts(
    allowances: Allowances, timeline: Timeline, faults: list[FaultWindow], marks: Sequence[Mark]
) -> tuple[list[Chart], list[Chart]]:
    """(per tier charts, worst consumers' charts)."""
    tiers = [
        _allowance_chart(
            f"tier-{i}", f"tier {a.tier}", a, allowances, timeline, faults, [m for m in marks if m.tier == a.tier]
        )
        for i, a in enumerate(allowances.tiers)
    ]
    consumers = [
        _allowance_chart(
            f"consumer-{i}", f"consumer {a.name} ({a.tier})", a, allowances, timeline, faults,
            [m for m in marks if m.consumer == a.name],
        )
        for i, a in enumerate(allowances.consumers)
    ]  # fmt: skip
    return tiers, consumers


def _allowance_chart(
    key: str,
    title: str,
    allowance: Allowance,
    allowances: Allowances,
    timeline: Timeline,
    faults: list[FaultWindow],
    marks: Sequence[Mark],
) -> Chart:
    grid = allowances.grid_s
    figure = go.Figure()
    if allowance.ceiling is not None and allowance.floor is not None:
        floor = _line(grid, allowance.floor, "band floor", timeline, "rgba(31,119,180,0.35)", width=0.5)
        figure.add_trace(floor.update(showlegend=False, hoverinfo="skip", hovertemplate=None))
        figure.add_trace(
            go.Scatter(
                x=wall_clock(grid), y=allowance.ceiling, name="allowed by the model", mode="lines",
                line={"color": "#1f77b4", "width": 1}, fill="tonexty", fillcolor=BAND_COLOUR,
                hovertemplate="%{y:,.1f}",
            )
        )  # fmt: skip
    figure.add_trace(_line(grid, allowance.admitted, "admitted", timeline, "#111111", width=2))
    for i, label in enumerate(dict.fromkeys(m.label for m in marks)):
        picked = [m for m in marks if m.label == label]
        times = np.asarray([m.sent_s for m in picked], dtype=np.float64)
        y = np.interp(times, grid, allowance.admitted)
        figure.add_trace(
            go.Scatter(
                x=wall_clock(times), y=y, mode="markers", name=f"{label} (verdict)",
                marker={"symbol": MARK_SYMBOLS[i % len(MARK_SYMBOLS)], "size": 9, "color": FAULT_COLOUR,
                        "line": {"width": 2, "color": FAULT_COLOUR}},
                text=[m.consumer for m in picked], hovertemplate="%{text}",
            )
        )  # fmt: skip
    return _chart(key, f"Admitted vs allowed: {title}", allowances.unit, figure, timeline, faults, _limits(allowance))


def _limits(allowance: Allowance) -> str:
    """What the band is made of, in one line (per consumer: a tier's band sums its consumers')."""
    who = f"{allowance.consumers} consumers, each" if allowance.consumers > 1 else "one consumer"
    if allowance.ceiling is None or allowance.depth is None:
        return f"{who.removesuffix(', each')}; unlimited: no allowance, the line is what was admitted."
    if allowance.rate is None:
        return f"{who}: {number(allowance.depth)} requests per UTC minute."
    return f"{who}: bucket capacity C = {number(allowance.depth)}, refill {number(allowance.rate)}/s."


def allowance_note(model: str) -> str:
    """How to read the admitted-vs-allowed charts of ``model``."""
    if model in ("fixed-window", "kong"):
        return (
            "Cumulative admitted requests (rows the quota check judges: not degraded, outside fault windows). "
            "Band: what the fixed window allows, per_minute requests per UTC minute on top of what was "
            "admitted before the minute; the line stays inside it. Above the band: over-admitted."
        )
    return (
        "Cumulative admitted cost (rows the quota check judges: not degraded, outside fault windows). Band: "
        "the token bucket's ceiling, the most a correct limiter could have admitted by then given what it "
        "admitted before (capacity C = burst_factor x per_minute, refill per_minute/60 per second, full "
        "again after a fault); one bucket deep, so the line stays inside it and its distance below the top "
        "is the tokens left. Riding the top edge: the consumer is held at its quota. Above the band: "
        "over-admitted (the verdict adds a small timing tolerance)."
    )


def _line(
    x_s: F64,
    y: F64,
    name: str,
    timeline: Timeline,
    colour: str | None = None,
    *,
    dash: str = "solid",
    stack: bool = False,
    width: float = 1.5,
) -> go.Scatter:
    """A line over epoch-second times ``x_s``; hover shows the value and the seconds since t0."""
    line: dict[str, object] = {"dash": dash, "width": width, "shape": "hv" if stack else "linear"}
    if colour:
        line["color"] = colour
    return go.Scatter(
        x=wall_clock(x_s),
        y=y,
        name=name,
        mode="lines",
        line=line,
        stackgroup="status" if stack else None,
        customdata=np.round(x_s - timeline.t0_s, 3),
        hovertemplate="%{y:,.4g} <span style='color:#888'>t+%{customdata:.1f} s</span>",
        connectgaps=False,
    )


def _chart(
    key: str, title: str, unit: str, figure: go.Figure, timeline: Timeline, faults: list[FaultWindow], caption: str
) -> Chart:
    end_s = timeline.t0_s + timeline.n * timeline.bin_s
    for window in faults:
        figure.add_shape(
            type="rect", xref="x", yref="paper", y0=0, y1=1, layer="below", line_width=0,
            x0=wall_clock(np.asarray([window.start]))[0],
            x1=wall_clock(np.asarray([end_s if window.end is None else window.end]))[0],
            fillcolor=FAULT_COLOUR, opacity=0.13,
            label={"text": fault_label(window), "textposition": "top left", "font": {"size": 10, "color": "#8b1a1a"}},
        )  # fmt: skip
    figure.update_layout(
        template="none",
        height=330,
        margin={"l": 64, "r": 16, "t": 36, "b": 44},
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.2, "x": 0, "font": {"size": 11}},
        xaxis={"type": "date", "title": {"text": "UTC", "standoff": 4}, "hoverformat": "%H:%M:%S.%L",
               "gridcolor": "#eeeeee", "showline": True, "linecolor": "#999999"},
        yaxis={"title": {"text": unit}, "gridcolor": "#eeeeee", "rangemode": "tozero", "zeroline": False},
        font={"family": "system-ui, sans-serif", "size": 12},
        paper_bgcolor="white",
        plot_bgcolor="white",
    )  # fmt: skip
    return Chart(key, title, caption, figure.to_json())


def fault_label(window: FaultWindow) -> str:
    service = f" of {window.service}" if window.service else ""
    undone = "" if window.end is not None else ", never undone"
    return f"{window.name}: {window.kind}{service} ({window.role}), expect {window.expect}{undone}"


def spec_for_script(spec: str) -> str:
    """A figure's JSON made safe inside ``<script type="application/json">`` (no ``</`` sequence)."""
    return spec.replace("</", "<\\/")
