"""Render ``index.html``: one self-contained file (Jinja2 template, plotly.js and chart data embedded; no
request leaves the page), readable on a laptop screen and printable.

Masking: every value the template prints passes through ``mask_secrets`` (Jinja ``finalize``); the only
values that bypass it are ``Markup`` built here: the chart specs (masked before they are marked safe) and
plotly.js itself (library code, no data).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import plotly.offline
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from quotaquake.policy import ANONYMOUS_TIER, Limits, Policy, refill_per_second
from quotaquake.report.artifacts import Artifact
from quotaquake.report.charts import Chart, fault_label, spec_for_script
from quotaquake.report.endpoints import EndpointRow
from quotaquake.report.evidence import EvidenceView, evidence_view, humanize, number
from quotaquake.report.masking import mask_secrets
from quotaquake.runfolder.models import FaultWindow, MonthlySeed, RunInfo
from quotaquake.verify.verdict import Outcome, jsonable

MAX_EVIDENCE_CHARS = 200_000
STATUS_ORDER: tuple[str, ...] = ("pass", "fail", "unknown", "not-applicable")
UNLIMITED = "unlimited"


@dataclass(frozen=True)
class VerdictView:
    check: str
    status: str
    summary: str
    evidence: EvidenceView
    raw_json: str

    @property
    def anchor(self) -> str:
        return "verdict-" + "".join(c if c.isalnum() else "-" for c in self.check)


@dataclass(frozen=True)
class Charts:
    """The page's charts: traffic and latency; admitted vs allowed per tier and for the worst consumers."""

    time_series: list[Chart] = field(default_factory=list)
    tiers: list[Chart] = field(default_factory=list)
    consumers: list[Chart] = field(default_factory=list)
    t0_ms: int = 0  # epoch ms of the first request: origin of the relative time axis
    allowance_note: str = ""  # how to read the admitted-vs-allowed charts

    def all(self) -> list[Chart]:
        return [*self.tiers, *self.consumers, *self.time_series]


def render_html(
    outcome: Outcome,
    info: RunInfo,
    faults: list[FaultWindow],
    charts: Charts,
    endpoints: list[EndpointRow],
    artifacts: list[Artifact],
    seeds: list[MonthlySeed] | None = None,
) -> str:
    verdicts = [
        VerdictView(
            v.check,
            v.status,
            v.summary,
            evidence_view(jsonable(v.evidence)),
            json.dumps(jsonable(v.evidence), indent=1)[:MAX_EVIDENCE_CHARS],
        )
        for v in outcome.verdicts
    ]
    counts = {s: sum(v.status == s for v in outcome.verdicts) for s in STATUS_ORDER}
    return (
        _environment()
        .get_template("index.html.j2")
        .render(
            outcome=outcome,
            info=info,
            verdicts=verdicts,
            counts={s: n for s, n in counts.items() if n},
            charts=charts,
            chart_specs={c.key: Markup(mask_secrets(spec_for_script(c.spec))) for c in charts.all()},
            plotly_js=Markup(plotly.offline.get_plotlyjs()) if charts.all() else "",
            endpoints=endpoints,
            artifacts=artifacts,
            faults=[(w, fault_label(w)) for w in faults],
            policy=policy_rows(info.policy),
            metadata=_metadata(info, seeds or []),
        )
    )


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("quotaquake.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        finalize=_masked,
    )
    environment.filters["humanize"] = humanize
    environment.filters["number"] = _number_or_dash
    environment.filters["utc"] = _utc
    return environment


def _masked(value: object) -> object:
    """Jinja's finalize: mask every printed string except ``Markup`` this module built."""
    if isinstance(value, Markup):
        return value
    return mask_secrets(value) if isinstance(value, str) else value


def _number_or_dash(value: float | None) -> str:
    return "-" if value is None else number(value)


def _utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def policy_rows(policy: Policy) -> list[dict[str, str]]:
    """The quota policy per tier (anonymous last): limits, token bucket shape; "unlimited" for ``None``."""
    rows = []
    tiers: list[tuple[str, Limits]] = [*policy.tiers.items(), (ANONYMOUS_TIER, policy.anonymous)]
    for name, limits in tiers:
        capacity, refill = policy.capacity(limits), refill_per_second(limits)
        rows.append(
            {
                "tier": name + (" (per client IP)" if name == ANONYMOUS_TIER else ""),
                "per minute": _limit(limits.per_minute),
                "bucket capacity C": _limit(capacity),
                "refill per second": _limit(refill),
                "per month": _limit(limits.per_month),
            }
        )
    return rows


def _limit(value: float | None) -> str:
    return UNLIMITED if value is None else number(value)


def _metadata(info: RunInfo, seeds: list[MonthlySeed]) -> list[tuple[str, object]]:
    return [
        ("run id", info.run_id),
        ("scenario", info.scenario),
        ("started (UTC)", info.started_at.isoformat()),
        ("ended (UTC)", info.ended_at.isoformat() if info.ended_at else "-"),
        ("duration (s)", _number_or_dash(info.duration_s)),
        ("target rate (req/s)", _number_or_dash(info.target_rate)),
        ("provider", info.provider),
        ("replicas", info.replicas),
        ("quota model", info.model),
        ("initial quota state", info.initial_state.value),
        ("defect", info.defect or "none"),
        ("locust processes", info.locust_processes),
        ("load exit code", "-" if info.load_exit_code is None else info.load_exit_code),
        ("monthly seeds", ", ".join(f"{s.consumer}: {number(s.used)}" for s in seeds) or "-"),
        ("command", " ".join(info.command) or "-"),
        ("notes", "; ".join(info.notes) or "-"),
    ]


def write_html(path: Path, html: str) -> Path:
    path.write_text(html, encoding="utf-8")
    return path
