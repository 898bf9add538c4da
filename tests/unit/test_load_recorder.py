"""History recorder: rows from request events, Parquet parts of the contract schema, periodic flush."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gevent
import pyarrow.parquet as pq
import pytest
from geventhttpclient.header import Headers

from quotaquake.load.recorder import CONTEXT_KEY, HistoryRecorder, RequestContext, float_column, header_value
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import SCHEMA, read_history


class FakeHeaders(dict[str, Any]):
    """Lower-case lookup like geventhttpclient's Headers."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


class FakeResponse:
    def __init__(self, status: int, headers: dict[str, Any] | None = None) -> None:
        self.status_code = status
        self.headers = FakeHeaders({k.lower(): v for k, v in (headers or {}).items()}) if status else None


def context(n: int, consumer: str = "free-1", tier: str = "free") -> dict[str, Any]:
    return {CONTEXT_KEY: RequestContext(1_000 + n, 1_500 + n, consumer, tier, "/identify", 1.0)}


def record(
    recorder: HistoryRecorder,
    n: int,
    response: FakeResponse,
    exception: Exception | None = None,
    ctx: dict[str, Any] | None = None,
) -> None:
    recorder.on_request(
        request_type="POST",
        name="/identify",
        response_time=2.5,
        response_length=10,
        response=response,
        context=context(n) if ctx is None else ctx,
        exception=exception,
        start_time=1.0,
        url="http://x",
    )


def test_rows_carry_context_status_and_rate_limit_headers(tmp_path: Path) -> None:
    recorder = HistoryRecorder(folder=lambda: RunFolder(tmp_path), worker="w1")
    headers = {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "3",
        "Retry-After": "1",
        "X-Quotaquake-Replica": "gateway-2",
        "x-envoy-upstream-service-time": "4",
    }
    record(recorder, 0, FakeResponse(429, headers))
    record(
        recorder,
        1,
        FakeResponse(
            200,
            {
                "X-RateLimit-Limit-Minute": "1000",
                "X-RateLimit-Remaining-Minute": "7",
                "x-quotaquake-degraded": "redis-unavailable",
            },
        ),
    )
    record(recorder, 2, FakeResponse(0), exception=ConnectionRefusedError("connection refused"))
    assert recorder.flush() == "part-w1-000001.parquet"
    assert pq.read_schema(RunFolder(tmp_path).history_dir / "part-w1-000001.parquet").equals(SCHEMA)
    rows = read_history(RunFolder(tmp_path).history_dir)
    assert rows["intended_ns"].tolist() == [1000, 1001, 1002]
    assert rows["sent_ns"].tolist() == [1500, 1501, 1502]
    assert rows["status"].tolist() == [429, 200, 0]
    assert rows["rl_limit"].tolist()[:2] == [100.0, 1000.0]  # Kong's -Minute header as fallback
    assert rows["rl_remaining"].tolist()[:2] == [0.0, 7.0]
    assert rows["retry_after"].iloc[0] == 1.0 and pd_isna(rows["retry_after"].iloc[1])
    assert rows["replica"].iloc[0] == "gateway-2"
    assert rows["degraded"].iloc[1] == "redis-unavailable"
    assert rows["upstream_ms"].iloc[0] == 4.0
    assert rows["error"].iloc[2] == "connection refused"
    assert pd_isna(rows["error"].iloc[0])
    assert set(rows["worker"]) == {"w1"}
    assert rows["latency_ms"].tolist() == [2.5, 2.5, 2.5]


