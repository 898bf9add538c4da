"""What ``quotaquake gate`` writes: the gate folder's files (``GateFolder``), the Markdown for
``$GITHUB_STEP_SUMMARY`` (at most 1 MiB), the verdicts for JUnit, and ``gate.json``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from quotaquake.gate.compare import MARKDOWN_HEADER, Comparison, fit_markdown, markdown_row
from quotaquake.gate.decide import GateResult, label, matched_text, percent
from quotaquake.verify.verdict import Outcome, Status, Verdict, jsonable

ICON: dict[str, str] = {"pass": "✅", "fail": "❌", "unknown": "❔"}
WATCHED_SHOWN = 15


@dataclass(frozen=True)
class GateFolder:
    """The gate's output folder: one home for its file names."""

    path: Path

    @property
    def result_file(self) -> Path:
        return self.path / "gate.json"

    @property
    def junit_file(self) -> Path:
        return self.path / "junit.xml"

    @property
    def markdown_file(self) -> Path:
        return self.path / "summary.md"

    @property
    def trend_file(self) -> Path:
        return self.path / "trend.html"


# --- Markdown ------------------------------------------------------------------------------------------


def markdown(result: GateResult, trend_link: str | None = None) -> str:
    """The step summary: verdict and why, the window, the gated keys, the current runs' failing or open
    verdicts, the largest changes among the watched keys, the machine; at most 1 MiB (rows that do not fit
    are counted instead)."""
    head = [
        f"### {ICON.get(result.status, '❔')} quotaquake performance gate: {result.status.upper()}",
        "",
        result.headline,
        "",
        _window_line(result),
        "",
        "#### Gated keys",
        "",
        MARKDOWN_HEADER,
    ]
    rows = [*(markdown_row(c) for c in result.gated), "", *_rest(result, trend_link)]
    return fit_markdown("\n".join(head) + "\n", rows)


def _window_line(result: GateResult) -> str:
    window = result.window
    matched = matched_text(window)
    text = (
        f"Current run(s) {', '.join(f'`{r}`' for r in window.current)} against {len(window.baseline)} baseline "
        f"run(s) with {matched}."
    )
    if window.other_identity or window.aborted:
        text += f" Left out: {len(window.other_identity)} run(s) of another identity, {len(window.aborted)} aborted."
    return text


def _rest(result: GateResult, trend_link: str | None) -> Iterator[str]:
    absolute = [v for v in result.absolute if v.status in ("fail", "unknown")]
    passed = sum(v.status == "pass" for v in result.absolute)
    yield "#### The current run(s)' own verdicts"
    yield ""
    yield f"{passed} pass; {len(absolute)} fail or unknown" + (":" if absolute else ".")
    if absolute:
        yield ""
        yield "| | run | check | status |"
        yield "|---|---|---|---|"
        yield from (f"| {ICON.get(v.status, '❔')} | `{v.run_id}` | {v.check} | {v.status} |" for v in absolute)
    yield ""
    yield from _watched(result.watched, result.policy.alpha)
    if result.environment:
        yield "#### The machine (not judged: it tells a busier runner from a slower system)"
        yield ""
        yield MARKDOWN_HEADER
        yield from (markdown_row(c) for c in result.environment)
        yield ""
    if trend_link:
        yield f"Trend page: {trend_link}"


def _watched(watched: list[Comparison], alpha: float) -> Iterator[str]:
    counts = {change: sum(c.change == change for c in watched) for change in ("regressed", "improved", "unchanged")}
    unknown = len(watched) - sum(counts.values())
    yield "#### Watched keys (compared, not gated)"
    yield ""
    yield (
        f"{len(watched)} keys: {counts['regressed']} regressed, {counts['improved']} improved, "
        f"{counts['unchanged']} unchanged, {unknown} undecided, each by its own test: about {alpha:.0%} of the "
        "unchanged would look regressed or improved by chance. Add a key to `gate.keys` to gate it."
    )
    moved = sorted(
        (c for c in watched if c.change in ("regressed", "improved") and c.ratio is not None),
        key=lambda c: -abs((c.ratio or 1.0) - 1.0),
    )[:WATCHED_SHOWN]
    if moved:
        yield ""
        yield MARKDOWN_HEADER
        yield from (markdown_row(c) for c in moved)
    yield ""


# --- JUnit and JSON ------------------------------------------------------------------------------------


def outcome(result: GateResult, store: Path) -> Outcome:
    """The gate as verdicts (for ``report.junit``): one per gated key, one per verdict of a current run, and
    one for the window when it is too small to decide."""
    verdicts = [
        Verdict(f"gate {label(c)}", c.status, f"{c.change}: {c.reason}", _comparison_evidence(c)) for c in result.gated
    ]
    verdicts += [
        Verdict(f"run {v.run_id}: {v.check}", _status(v.status), f"the run's own verdict: {v.status}")
        for v in result.absolute
    ]
    if result.status == "unknown" and "too few" in result.headline:
        verdicts.append(Verdict("gate window", "unknown", result.headline))
    return Outcome(run_dir=store, verdicts=tuple(verdicts))


def _status(text: str) -> Status:
    return text if text in ("pass", "fail", "unknown", "not-applicable") else "unknown"  # type: ignore[return-value]


def _comparison_evidence(comparison: Comparison) -> dict[str, object]:
    evidence = asdict(comparison)
    evidence["tags"] = dict(comparison.tags)
    evidence["change_percent"] = percent(comparison.ratio)
    return evidence


def result_json(result: GateResult) -> str:
    """``gate.json``: the whole result (every comparison, watched ones included)."""
    data = {
        "status": result.status,
        "exit_code": result.exit_code,
        "headline": result.headline,
        "window": asdict(result.window),
        "policy": asdict(result.policy),
        "gated": [_comparison_evidence(c) for c in result.gated],
        "environment": [_comparison_evidence(c) for c in result.environment],
        "absolute": [asdict(v) for v in result.absolute],
        "watched": [_comparison_evidence(c) for c in result.watched],
    }
    return json.dumps(jsonable(data), indent=1)


def write_text(path: Path, text: str) -> None:
    """Write atomically (temp file beside it, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def append_step_summary(path: Path, text: str) -> None:
    """Append ``text`` to a step-summary file (``$GITHUB_STEP_SUMMARY`` is shared by every step of a job)."""
    with path.open("a", encoding="utf-8") as out:
        out.write(text)
