"""Where each swarm records: numbering, folders, refusing a folder that already holds a run."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from quotaquake.errors import UsageError
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.swarm import begin_swarm, next_swarm_folder, refuse_used_folder, swarm_folder
from quotaquake.runfolder import RunFolder


def parsed(out: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, ScenarioDefaults())
    return parser.parse_args(["--qq-out", str(out)])


def test_swarm_folders_take_the_first_free_number(tmp_path: Path) -> None:
    assert next_swarm_folder(tmp_path) == (1, tmp_path / "swarm-1")
    (tmp_path / "swarm-1").mkdir()
    (tmp_path / "swarm-3").mkdir()
    assert next_swarm_folder(tmp_path) == (2, tmp_path / "swarm-2")


def test_web_ui_swarms_get_their_own_folder_and_workers_learn_it(tmp_path: Path) -> None:
    namespace = parsed(tmp_path / "web")
    assert swarm_folder(namespace).path == tmp_path / "web"  # before any swarm: --qq-out
    options = ScenarioOptions.from_namespace(namespace)
    number, folder = begin_swarm(namespace, options, per_swarm_folders=True)
    assert (number, folder.path) == (1, tmp_path / "web" / "swarm-1")
    assert swarm_folder(namespace).path == folder.path and namespace.qq_swarm == 1  # sent to the workers
    folder.create()
    assert begin_swarm(namespace, options, per_swarm_folders=True)[1].path == tmp_path / "web" / "swarm-2"


def test_a_headless_run_records_into_its_out_folder(tmp_path: Path) -> None:
    namespace = parsed(tmp_path / "run")
    number, folder = begin_swarm(namespace, ScenarioOptions.from_namespace(namespace), per_swarm_folders=False)
    assert (number, folder.path) == (1, tmp_path / "run")


def test_a_folder_holding_a_run_is_refused(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    refuse_used_folder(folder)  # does not exist yet
    folder.create()
    refuse_used_folder(folder)  # empty
    (folder.history_dir).mkdir()
    (folder.history_dir / "part-x-000001.parquet").write_bytes(b"")
    with pytest.raises(UsageError, match=r"--qq-out: .* already holds a run"):
        refuse_used_folder(folder)
