"""The end-of-run summary on the terminal, like k6's end-of-test summary: ``quotaquake run`` and ``quotaquake
verify`` print it before the verdicts. For display only: it decides nothing (the verdicts do; the judged
summary with bounds is ``summary.parquet``, ``verify.summary``, which leaves the warm-up out where the
checks do: this one shows every request, as k6's end-of-test summary does).

From the run folder as verification reads it (``verify.data.rundata``: the history's send times, latency,
status and tier; ``run.json``; ``engine.json``):

* requests: rows of the history; the *sent rate* is requests / the span of the sends (first to last
  send, s), as the report's endpoint table computes it;
* latency, ms, nearest rank (``report.grouped``: a shown percentile is a latency some request really had),
  over responses (status != 0): p50/p90/p95/p99/max from the actual send (service time) and from the
  intended send (``+ sent - intended``: coordinated omission corrected);
* answers by class (``report.series.STATUS_CLASSES``) and per tier: requests, 2xx, 429 (over quota) with
  its share, 401 (unknown key), errors;
* errors (5xx and no response, as the report counts them) by status; other answers (other 4xx, 1xx/3xx)
  by status when there are any;
* generator lag (sent - intended, ms: p50/p99/max) and what the generator says of its schedule
  (``engine.json``: scheduled vs sent; k6's dropped iterations);
* data: the run folder, its files and size, the history's rows and parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from quotaquake.report.grouped import grouped_percentiles
from quotaquake.report.series import ERROR_CLASSES, STATUS_CLASSES, status_classes
from quotaquake.runfolder import RunFolder
from quotaquake.verify.data.rundata import RunData, read_verify_history

SUMMARY_COLUMNS: tuple[str, ...] = ("intended_ns", "sent_ns", "latency_ms", "status", "tier")
QUANTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 100.0)  # 100: the maximum (nearest rank n)
LAG_QUANTILES: tuple[float, ...] = (50.0, 99.0, 100.0)
NO_RESPONSE = "no response"
EXPECTED_CLASSES = frozenset({"2xx", "429", "401"})
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TierLine:
    """One tier's answers: counts of requests and of each kind of answer."""

    tier: str
    requests: int
    ok: int  # 2xx
    over_quota: int  # 429
    unknown_key: int  # 401
    errors: int  # 5xx + no response

    @property
    def over_quota_share(self) -> float:
        return self.over_quota / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ConsoleSummary:
    """What the summary shows (units in the names; ``None``: nothing to show, e.g. no response at all)."""

    run_id: str
    scenario: str
    target_rate: float | None  # req/s asked for
    duration_s: float | None  # run time asked for
    requests: int
    span_s: float  # first to last send
    sent_rate: float | None  # req/s over ``span_s`` (None for fewer than 2 requests)
    latency_ms: dict[str, float | None]  # "p50" .. "p99", "max": from the actual send
    latency_intended_ms: dict[str, float | None]  # the same from the intended send
    answers: dict[str, int]  # per class of STATUS_CLASSES that occurred
    tiers: list[TierLine]
    errors: int
    errors_by_status: dict[int, int]  # 5xx and 0 (no response)
    others_by_status: dict[int, int]  # other 4xx, 1xx, 3xx
    lag_ms: dict[str, float | None]  # "p50", "p99", "max"
    scheduled: int | None  # the generator's own count (engine.json), None when it did not report one
    sent: int | None
    dropped: int | None  # k6's dropped iterations
    folder: Path
    folder_files: int
    folder_bytes: int
    history_parts: int


def load_summary_data(folder: RunFolder) -> RunData:
    """The run as verification loads it (``load_run``), only the history columns the summary shows."""
    engine = folder.read_engine()
    return RunData(
        info=folder.read_info(),
        history=read_verify_history(folder, SUMMARY_COLUMNS),
        engine=engine,
        monthly_seeds=[] if engine is None else engine.monthly_seeds,
    )


