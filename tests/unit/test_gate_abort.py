"""abortOnFail: the abort thresholds judged from the history parts written so far, at the stricter level of
repeated looks; only a proven violation stops the load (SIGTERM to the run's Locust master, found by its
command line), after ``delayAbortEval``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from quotaquake.gate.abort import Aborter, stop_locust
from quotaquake.gate.expressions import parse_thresholds
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import SCHEMA, write_part
from quotaquake.verify.live import LiveJudge

T0_NS = 1_767_225_600 * 1_000_000_000


def part(folder: RunFolder, seq: int, latencies: list[float], tier: str = "pro", status: int = 200) -> None:
    """One history part: requests 10 ms apart from ``seq`` seconds in, with ``latencies``."""
    n = len(latencies)
    sent = T0_NS + seq * 1_000_000_000 + np.arange(n, dtype=np.int64) * 10_000_000
    columns = {
        "intended_ns": sent,
        "sent_ns": sent,
        "latency_ms": np.asarray(latencies, dtype=np.float64),
        "consumer": [f"{tier}-1"] * n,
        "tier": [tier] * n,
        "endpoint": ["/identify"] * n,
        "status": np.full(n, status, dtype=np.int32),
    }
    arrays = [pa.array(columns[f.name], type=f.type) if f.name in columns else pa.nulls(n, f.type) for f in SCHEMA]
    write_part(folder.history_dir, f"part-w1-{seq:06d}.parquet", pa.Table.from_arrays(arrays, schema=SCHEMA))


def judge_of(folder: RunFolder, thresholds: dict[str, list[object]], looks: int = 30) -> LiveJudge:
    return LiveJudge(folder, parse_thresholds(thresholds), confidence=0.95, warmup_s=0.0, looks=looks)


def test_a_proven_violation_is_found_at_the_stricter_level(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    judge = judge_of(folder, {"http_req_duration{tier:pro}": [{"threshold": "p(95)<10", "abortOnFail": True}]})
    assert judge.look_confidence == pytest.approx(1 - 0.05 / 30)
    part(folder, 0, [1.0] * 9 + [50.0])
    assert judge.update() == 10
    assert judge.first_violation(5.0) is None  # one slow request of ten proves nothing about p95
    part(folder, 1, [50.0] * 100)
    part(folder, 2, [1.0] * 100, tier="free")  # another tier: not this threshold's rows
    assert judge.update() == 200 and judge.update() == 0  # parts are read once
    found = judge.first_violation(6.0)
    assert found is not None
    result, record = found
    assert result.status == "fail" and record.threshold == "http_req_duration{tier:pro}: p(95)<10"
    assert (
        record.n == 110
        and record.low == 50.0
        and record.after_s == 6.0
        and record.confidence == pytest.approx(1 - 0.05 / 30)
    )


def test_nothing_is_judged_before_delay_abort_eval(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    spec = {"threshold": "rate<0.01", "abortOnFail": True, "delayAbortEval": "10s"}
    judge = judge_of(folder, {"http_req_failed": [spec]})
    part(folder, 0, [1.0] * 200, status=503)
    judge.update()
    assert judge.first_violation(9.9) is None
    assert judge.first_violation(10.0) is not None


def test_a_count_can_only_be_proven_too_high_while_the_load_runs(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    judge = judge_of(
        folder,
        {
            "http_reqs": [
                {"threshold": "count<50", "abortOnFail": True},
                {"threshold": "count>500", "abortOnFail": True},
            ]
        },
    )
    part(folder, 0, [1.0] * 40)
    judge.update()
    assert judge.first_violation(1.0) is None  # 40 < 50 so far; "> 500" cannot be judged before the end
    part(folder, 1, [1.0] * 20)
    judge.update()
    found = judge.first_violation(2.0)
    assert found is not None and found[1].threshold == "http_reqs: count<50"


def test_a_look_stops_the_load_once(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    judge = judge_of(folder, {"http_req_duration": [{"threshold": "p(50)<10", "abortOnFail": True}]}, looks=1)
    stops: list[int] = []
    aborter = Aborter(judge, lambda: stops.append(1))
    part(folder, 0, [1.0] * 100)
    assert aborter.look() is None and not stops
    part(folder, 1, [100.0] * 400)
    record = aborter.look()
    assert record is not None and aborter.record == record and stops == [1]


def test_stop_locust_signals_the_child_whose_command_line_names_the_run_folder(tmp_path: Path) -> None:
    class Context:  # the two things stop_locust reads of a RunContext
        folder = RunFolder(tmp_path / "run")

    sleeper = "import time; time.sleep(60)"
    ours = subprocess.Popen([sys.executable, "-c", sleeper, "locust", "--qq-out", str(tmp_path / "run")])
    other = subprocess.Popen([sys.executable, "-c", sleeper, "locust", "--qq-out", str(tmp_path / "other")])
    try:
        stop_locust(Context())()  # type: ignore[arg-type]
        assert ours.wait(timeout=10) == -15
        time.sleep(0.2)
        assert other.poll() is None
    finally:
        for process in (ours, other):
            process.kill()
            process.wait()
