"""The gate's trend page (``trend.html``): each gated key (and the watched keys that moved most) over the
stored runs, in the HTML report's style (one self-contained file, plotly.js embedded, nothing fetched).

Per key: the value of every baseline run (with its within-run bounds as error bars where finite), the
band of the baseline (its lowest to highest run), the floor beyond which a change is a regression (the
baseline median x (1 +/- floor), on the worse side), and the current run(s) marked in the colour of the
gate's decision. Renderers show; the gate (``quotaquake.gate.decide``) decided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from quotaquake.gate.compare import Comparison
from quotaquake.gate.decide import GateResult, label, matched_text, percent
from quotaquake.gate.expressions import METRICS, tags_key
from quotaquake.report.charts import Chart, spec_for_script
from quotaquake.report.masking import mask_secrets

CHANGE_COLOURS: dict[str, str] = {
    "regressed": "#d62728",
    "unknown": "#e08a00",
    "improved": "#2ca02c",
    "unchanged": "#2ca02c",
}
BASELINE_COLOUR = "#1f77b4"
BAND_COLOUR = "rgba(31, 119, 180, 0.12)"
WATCHED_CHARTS = 10


def trend_charts(store: pd.DataFrame, result: GateResult) -> list[Chart]:
    """One chart per gated key, then the watched keys that moved most."""
    moved = sorted(
        (c for c in result.watched if c.change in ("regressed", "improved") and c.ratio is not None),
        key=lambda c: -abs((c.ratio or 1.0) - 1.0),
    )[:WATCHED_CHARTS]
    runs = store[store["run_id"].isin([*result.window.baseline, *result.window.current])]
    return [
        trend_chart(f"trend-{i}", runs, c, result.window.baseline, result.window.current, gated=i < len(result.gated))
        for i, c in enumerate([*result.gated, *moved])
    ]


def trend_chart(
    key: str, runs: pd.DataFrame, comparison: Comparison, baseline: Sequence[str], current: Sequence[str], gated: bool
) -> Chart:
    rows = runs[
        (runs["metric"] == comparison.metric)
        & (runs["tags"] == tags_key(comparison.tags))
        & (runs["aggregation"] == comparison.aggregation)
    ].sort_values(["time", "run_id"])
    spec = METRICS[comparison.metric]
    figure = go.Figure()
    base = rows[rows["run_id"].isin(baseline)]
    curr = rows[rows["run_id"].isin(current)]
    _band(figure, base, comparison, spec.worse)
    figure.add_trace(_runs_trace(base, "baseline runs", BASELINE_COLOUR, "circle", 7))
    colour = CHANGE_COLOURS.get(comparison.change, "#7f7f7f")
    figure.add_trace(_runs_trace(curr, f"current: {comparison.change}", colour, "diamond", 13))
    title = f"{label(comparison)} ({spec.unit}): {comparison.change} {percent(comparison.ratio)}"
    figure.update_layout(
        template="none", height=330, margin={"l": 64, "r": 16, "t": 36, "b": 44},
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        hovermode="closest", legend={"orientation": "h", "y": -0.2, "x": 0, "font": {"size": 11}},
        xaxis={"type": "date", "title": {"text": "run start (UTC)", "standoff": 4}, "gridcolor": "#eeeeee",
               "showline": True, "linecolor": "#999999"},
        yaxis={"title": {"text": spec.unit}, "gridcolor": "#eeeeee", "rangemode": "tozero", "zeroline": False},
        font={"family": "system-ui, sans-serif", "size": 12}, paper_bgcolor="white", plot_bgcolor="white",
    )  # fmt: skip
    caption = (
        f"{'Gated' if gated else 'Watched (not gated)'}; {comparison.reason}. Band: the baseline runs' lowest to "
        f"highest; dashed: the {comparison.min_effect:.0%} floor on the worse side of the baseline median; "
        "error bars: each run's own bounds where it has them."
    )
    return Chart(key, title, caption, figure.to_json())


def _runs_trace(rows: pd.DataFrame, name: str, colour: str, symbol: str, size: int) -> go.Scatter:
    values = rows["value"].to_numpy(dtype=np.float64)
    low, high = rows["low"].to_numpy(dtype=np.float64), rows["high"].to_numpy(dtype=np.float64)
    plus = np.where(np.isfinite(high), high - values, np.nan)
    minus = np.where(np.isfinite(low), values - low, np.nan)
    return go.Scatter(
        x=[t.isoformat() for t in rows["time"]], y=values, name=name, mode="markers+lines" if size < 10 else "markers",
        marker={"color": colour, "symbol": symbol, "size": size}, line={"color": colour, "width": 1},
        error_y={"type": "data", "array": plus, "arrayminus": minus, "visible": True, "thickness": 1, "width": 3,
                 "color": colour},
        text=[f"{run} ({commit[:12]}{', defect ' + defect if defect else ''})"
              for run, commit, defect in zip(rows["run_id"], rows["commit"], rows["defect"], strict=True)],
        hovertemplate="%{y:,.4g}<br>%{text}<extra></extra>",
    )  # fmt: skip


def _band(figure: go.Figure, base: pd.DataFrame, comparison: Comparison, worse: str) -> None:
    values = base["value"].to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return
    figure.add_hrect(y0=float(values.min()), y1=float(values.max()), fillcolor=BAND_COLOUR, line_width=0, layer="below")
    floor = float(np.median(values)) * (1 + comparison.min_effect if worse == "higher" else 1 - comparison.min_effect)
    if math.isfinite(floor):
        figure.add_hline(y=floor, line={"dash": "dash", "color": "#d62728", "width": 1})


def render_trend(store: pd.DataFrame, result: GateResult) -> str:
    """The trend page as one HTML document."""
    charts = trend_charts(store, result)
    environment = Environment(
        loader=PackageLoader("quotaquake.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        finalize=_masked,
    )
    return environment.get_template("trend.html.j2").render(
        result=result,
        rows=[_table_row(c) for c in result.gated],
        charts=charts,
        chart_specs={c.key: Markup(mask_secrets(spec_for_script(c.spec))) for c in charts},
        plotly_js=Markup(plotly.offline.get_plotlyjs()) if charts else "",
        matched=matched_text(result.window),
    )


def _masked(value: object) -> object:
    """Jinja's finalize: mask every printed string except ``Markup`` built here (as the report does)."""
    return value if isinstance(value, Markup) or not isinstance(value, str) else mask_secrets(value)


def _table_row(comparison: Comparison) -> dict[str, str]:
    bounds = f" ({percent(comparison.low)}..{percent(comparison.high)})" if comparison.ratio is not None else ""
    return {
        "key": label(comparison),
        "change": comparison.change,
        "status": comparison.status,
        "baseline": "-" if comparison.baseline_value is None else f"{comparison.baseline_value:.4g}",
        "current": "-" if comparison.current_value is None else f"{comparison.current_value:.4g}",
        "ratio": percent(comparison.ratio) + bounds,
        "runs": f"{comparison.n_baseline} / {comparison.n_current}",
        "reason": comparison.reason,
    }