def summarize(run: RunData, folder: RunFolder) -> ConsoleSummary:
    """The summary of ``run`` (recorded in ``folder``)."""
    history = run.history
    status = np.asarray(history["status"], dtype=np.int64)
    sent = np.asarray(history["sent_ns"], dtype=np.int64)
    lag_ms = (sent - np.asarray(history["intended_ns"], dtype=np.int64)) / 1e6
    actual = np.where(status != 0, np.asarray(history["latency_ms"], dtype=np.float64), np.nan)
    span_s = (int(sent.max()) - int(sent.min())) / 1e9 if len(sent) else 0.0
    classes = status_classes(status)
    generator = run.engine.generator if run.engine is not None else None
    files = [p for p in folder.path.rglob("*") if p.is_file()]
    errors_by_status = _by_status(status, np.isin(classes, _class_indices(ERROR_CLASSES)))
    return ConsoleSummary(
        run_id=run.info.run_id,
        scenario=Path(run.info.scenario).name,
        target_rate=run.info.target_rate,
        duration_s=run.info.duration_s,
        requests=len(status),
        span_s=span_s,
        sent_rate=len(status) / span_s if len(status) > 1 and span_s > 0 else None,
        latency_ms=_percentiles(actual, QUANTILES),
        latency_intended_ms=_percentiles(actual + lag_ms, QUANTILES),
        answers=_answers(classes),
        tiers=tier_lines(
            np.asarray(history["tier"].cat.codes, dtype=np.int64),
            [str(t) for t in history["tier"].cat.categories],
            classes,
        ),
        errors=sum(errors_by_status.values()),
        errors_by_status=errors_by_status,
        others_by_status=_by_status(status, ~np.isin(classes, _class_indices(ERROR_CLASSES | EXPECTED_CLASSES))),
        lag_ms=_percentiles(lag_ms, LAG_QUANTILES),
        scheduled=generator.scheduled if generator is not None and generator.processes else None,
        sent=generator.sent if generator is not None and generator.processes else None,
        dropped=run.engine.dropped_iterations if run.engine is not None else None,
        folder=folder.path,
        folder_files=len(files),
        folder_bytes=sum(p.stat().st_size for p in files),
        history_parts=len(folder.history_parts()),
    )


def _answers(classes: npt.NDArray[np.int8]) -> dict[str, int]:
    """Rows of each class of ``STATUS_CLASSES`` that occurred, in that order."""
    counts = np.bincount(classes.astype(np.int64), minlength=len(STATUS_CLASSES))
    return {name: int(counts[i]) for i, name in enumerate(STATUS_CLASSES) if counts[i]}


def tier_lines(codes: npt.NDArray[np.int64], names: list[str], classes: npt.NDArray[np.int8]) -> list[TierLine]:
    """Counts per tier (``codes`` index ``names``; most requests first); rows without a tier (-1) left out."""
    errors = np.isin(classes, _class_indices(ERROR_CLASSES))
    lines = []
    for code, name in enumerate(names):
        mine = codes == code
        if not np.any(mine):
            continue
        lines.append(
            TierLine(
                tier=name,
                requests=int(np.count_nonzero(mine)),
                ok=int(np.count_nonzero(mine & (classes == STATUS_CLASSES.index("2xx")))),
                over_quota=int(np.count_nonzero(mine & (classes == STATUS_CLASSES.index("429")))),
                unknown_key=int(np.count_nonzero(mine & (classes == STATUS_CLASSES.index("401")))),
                errors=int(np.count_nonzero(mine & errors)),
            )
        )
    return sorted(lines, key=lambda line: (-line.requests, line.tier))


def _class_indices(names: frozenset[str]) -> list[int]:
    return [i for i, name in enumerate(STATUS_CLASSES) if name in names]


