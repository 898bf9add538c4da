"""``quotaquake gate`` and ``quotaquake baseline``: load the store, judge, write JUnit, the step summary, the
trend page and ``gate.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from quotaquake.errors import UsageError
from quotaquake.gate.baseline import load, merge, run_ids
from quotaquake.gate.decide import GatePolicy, GateResult, judge, label, percent
from quotaquake.gate.outputs import GateFolder, append_step_summary, markdown, outcome, result_json, write_text
from quotaquake.verify.thresholds import GateSection, load_thresholds

STYLE = {"pass": "green", "fail": "bold red", "unknown": "yellow"}
CHANGE_STYLE = {"regressed": "bold red", "unknown": "yellow", "improved": "green", "unchanged": "green"}


@dataclass(frozen=True)
class GateRequest:
    """The options of ``quotaquake gate``: ``current_runs``/``baseline_runs`` override the file's ``gate:``."""

    store: Path
    thresholds: Path | None = None
    out: Path | None = None
    step_summary: Path | None = None
    current_runs: int | None = None
    baseline_runs: int | None = None


def policy_from(section: GateSection, request: GateRequest) -> GatePolicy:
    """The gate's policy: the thresholds file's ``gate:`` section, with the command line's counts."""
    return GatePolicy.from_texts(
        section.keys,
        current_runs=request.current_runs or section.current_runs,
        baseline_runs=request.baseline_runs or section.baseline_runs,
        alpha=section.alpha,
        min_effect=section.min_effect,
        min_effect_by_metric=dict(section.min_effect_by_metric),
        fdr=section.fdr,
    )


def run_gate(request: GateRequest, console: Console) -> GateResult:
    """Judge the store's newest run(s), write the outputs, print the result; returns it."""
    from quotaquake.report.junit import junit_xml
    from quotaquake.report.trend import render_trend

    if request.current_runs is not None and request.current_runs < 1:
        raise UsageError(f"--last: {request.current_runs} must be at least 1")
    if request.baseline_runs is not None and request.baseline_runs < 1:
        raise UsageError(f"--window: {request.baseline_runs} must be at least 1")
    if not request.store.is_dir():
        raise UsageError(f"--baseline: {request.store} is not a folder (fill one: `quotaquake verify --baseline`)")
    policy = policy_from(load_thresholds(request.thresholds).gate, request)
    store = load(request.store)
    if not run_ids(store):
        raise UsageError(f"--baseline: {request.store} holds no run (append runs with `quotaquake verify --baseline`)")
    result = judge(store, policy)
    folder = GateFolder(request.out or Path("reports") / "gate" / result.window.current[-1])
    write_text(folder.trend_file, render_trend(store, result))
    text = markdown(result, trend_link=str(folder.trend_file))
    write_text(folder.markdown_file, text)
    write_text(folder.junit_file, junit_xml(outcome(result, request.store), suite="quotaquake-gate"))
    write_text(folder.result_file, result_json(result))
    if request.step_summary is not None:
        append_step_summary(request.step_summary, text)
    print_result(result, console)
    console.print(f"gate outputs: {folder.path} (trend.html, summary.md, junit.xml, gate.json)")
    return result


def print_result(result: GateResult, console: Console) -> None:
    table = Table(title=f"gate: {len(result.window.baseline)} baseline run(s), {len(result.window.current)} current")
    for column in ("key", "change", "baseline", "current", "change (bounds)", "why"):
        table.add_column(column, overflow="fold")
    for c in result.gated:
        bounds = f"{percent(c.ratio)} ({percent(c.low)}..{percent(c.high)})" if c.ratio is not None else "n/a"
        table.add_row(
            label(c),
            f"[{CHANGE_STYLE.get(c.change, '')}]{c.change}[/]",
            "-" if c.baseline_value is None else f"{c.baseline_value:.4g}",
            "-" if c.current_value is None else f"{c.current_value:.4g}",
            bounds,
            c.reason,
        )
    console.print(table)
    style = STYLE.get(result.status, "")
    console.print(f"[{style}]gate {result.status.upper()}[/]: {result.headline}", soft_wrap=True)


def merge_stores(first: Path, second: Path, into: Path | None, console: Console) -> list[str]:
    """``quotaquake baseline merge``: the union of two stores; prints what was copied."""
    for path in (first, second):
        if not path.is_dir():
            raise UsageError(f"{path}: not a baseline store folder")
    added = merge(first, second, into)
    console.print(f"{into or first}: {len(added)} run(s) copied in, {len(run_ids(load(into or first)))} in all")
    return added
