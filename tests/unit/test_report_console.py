"""The end-of-run summary (``quotaquake.report.console``) on a ten-row history with hand-computed numbers."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from rich.console import Console

from quotaquake.policy import load_policy
from quotaquake.report.console import TierLine, ms, print_summary, render_summary, summarize, summary_lines
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import EngineRecord, GeneratorProcess, GeneratorRecord
from tests.support.synthetic import frame_from_rows, run_data, write_history, write_run

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")

# t (s after the start), tier, status, latency (ms from the actual send), lag (sent - intended, ms)
ROWS = [
    (0, "free", 200, 1, 0),
    (1, "free", 429, 2, 0),
    (2, "free", 429, 3, 1),
    (3, "pro", 200, 4, 0),
    (4, "pro", 503, 5, 2),
    (5, "invalid", 401, 6, 0),
    (6, "pro", 0, 30, 0),  # no response: no latency
    (7, "pro", 404, 7, 0),
    (8, "pro", 200, 8, 0),
    (10, "anonymous", 200, 9, 10),
]


def history():  # type: ignore[no-untyped-def]
    return frame_from_rows(
        [
            {"t": t, "consumer": f"c-{tier}", "tier": tier, "status": status, "latency_ms": latency, "lag_ms": lag}
            for t, tier, status, latency, lag in ROWS
        ]
    )


def engine(scheduled: int, sent: int) -> EngineRecord:
    process = GeneratorProcess(worker="w", role="local", cpu_s=1.0, wall_s=10.0, scheduled=scheduled, sent=sent)
    generator = GeneratorRecord(max_in_flight=10, max_in_flight_per_user=1, peak_users=1, processes=[process])
    return EngineRecord(requests=10, failures=3, generator=generator)


def test_summary_numbers_are_the_hand_computed_ones(tmp_path: Path) -> None:
    frame = history()
    write_history(tmp_path, frame)
    run = dataclasses.replace(run_data(frame, POLICY, target_rate=1.0), engine=engine(12, 10))
    summary = summarize(run, RunFolder(tmp_path))

    assert summary.requests == 10
    assert summary.span_s == 10.0 and summary.sent_rate == 1.0
    # actual latency over the 9 responses 1..9 ms: nearest rank ceil(q/100 x 9)
    assert summary.latency_ms == {"p50": 5.0, "p90": 9.0, "p95": 9.0, "p99": 9.0, "max": 9.0}
    # + lag: 1, 2, 4, 4, 7, 6, 7, 8, 19 -> sorted 1 2 4 4 6 7 7 8 19
    assert summary.latency_intended_ms == {"p50": 6.0, "p90": 19.0, "p95": 19.0, "p99": 19.0, "max": 19.0}
    # lag over all ten rows: 0 x7, 1, 2, 10
    assert summary.lag_ms == {"p50": 0.0, "p99": 10.0, "max": 10.0}
    assert summary.answers == {"2xx": 4, "429": 2, "401": 1, "other 4xx": 1, "5xx": 1, "no response": 1}
    assert summary.errors == 2 and summary.errors_by_status == {0: 1, 503: 1}
    assert summary.others_by_status == {404: 1}
    assert summary.tiers == [
        TierLine("pro", requests=5, ok=2, over_quota=0, unknown_key=0, errors=2),
        TierLine("free", requests=3, ok=1, over_quota=2, unknown_key=0, errors=0),
        TierLine("anonymous", requests=1, ok=1, over_quota=0, unknown_key=0, errors=0),
        TierLine("invalid", requests=1, ok=0, over_quota=0, unknown_key=1, errors=0),
    ]
    assert (summary.scheduled, summary.sent, summary.dropped) == (12, 10, None)
    assert summary.history_parts == 1 and summary.folder_files == 1 and summary.folder_bytes > 0


def test_summary_lines_read_like_k6s(tmp_path: Path) -> None:
    frame = history()
    write_history(tmp_path, frame)
    run = dataclasses.replace(run_data(frame, POLICY, target_rate=1.0), engine=engine(12, 10))
    lines = dict(summary_lines(summarize(run, RunFolder(tmp_path))))
    assert lines["requests"] == "10   1.0/s sent over 10.0 s"
    assert lines["latency"].startswith("p50=5.00ms  p90=9.00ms  p95=9.00ms  p99=9.00ms  max=9.00ms")
    assert lines["errors"] == "2 (20.0%): no response ×1, 503 ×1"
    assert lines["other answers"] == "404 ×1"
    assert lines["answers"] == "2xx 4 · 429 2 · 401 1 · other 4xx 1 · 5xx 1 · no response 1"
    assert lines["generator lag"].endswith("(10 of 12 scheduled sent)")
    assert "history: 10 rows in 1 part(s)" in lines["data"]


def test_an_empty_history_still_summarizes(tmp_path: Path) -> None:
    run = run_data(frame_from_rows([]), POLICY)
    summary = summarize(run, RunFolder(tmp_path))
    assert summary.requests == 0 and summary.sent_rate is None and summary.tiers == []
    assert summary.latency_ms["p99"] is None and ms(None) == "-"
    out = io.StringIO()
    render_summary(summary, Console(file=out, width=120))
    assert "requests" in out.getvalue() and "answers" in out.getvalue()


def test_print_summary_reads_the_run_folder(tmp_path: Path) -> None:
    from tests.support.synthetic import SyntheticRun, mixed_consumers

    written = write_run(tmp_path / "run", SyntheticRun(policy=POLICY, consumers=mixed_consumers(POLICY, 1),
                                                       duration_s=5, seed=3))  # fmt: skip
    out = io.StringIO()
    summary = print_summary(RunFolder(tmp_path / "run"), Console(file=out, width=160))
    assert summary.requests == len(written)
    assert sum(line.requests for line in summary.tiers) == len(written)
    text = out.getvalue()
    assert "latency, intended" in text and "answers per tier" in text and "generator lag" in text
