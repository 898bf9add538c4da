"""Render ``index.html``: one self-contained file (Jinja2 template, plots embedded as base64 PNGs).

Every value passes through ``mask_secrets`` (Jinja ``finalize``) so no API key reaches the page.
"""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from quotaquake.report.masking import mask_secrets
from quotaquake.report.plots import Plot
from quotaquake.runfolder.models import FaultWindow, MonthlySeed, RunInfo
from quotaquake.verify.verdict import Outcome, jsonable

MAX_EVIDENCE_CHARS = 30_000


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("quotaquake.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        finalize=lambda value: mask_secrets(value) if isinstance(value, str) else value,
    )


def render_html(
    outcome: Outcome,
    info: RunInfo,
    faults: list[FaultWindow],
    plots: list[Plot],
    seeds: list[MonthlySeed] | None = None,
) -> str:
    verdicts = [
        {
            "check": v.check,
            "status": v.status,
            "summary": v.summary,
            "evidence_json": json.dumps(jsonable(v.evidence), indent=1)[:MAX_EVIDENCE_CHARS],
        }
        for v in outcome.verdicts
    ]
    consumers = _consumer_rows(outcome)
    columns = list(consumers[0]) if consumers else []
    return (
        _environment()
        .get_template("index.html.j2")
        .render(
            outcome=outcome,
            info=info,
            verdicts=verdicts,
            plots=plots,
            consumers=consumers,
            consumer_columns=columns,
            metadata=_metadata(info, faults, seeds or []),
        )
    )


def _consumer_rows(outcome: Outcome) -> list[dict[str, object]]:
    try:
        evidence = outcome.verdict("quota-accuracy").evidence
    except KeyError:
        return []
    rows = evidence.get("consumers", []) if isinstance(evidence, dict) else []
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _metadata(info: RunInfo, faults: list[FaultWindow], seeds: list[MonthlySeed]) -> list[tuple[str, object]]:
    fields: list[tuple[str, object]] = [
        ("run id", info.run_id),
        ("scenario", info.scenario),
        ("started", info.started_at.isoformat()),
        ("ended", info.ended_at.isoformat() if info.ended_at else "-"),
        ("duration (s)", info.duration_s),
        ("target rate (req/s)", info.target_rate),
        ("provider", info.provider),
        ("replicas", info.replicas),
        ("quota model", info.model),
        ("defect", info.defect or "none"),
        ("locust processes", info.locust_processes),
        ("monthly seeds", ", ".join(f"{s.consumer}: {s.used:g}" for s in seeds) or "-"),
        ("faults", "; ".join(f"{w.name} ({w.kind} of {w.service}) [{w.start:.3f}, {w.end}]" for w in faults) or "-"),
        ("command", " ".join(info.command) or "-"),
        ("notes", "; ".join(info.notes) or "-"),
        (
            "tiers",
            ", ".join(
                f"{name}: {lim.per_minute}/min, {lim.per_month}/month" for name, lim in info.policy.tiers.items()
            ),
        ),
    ]
    return fields


def write_html(path: Path, html: str) -> Path:
    path.write_text(html, encoding="utf-8")
    return path