def _by_status(status: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> dict[int, int]:
    """Counts of each status among the rows of ``mask``, most frequent first."""
    values, counts = np.unique(status[mask], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {int(values[i]): int(counts[i]) for i in order}


def _percentiles(values: F64, quantiles: tuple[float, ...]) -> dict[str, float | None]:
    """Nearest-rank percentiles of the non-NaN ``values`` (``max`` for 100), ``None`` when there are none."""
    found = grouped_percentiles(np.zeros(len(values), dtype=np.int64), values, 1, quantiles)
    out: dict[str, float | None] = {}
    for q in quantiles:
        value = float(found[f"p{q:g}"][0])
        out["max" if q == 100.0 else f"p{q:g}"] = None if np.isnan(value) else value
    return out


# -- rendering ---------------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    """A latency for the terminal: 3 significant digits at most, in ms (``0.42ms``, ``12.3ms``, ``250ms``)."""
    if value is None:
        return "-"
    if abs(value) < 10:
        return f"{value:.2f}ms"
    if abs(value) < 100:
        return f"{value:.1f}ms"
    return f"{value:,.0f}ms"


def size(n_bytes: int) -> str:
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:.1f} {unit}"
    return f"{n_bytes} B"


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def status_label(status: int) -> str:
    return NO_RESPONSE if status == 0 else str(status)


def _spread(values: dict[str, float | None]) -> str:
    return "  ".join(f"{name}={ms(value)}" for name, value in values.items())


def summary_lines(summary: ConsoleSummary) -> list[tuple[str, str]]:
    """The summary as (label, text) lines, in the order they are printed."""
    asked = []
    if summary.target_rate is not None:
        asked.append(f"{summary.target_rate:g} req/s")
    if summary.duration_s is not None:
        asked.append(f"for {summary.duration_s:g} s")
    rate = f"{summary.sent_rate:,.1f}/s sent over {summary.span_s:,.1f} s" if summary.sent_rate is not None else ""
    answers = " · ".join(f"{name} {count:,}" for name, count in summary.answers.items())
    errors = f"{summary.errors:,} ({share(summary.errors, summary.requests)})"
    if summary.errors_by_status:
        errors += ": " + ", ".join(f"{status_label(s)} ×{n:,}" for s, n in summary.errors_by_status.items())
    lines = [
        ("run", f"{summary.run_id} · {summary.scenario}" + (f" · target {' '.join(asked)}" if asked else "")),
        ("requests", f"{summary.requests:,}   {rate}".rstrip()),
        ("latency", _spread(summary.latency_ms) + "   (from the actual send)"),
        ("latency, intended", _spread(summary.latency_intended_ms) + "   (from the intended send)"),
        ("answers", answers or "none"),
        ("errors", errors),
    ]
    if summary.others_by_status:
        others = ", ".join(f"{status_label(s)} ×{n:,}" for s, n in summary.others_by_status.items())
        lines.append(("other answers", others))
    lines.append(("generator lag", _spread(summary.lag_ms) + _schedule(summary)))
    data = f"{summary.folder} ({summary.folder_files} files, {size(summary.folder_bytes)}; "
    data += f"history: {summary.requests:,} rows in {summary.history_parts} part(s))"
    lines.append(("data", data))
    return lines


def _schedule(summary: ConsoleSummary) -> str:
    parts = []
    if summary.scheduled is not None and summary.sent is not None:
        parts.append(f"{summary.sent:,} of {summary.scheduled:,} scheduled sent")
    if summary.dropped:
        parts.append(f"{summary.dropped:,} dropped iterations (k6)")
    return f"   ({'; '.join(parts)})" if parts else ""


def render_summary(summary: ConsoleSummary, console: Console) -> None:
    """Print the summary: label .....: value lines, then the per-tier table."""
    width = max(len(label) for label, _ in summary_lines(summary)) + 4
    console.print(Text("summary", style="bold"))
    for label, text in summary_lines(summary):
        console.print(Text.assemble(("  " + f"{label} ".ljust(width, "."), "dim"), ": ", text), soft_wrap=True)
    if summary.tiers:
        console.print(tier_table(summary.tiers))


def tier_table(tiers: list[TierLine]) -> Table:
    table = Table(title="answers per tier", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("tier", "requests", "2xx", "429", "429 share", "401", "errors"):
        table.add_column(column, justify="left" if column == "tier" else "right")
    for line in tiers:
        table.add_row(
            line.tier,
            f"{line.requests:,}",
            f"{line.ok:,}",
            f"{line.over_quota:,}",
            share(line.over_quota, line.requests),
            f"{line.unknown_key:,}",
            f"{line.errors:,}",
        )
    return table


def print_summary(folder: RunFolder, console: Console) -> ConsoleSummary:
    """Load ``folder``, summarize it and print the summary; returns it."""
    summary = summarize(load_summary_data(folder), folder)
    render_summary(summary, console)
    return summary
