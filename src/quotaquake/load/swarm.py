"""Where each swarm of a Locust run records, and the ``run.json`` of a plain ``locust -f`` swarm.

A *swarm* is one test of a Locust run (``test_start`` ... ``test_stop``): a headless run has one, the web
UI one per press of "Start". Each swarm is a run folder of its own, so ``quotaquake verify <folder>``
judges it alone:

* ``quotaquake run`` (``--qq-orchestrated``): ``--qq-out``, the folder that command made;
* a plain headless run: ``--qq-out`` itself (refused when it already holds a run, so two runs never mix);
* the web UI: ``<--qq-out>/swarm-N``, N = 1, 2, ... the first that does not exist yet (so a later Locust
  process with the same ``--qq-out`` adds swarms rather than overwriting them).

The master chooses the folder at the swarm's ``test_start`` and stores it in the parsed options
(``qq_swarm_out``, with the swarm's number in ``qq_swarm``); Locust sends the parsed options to every worker
with the spawn message, before the worker's own ``test_start``, so every process records there.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quotaquake.errors import UsageError
from quotaquake.load.options import ScenarioOptions
from quotaquake.load.runtime import ScenarioRuntime
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import RunInfo

SWARM_OUT = "qq_swarm_out"
SWARM = "qq_swarm"
SWARM_PREFIX = "swarm-"


def swarm_folder(parsed: Any) -> RunFolder:
    """The run folder of the current swarm, as every process knows it (``--qq-out`` before any swarm)."""
    out = getattr(parsed, SWARM_OUT, None)
    return RunFolder(Path(out) if out else Path(parsed.qq_out))


def next_swarm_folder(base: Path) -> tuple[int, Path]:
    """``(N, <base>/swarm-N)`` for the smallest N >= 1 whose folder does not exist."""
    number = 1
    while (base / f"{SWARM_PREFIX}{number}").exists():
        number += 1
    return number, base / f"{SWARM_PREFIX}{number}"


def holds_a_run(folder: RunFolder) -> bool:
    """True when ``folder`` already has a ``run.json``, an ``engine.json`` or history parts."""
    return folder.is_run() or folder.engine_file.exists() or any(folder.history_dir.glob("*.parquet"))


def refuse_used_folder(folder: RunFolder) -> None:
    """A plain headless run records into ``--qq-out`` itself: refuse one that already holds a run."""
    if holds_a_run(folder):
        raise UsageError(f"--qq-out: {folder.path} already holds a run; choose a new folder (runs never mix)")


def begin_swarm(parsed: Any, options: ScenarioOptions, *, per_swarm_folders: bool) -> tuple[int, RunFolder]:
    """Number the swarm and choose its folder (module docstring); stores both in ``parsed`` for the workers."""
    previous = getattr(parsed, SWARM, None)
    number = (previous or 0) + 1
    path = options.out
    if per_swarm_folders:
        number, path = next_swarm_folder(options.out)
    setattr(parsed, SWARM, number)
    setattr(parsed, SWARM_OUT, str(path))
    return number, RunFolder(path)


def plain_run_info(runtime: ScenarioRuntime, parsed: Any, swarm: int | None) -> RunInfo:
    """``run.json`` of a plain ``locust -f`` swarm (the master orchestrates), from the options it started with."""
    options, state = runtime.options, runtime.state
    run_time = getattr(parsed, "run_time", None)
    notes = ["run.json written by the scenario (plain locust run)"]
    if swarm is not None:
        notes.append(f"swarm {swarm} of a Locust web UI run; the options are those the swarm started with")
    return RunInfo(
        **state.target_facts(),
        run_id=Path(swarm_folder(parsed).path).name if swarm is None else f"{options.out.name}-swarm-{swarm}",
        scenario=str(getattr(parsed, "locustfile", "") or ""),
        target_rate=options.rate,
        duration_s=float(run_time) if run_time else None,
        started_at=datetime.now(UTC),
        policy=runtime.policy,
        command=list(sys.argv),
        locust_processes=max(1, int(getattr(parsed, "processes", None) or 1)),
        notes=notes,
    )
