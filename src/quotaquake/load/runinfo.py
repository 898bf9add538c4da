"""``run.json`` for runs started with plain ``locust -f``: created at start if absent, completed at quit.

Only the master or local runner writes it (workers never do). When ``quotaquake run`` already wrote the
file, start leaves it alone and quit only completes it.

``locust_totals.json`` holds Locust's final request and failure counts, written when Locust quits (after
every user stopped). Locust's own ``locust_stats.csv`` is rewritten only once a second and can miss the
last second of a run, so counts are taken from here.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from quotaquake.load.options import ScenarioOptions
from quotaquake.policy import Policy
from quotaquake.record import RUN_FILE, MonthlySeed, RunInfo, read_run_info, write_run_info
from quotaquake.stack.state import StackState


def new_run_info(
    *,
    options: ScenarioOptions,
    state: StackState,
    policy: Policy,
    scenario: str,
    duration_s: float | None,
    processes: int,
    command: list[str] | None = None,
) -> RunInfo:
    """Run metadata of a Locust run that ``quotaquake run`` did not start."""
    return RunInfo(
        run_id=options.out.name,
        scenario=scenario,
        target_rate=options.rate,
        duration_s=duration_s,
        started_at=datetime.now(UTC),
        provider=state.provider,
        replicas=state.replicas,
        defect=state.defect,
        model=state.model,
        policy=policy,
        command=list(sys.argv if command is None else command),
        locust_processes=max(1, processes),
        notes=["run.json written by the scenario (plain locust run)"],
    )


def ensure_run_info(run_dir: Path, make: RunInfo) -> bool:
    """Write ``make`` as ``<run_dir>/run.json`` unless the file exists; True when written."""
    if (run_dir / RUN_FILE).exists():
        return False
    write_run_info(run_dir, make)
    return True


def add_monthly_seeds(run_dir: Path, seeds: list[MonthlySeed]) -> None:
    """Append ``seeds`` to ``run.json``'s ``monthly_seeds``."""
    info = read_run_info(run_dir)
    write_run_info(run_dir, info.model_copy(update={"monthly_seeds": [*info.monthly_seeds, *seeds]}))


def complete_run_info(run_dir: Path, *, request_count: int, ended_at: datetime | None = None) -> None:
    """Set ``ended_at`` and ``locust_request_count`` at quit (no-op when there is no ``run.json``)."""
    if not (run_dir / RUN_FILE).exists():
        return
    info = read_run_info(run_dir)
    update = {"ended_at": ended_at or datetime.now(UTC), "locust_request_count": request_count}
    write_run_info(run_dir, info.model_copy(update=update))


TOTALS_FILE = "locust_totals.json"


class LocustTotals(BaseModel):
    """Locust's final counts over the whole run (all workers)."""

    requests: int
    failures: int


def write_totals(run_dir: Path, totals: LocustTotals) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / TOTALS_FILE).write_text(totals.model_dump_json(), encoding="utf-8")


def read_totals(run_dir: Path) -> LocustTotals | None:
    """The final counts, or ``None`` when Locust did not get to write them (killed, crashed)."""
    try:
        return LocustTotals.model_validate_json((run_dir / TOTALS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
