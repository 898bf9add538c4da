"""The load generator's own account of a swarm: each process's sends, slot waits and CPU, summed by the master.

Every Locust process reports a ``GeneratorProcess`` once its users have stopped: the local runner to itself,
a worker to the master (with the drain, ``quotaquake.load.stopping``), the master about itself (CPU only:
it runs no users). ``GeneratorReports`` collects them on the master for the current swarm and turns them
into the ``GeneratorRecord`` of ``engine.json``; a worker that joined but sent nothing is listed as
missing, so a partial total is never taken for the whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from quotaquake.load.options import ScenarioOptions
from quotaquake.load.recorder import worker_id
from quotaquake.load.runtime import ScenarioRuntime, process_cpu_s
from quotaquake.runfolder.models import GeneratorProcess, GeneratorRecord

NS_PER_S = 1e9
Role = Literal["local", "worker", "master"]


def process_report(runtime: ScenarioRuntime | None, role: Role, *, now: float | None = None) -> GeneratorProcess:
    """This process's report for the swarm of ``runtime`` (CPU and wall time since the runtime was built).

    ``None`` (no user or shape of this process needed a runtime in the swarm): zero counts and time.
    """
    if runtime is None:
        return GeneratorProcess(worker=worker_id(), role=role, cpu_s=0.0, wall_s=0.0)
    counters = runtime.counters
    return GeneratorProcess(
        worker=worker_id(),
        role=role,
        cpu_s=round(process_cpu_s() - runtime.started_cpu_s, 6),
        wall_s=round((now if now is not None else time.monotonic()) - runtime.started_monotonic, 6),
        scheduled=counters.scheduled,
        sent=counters.sent,
        slot_waits=counters.slot_waits,
        slot_wait_s=counters.slot_wait_ns / NS_PER_S,
        slot_wait_max_s=counters.slot_wait_max_ns / NS_PER_S,
        in_flight_peak=counters.in_flight_peak,
    )


@dataclass
class GeneratorReports:
    """The master's collection of process reports for one swarm (``swarm`` numbers the drain messages).

    ``expected``: Locust client ids of the workers asked to report; ``reports``: what arrived, by client id.
    """

    swarm: int = 0
    expected: set[str] = field(default_factory=set)
    reports: dict[str, GeneratorProcess] = field(default_factory=dict)

    def start(self, swarm: int) -> None:
        self.swarm, self.expected, self.reports = swarm, set(), {}

    def add(self, client_id: str, swarm: int, report: GeneratorProcess) -> None:
        """A worker's report; one from another swarm is ignored."""
        if swarm == self.swarm:
            self.reports[client_id] = report

    @property
    def pending(self) -> set[str]:
        return self.expected - self.reports.keys()

    def record(self, options: ScenarioOptions, own: GeneratorProcess) -> GeneratorRecord:
        """The swarm's ``GeneratorRecord``: the workers' reports (missing ones listed) and this process's own."""
        return GeneratorRecord(
            max_in_flight=options.max_in_flight,
            max_in_flight_per_user=options.in_flight_per_user,
            peak_users=options.plan.users,
            processes=[own, *(self.reports[c] for c in sorted(self.reports))],
            missing_reports=sorted(self.pending),
        )
