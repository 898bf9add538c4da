"""The baseline store: one Parquet file per run, loaded with filters and a window, merged by run id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quotaquake.errors import ConfigError, UsageError
from quotaquake.gate.baseline import IDENTITY_COLUMNS, RunIdentity, append, load, merge, read_run, run_ids
from quotaquake.gate.summary import SUMMARY_COLUMNS, counter_rows, summary_frame, trend_rows

START = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)


def summary(p95_ms: float) -> pd.DataFrame:
    latencies = np.full(200, p95_ms)
    return summary_frame(
        trend_rows("http_req_duration", {"tier": "pro"}, latencies, ("p(95)",))
        + counter_rows("qq_over_admitted_cost", {}, 0, 200)
    )


def identity(night: int, machine: str = "ci-2core", scenario: str = "tiered") -> RunIdentity:
    return RunIdentity(
        run_id=f"2025030{night}T020000Z-{scenario}-{night:04x}",
        time=START + timedelta(days=night),
        commit=f"c{night}",
        machine=machine,
        stack="local/3-replicas",
        scenario=scenario,
    )


def test_append_writes_one_file_per_run_and_load_reads_them_oldest_first(tmp_path: Path) -> None:
    store = tmp_path / "baseline"
    for night in (3, 1, 2):
        path = append(store, summary(40.0 + night), identity(night))
        assert path == store / f"{identity(night).run_id}.parquet"
    frame = load(store)
    assert list(frame.columns) == [*IDENTITY_COLUMNS, *SUMMARY_COLUMNS]
    assert run_ids(frame) == [identity(n).run_id for n in (1, 2, 3)]
    assert str(frame["time"].dtype) == "datetime64[us, UTC]"
    p95 = frame[frame["aggregation"] == "p(95)"]
    assert p95["value"].tolist() == [41.0, 42.0, 43.0]
    assert p95["tags"].unique().tolist() == ["tier:pro"]


def test_load_filters_and_keeps_the_newest_runs(tmp_path: Path) -> None:
    store = tmp_path / "baseline"
    for night in range(1, 6):
        append(store, summary(40.0), identity(night, machine="ci-2core" if night % 2 else "laptop"))
    ci = load(store, filters={"machine": "ci-2core"})
    assert run_ids(ci) == [identity(n).run_id for n in (1, 3, 5)]
    newest = load(store, filters={"machine": ["ci-2core"], "metric": "http_req_duration"}, last_n=2)
    assert run_ids(newest) == [identity(n).run_id for n in (3, 5)]
    assert newest["metric"].unique().tolist() == ["http_req_duration"]
    assert load(store, last_n=0).empty
    with pytest.raises(ValueError, match="cannot filter on 'region'"):
        load(store, filters={"region": "eu"})


def test_a_missing_store_is_empty_with_the_schema(tmp_path: Path) -> None:
    frame = load(tmp_path / "nothing-yet")
    assert frame.empty
    assert list(frame.columns) == [*IDENTITY_COLUMNS, *SUMMARY_COLUMNS]


def test_runs_are_immutable(tmp_path: Path) -> None:
    append(tmp_path, summary(40.0), identity(1))
    with pytest.raises(UsageError, match="already in the baseline store"):
        append(tmp_path, summary(41.0), identity(1))


def test_identities_are_checked(tmp_path: Path) -> None:
    unsafe = RunIdentity("../escape", START, "c", "m", "s", "x")
    with pytest.raises(ValueError, match="safe file name"):
        append(tmp_path, summary(40.0), unsafe)
    naive = RunIdentity("r1", START.replace(tzinfo=None), "c", "m", "s", "x")
    with pytest.raises(ValueError, match="timezone-aware"):
        append(tmp_path, summary(40.0), naive)


def test_unreadable_or_misnamed_files_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet")
    with pytest.raises(ConfigError, match=r"garbage\.parquet: not a quotaquake baseline run"):
        load(tmp_path)
    (tmp_path / "garbage.parquet").unlink()
    path = append(tmp_path, summary(40.0), identity(1))
    renamed = path.rename(tmp_path / "other-run.parquet")
    with pytest.raises(ConfigError) as info:
        read_run(renamed)
    assert info.value.field == "run_id"


def test_merge_is_a_union_deduplicated_by_run_id(tmp_path: Path) -> None:
    store_a, store_b, both = tmp_path / "a", tmp_path / "b", tmp_path / "both"
    for night in (1, 2):
        append(store_a, summary(40.0), identity(night))
    append(store_b, summary(99.0), identity(2))  # the same run id with other content: a's copy is kept
    append(store_b, summary(42.0), identity(3))
    assert merge(store_a, store_b, into=both) == sorted(identity(n).run_id for n in (1, 2, 3))
    assert merge(store_a, store_b) == [identity(3).run_id]
    assert merge(store_a, store_b) == []
    merged = load(store_a)
    assert run_ids(merged) == [identity(n).run_id for n in (1, 2, 3)]
    night2 = merged[(merged["run_id"] == identity(2).run_id) & (merged["aggregation"] == "p(95)")]
    assert night2["value"].tolist() == [40.0]
    pd.testing.assert_frame_equal(load(both), merged)