def test_kongs_header_set_is_recorded(tmp_path: Path) -> None:
    # Kong 3.9 sets these names (kong/plugins/rate-limiting/handler.lua:28-50) and X-Kong-Upstream-Latency
    recorder = HistoryRecorder(folder=lambda: RunFolder(tmp_path), worker="w1")
    kong = {
        "X-RateLimit-Limit-Minute": "100",
        "X-RateLimit-Remaining-Minute": "9",
        "X-RateLimit-Limit-Month": "50000",
        "X-RateLimit-Remaining-Month": "0",
        "RateLimit-Limit": "50000",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "2591985",
        "Retry-After": "2591985",
        "X-Kong-Upstream-Latency": "3",
    }
    record(recorder, 0, FakeResponse(429, kong))
    recorder.flush()
    row = read_history(RunFolder(tmp_path).history_dir).iloc[0]
    assert (row["rl_limit"], row["rl_remaining"]) == (100.0, 9.0)
    assert (row["rl_limit_month"], row["rl_remaining_month"]) == (50000.0, 0.0)
    assert (row["rl_window_limit"], row["rl_window_remaining"]) == (50000.0, 0.0)
    assert row["rl_reset"] == row["retry_after"] == 2591985.0  # a month, not a minute
    assert row["upstream_ms"] == 3.0


def pd_isna(value: object) -> bool:
    return value is None or value != value  # NaN or None


def test_requests_without_context_are_recorded_too(tmp_path: Path) -> None:
    recorder = HistoryRecorder(folder=lambda: RunFolder(tmp_path), worker="w1")
    record(recorder, 0, FakeResponse(200), ctx={})
    recorder.flush()
    row = read_history(RunFolder(tmp_path).history_dir).iloc[0]
    assert row["intended_ns"] == row["sent_ns"] == 1_000_000_000
    assert row["endpoint"] == "/identify"
    assert pd_isna(row["consumer"])


def test_unparsable_numeric_headers_become_null() -> None:
    column = float_column(["1.5", None, "Wed, 21 Oct 2015 07:28:00 GMT", "", "2"])
    assert column.to_pylist() == [1.5, None, None, None, 2.0]


def test_each_flush_writes_a_new_part_and_nothing_when_empty(tmp_path: Path) -> None:
    recorder = HistoryRecorder(folder=lambda: RunFolder(tmp_path / "run"), worker="w9")
    assert recorder.flush() is None
    for batch in range(3):
        for n in range(5):
            record(recorder, batch * 5 + n, FakeResponse(200))
        recorder.flush()
    parts = sorted((tmp_path / "run" / "history").iterdir())
    assert [p.name for p in parts] == [f"part-w9-00000{i}.parquet" for i in (1, 2, 3)]
    assert recorder.rows_written == 15 and recorder.pending == 0
    assert len(read_history(RunFolder(tmp_path / "run").history_dir)) == 15


def test_background_flusher_writes_within_a_second_and_close_writes_the_rest(tmp_path: Path) -> None:
    recorder = HistoryRecorder(folder=lambda: RunFolder(tmp_path), worker="w1")
    recorder.start(interval_s=0.2)
    record(recorder, 0, FakeResponse(200))
    deadline = time.monotonic() + 5
    while recorder.rows_written == 0 and time.monotonic() < deadline:
        gevent.sleep(0.02)
    assert recorder.rows_written == 1
    record(recorder, 1, FakeResponse(200))
    recorder.close()
    assert recorder.rows_written == 2
    assert len(read_history(RunFolder(tmp_path).history_dir)) == 2


def test_failed_write_counts_lost_rows(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    recorder = HistoryRecorder(folder=lambda: RunFolder(blocker), worker="w1")
    record(recorder, 0, FakeResponse(200))
    with pytest.raises(OSError):
        recorder.flush()


def test_header_lookup_on_geventhttpclient_headers() -> None:
    headers = Headers([("X-RateLimit-Limit", "100"), ("Retry-After", "3"), ("Retry-After", "4")])
    assert header_value(headers, ("x-ratelimit-limit",)) == "100"
    assert header_value(headers, ("retry-after",)) == "3"  # repeated field: the first line
    assert header_value(headers, ("x-ratelimit-limit-minute", "x-ratelimit-limit")) == "100"
    assert header_value(headers, ("x-quotaquake-degraded",)) is None
