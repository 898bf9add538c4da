"""Who a run is, for the baseline store: commit, machine, stack, what the load was asked for, and the run's
own verdicts; and appending a verified run folder's summary to a store."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from quotaquake.errors import ConfigError
from quotaquake.gate.baseline import RunIdentity, append
from quotaquake.gate.summary import read_summary
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import RunInfo

COMMIT_ENV_VARS: tuple[str, ...] = ("GITHUB_SHA", "CI_COMMIT_SHA")
"""CI variables naming the commit under test (GitHub Actions, GitLab CI), read when none is given."""


def git_commit(cwd: Path | None = None) -> str:
    """The commit under test: ``$GITHUB_SHA`` / ``$CI_COMMIT_SHA``, else ``git rev-parse HEAD`` in ``cwd``,
    else ``unknown``."""
    for name in COMMIT_ENV_VARS:
        if os.environ.get(name):
            return os.environ[name]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def stack_identity(info: RunInfo) -> str:
    """``provider/N-replicas/model``: the system under test as far as a comparison must hold it equal."""
    return f"{info.provider}/{info.replicas}-replicas/{info.model}"


def run_identity(info: RunInfo, statuses: Mapping[str, str], status: str, commit: str | None = None) -> RunIdentity:
    """The identity of a verified run: ``statuses`` maps each check to its verdict, ``status`` is their
    composition; the machine is this one (verification runs where the run ran, or ``commit`` says so)."""
    return RunIdentity(
        run_id=info.run_id,
        time=info.started_at,
        commit=commit or git_commit(),
        machine=socket.gethostname(),
        cpus=os.cpu_count() or 0,
        stack=stack_identity(info),
        scenario=info.scenario,
        rate=math.nan if info.target_rate is None else float(info.target_rate),
        duration_s=math.nan if info.duration_s is None else float(info.duration_s),
        defect=info.defect or "",
        status=status,
        verdicts=json.dumps(dict(statuses), sort_keys=True),
        aborted="" if info.aborted is None else f"{info.aborted.threshold}: {info.aborted.reason}",
    )


def append_run(
    folder: RunFolder, store: Path, statuses: Mapping[str, str], status: str, commit: str | None = None
) -> Path:
    """Append a verified run folder's ``summary.parquet`` to the baseline store ``store``; returns the
    store's file of the run. A folder without a summary (not verified, or its summary crashed) is a
    ``ConfigError``."""
    if not folder.summary_file.is_file():
        raise ConfigError(folder.summary_file, None, "no summary: verify the run first (`quotaquake verify`)")
    summary = read_summary(folder.summary_file)
    identity = run_identity(folder.read_info(), statuses, status, commit)
    try:
        return append(store, summary, identity)
    except ValueError as exc:  # a run id that is no safe file name
        raise ConfigError(folder.run_file, "run_id", str(exc)) from None
