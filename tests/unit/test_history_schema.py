"""The history schema grows by nullable columns only: parts written before a column existed still read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import ADDED_COLUMNS, REQUIRED_COLUMNS, SCHEMA, read_history
from quotaquake.verify.data.rundata import read_verify_history


def old_part(path: Path, sent: list[int]) -> None:
    """A part of the first schema: the required columns only."""
    fields = [SCHEMA.field(name) for name in REQUIRED_COLUMNS]
    arrays = [
        pa.array(sent, pa.int64()) if f.name in ("intended_ns", "sent_ns") else pa.nulls(len(sent), f.type)
        for f in fields
    ]
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)


def test_parts_without_the_added_columns_read_as_nulls(tmp_path: Path):
    folder = RunFolder(tmp_path).history_dir
    folder.mkdir(parents=True)
    old_part(folder / "part-a-000001.parquet", [2, 1])
    new = {name: pa.nulls(1, SCHEMA.field(name).type) for name in SCHEMA.names}
    new["sent_ns"] = new["intended_ns"] = pa.array([3], pa.int64())
    new["rl_remaining_month"] = pa.array([41.0], pa.float64())
    pq.write_table(pa.Table.from_arrays(list(new.values()), schema=SCHEMA), folder / "part-b-000001.parquet")
    frame = read_history(folder)
    assert frame["sent_ns"].tolist() == [1, 2, 3]
    assert set(ADDED_COLUMNS) <= set(frame.columns)
    verify = read_verify_history(RunFolder(tmp_path))
    month = np.asarray(verify["rl_remaining_month"])
    assert np.isnan(month[:2]).all() and month[2] == 41.0
