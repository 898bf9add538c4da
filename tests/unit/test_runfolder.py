"""The run folder: one reader and writer per file; missing, truncated or foreign files are one-line errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quotaquake.errors import ConfigError
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder, append_probe_requests
from quotaquake.runfolder.history import SCHEMA, read_history, write_part
from quotaquake.runfolder.models import (
    EngineRecord,
    HostSample,
    MonthlySeed,
    ProbeRequest,
    PrometheusSnapshot,
    RunInfo,
)

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def info() -> RunInfo:
    return RunInfo(run_id="r", scenario="s.py", started_at=T0, policy=load_policy(REPO / "stack" / "policy.yaml"))


def test_every_file_round_trips(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run").create()
    folder.write_info(info())
    folder.write_engine(EngineRecord(started_at=T0, monthly_seeds=[MonthlySeed(consumer="free-1", used=10)]))
    folder.write_prometheus(PrometheusSnapshot(url="u", start=1, end=2, requests=3))
    folder.write_faults([])
    append_probe_requests(folder.probe_ledger, [ProbeRequest(t=1, probe="p", method="GET", path="/", status=None)])
    assert folder.read_info() == info()
    engine = folder.read_engine()
    assert engine is not None and engine.monthly_seeds == [MonthlySeed(consumer="free-1", used=10)]
    snapshot = folder.read_prometheus()
    assert snapshot is not None and snapshot.requests == 3
    assert folder.had_experiment() and folder.read_faults() == []
    assert [p.status for p in folder.read_probe_requests()] == [None]
    assert not list(folder.path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_absent_optional_files_read_as_nothing(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    assert folder.read_engine() is None and folder.read_prometheus() is None
    assert folder.read_faults() == [] and not folder.had_experiment() and folder.read_probe_requests() == []
    with pytest.raises(ConfigError, match=r"run\.json: file not found \(is this a run folder\?\)"):
        folder.read_info()


def test_truncated_and_foreign_json_name_the_file(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_info(info())
    folder.run_file.write_text(folder.run_file.read_text()[:40])
    with pytest.raises(ConfigError, match=r"run\.json: corrupt or truncated JSON"):
        folder.read_info()
    folder.engine_file.write_text('{"requests": "many"}')
    with pytest.raises(ConfigError, match=r"engine\.json: requests: Input should be a valid integer"):
        folder.read_engine()
    folder.faults_file.write_text('[{"name": "x"}]')
    with pytest.raises(ConfigError, match=r"faults\.json: 0\.kind: Field required"):
        folder.read_faults()
    folder.probe_ledger.parent.mkdir()
    folder.probe_ledger.write_text('{"t": 1, "probe": "p", "method": "GET", "path": "/", "status": 200}\n{"t"\n')
    with pytest.raises(ConfigError, match=r"probe-requests\.jsonl: line 2: corrupt or truncated JSON"):
        folder.read_probe_requests()


def test_corrupt_or_foreign_history_parts_are_config_errors(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    write_part(folder.history_dir, "part-a-000001.parquet", SCHEMA.empty_table())
    assert read_history(folder.history_dir).empty
    (folder.history_dir / "part-b-000001.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigError, match=r"part-b-000001\.parquet: not a readable Parquet history part"):
        folder.history_parts()
    (folder.history_dir / "part-b-000001.parquet").unlink()
    pq.write_table(pa.table({"x": [1]}), folder.history_dir / "part-c-000001.parquet")
    with pytest.raises(ConfigError, match=r"part-c-000001\.parquet: not a quotaquake history part"):
        folder.history_parts()


def test_create_refuses_a_folder_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot write the run folder here"):
        RunFolder(tmp_path / "file" / "run").create()


def test_host_samples_round_trip_and_a_cut_last_line_is_left_out(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    assert folder.read_host_samples() == []
    samples = [HostSample(t=1.0 + k, interval_s=1.0, cores=2, cpu_busy=[0.5, 0.25]) for k in range(2)]
    for sample in samples:
        folder.append_host_sample(sample)
    assert folder.read_host_samples() == samples
    with folder.host_file.open("a") as out:
        out.write('{"t": 3.0, "interval')  # the sampler was killed mid-line
    assert folder.read_host_samples() == samples
    folder.host_file.write_text('{"t": 1.0}\n' + samples[0].model_dump_json() + "\n")
    with pytest.raises(ConfigError, match=r"host\.jsonl: line 1: interval_s: Field required"):
        folder.read_host_samples()
