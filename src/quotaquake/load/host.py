"""Host sampler: once a second, how busy the machine that runs the load was, and who kept it busy.

Runs in the orchestrating process (``quotaquake run``: a thread around the load; the Locust master of a
plain ``locust -f`` run: a greenlet) and appends one ``HostSample`` per interval to the run folder's
``host.jsonl`` (``RunFolder.append_host_sample``). What one sample holds (see ``HostSample``):

* per core, the share of the interval that was busy; CPU steal; the 1-minute load average and the tasks
  running or runnable at the sample (``/proc/loadavg``); Linux PSI ``/proc/pressure/cpu`` "some" (share of
  the interval in which a runnable task waited for a CPU, from the counter's difference, and ``avg10``);
* the CPU (cores) used by the generator's processes: this process and its descendants whose command is
  Locust (``locust -f`` or ``python -m locust``; forked ``--processes`` workers included) or k6;
* the CPU used by the stack's processes: every process in the process group of a service of the state
  file (each local service runs in its own session; restarted services are found by re-reading the file),
  and how many of their threads waited in a run queue on average (``/proc/<pid>/task/*/schedstat``);
* the scheduler delay: a native thread wakes every ``PROBE_PERIOD_S`` and reads, from its own
  ``schedstat``, how long it waited in the run queue since its last wake-up; the delays are counted in
  the buckets of ``WAKE_DELAY_EDGES_MS``. Being a kernel counter, it is not inflated by the GIL or an
  event loop: it is the delay the machine imposed on a runnable task.

A target of the external provider runs elsewhere: its samples say ``stack_on_host=False``. A stack in
containers (docker provider) runs here, but its processes are not attributed (``stack_on_host=None``).
"""

from __future__ import annotations

import _thread
import bisect
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import WAKE_DELAY_EDGES_MS, HostSample
from quotaquake.stack.state import read_state

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
PROBE_PERIOD_S = 0.005
"""The probe thread sleeps this long between wake-ups: ~200 delay measurements a second for ~0.5 % of a core."""
PSI_CPU = Path("/proc/pressure/cpu")
LOADAVG = Path("/proc/loadavg")
LOCUST_COMMANDS = frozenset({"locust", "k6"})  # k6: the generator of `quotaquake run --engine k6`


def _native_thread_tools() -> tuple[Callable[..., object], Callable[[float], None]]:
    """``start_new_thread`` and ``sleep`` of real OS threads, also where gevent has patched them."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original("_thread", "start_new_thread"), monkey.get_original("time", "sleep")
    return _thread.start_new_thread, time.sleep


def own_run_delay_ns() -> int | None:
    """Nanoseconds the calling thread has waited in a run queue so far (``/proc/thread-self/schedstat``)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat", encoding="ascii") as handle:
            return int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None


class WakeProbe:
    """A native thread measuring its own run-queue delay at every wake-up (see the module docstring)."""

    def __init__(self, period_s: float = PROBE_PERIOD_S) -> None:
        self.period_s = period_s
        self._counts = [0] * (len(WAKE_DELAY_EDGES_MS) + 1)
        self._stop = False

    def start(self) -> None:
        start_new_thread, _ = _native_thread_tools()
        start_new_thread(self._run, ())

    def stop(self) -> None:
        self._stop = True

    def take(self) -> list[int]:
        """The counts since the last call (and start new ones)."""
        counts, self._counts = self._counts, [0] * (len(WAKE_DELAY_EDGES_MS) + 1)
        return counts

    def _run(self) -> None:
        _, sleep = _native_thread_tools()
        previous = own_run_delay_ns()
        while not self._stop and previous is not None:
            sleep(self.period_s)
            now = own_run_delay_ns()
            if now is None:
                return
            self._counts[bisect.bisect_left(WAKE_DELAY_EDGES_MS, (now - previous) / 1e6)] += 1
            previous = now


@dataclass
class _Tracked:
    process: psutil.Process
    cpu_s: float  # user + system seconds at the last sample
    run_delay_ns: int


@dataclass
class ProcessCpu:
    """CPU seconds used by a changing set of processes between calls of ``measure``."""

    tracked: dict[int, _Tracked] = field(default_factory=dict)

    def measure(self, pids: set[int], since: float, *, threads_wait: bool = False) -> tuple[list[float], float]:
        """Per process, CPU seconds used since the last call (a process first seen counts in full if it
        started after ``since``, else from now on), and the run-queue wait of their threads (seconds)."""
        used: list[float] = []
        waited = 0.0
        for pid in pids:
            entry = self.tracked.get(pid)
            try:
                if entry is None:
                    process = psutil.Process(pid)
                    cpu, delay = _cpu_seconds(process), _threads_run_delay(pid) if threads_wait else 0
                    self.tracked[pid] = _Tracked(process, cpu, delay)
                    if process.create_time() >= since:
                        used.append(cpu)
                    continue
                cpu, delay = _cpu_seconds(entry.process), _threads_run_delay(pid) if threads_wait else 0
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self.tracked.pop(pid, None)
                continue
            used.append(max(0.0, cpu - entry.cpu_s))
            waited += max(0, delay - entry.run_delay_ns) / 1e9
            entry.cpu_s, entry.run_delay_ns = cpu, delay
        for gone in set(self.tracked) - pids:
            del self.tracked[gone]
        return used, waited


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _threads_run_delay(pid: int) -> int:
    """Sum over a process's threads of their run-queue wait so far (ns); threads gone meanwhile are lost."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as handle:
                total += int(handle.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total


def is_locust(process: psutil.Process) -> bool:
    """Whether the process runs Locust (``locust ...``, ``python -m locust ...`` or a forked worker)."""
    try:
        head = process.cmdline()[:3]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return any(os.path.basename(part) in LOCUST_COMMANDS for part in head)


def generator_pids() -> set[int]:
    """This process and its descendants that run Locust."""
    me = psutil.Process()
    try:
        family = [me, *me.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        family = [me]
    return {p.pid for p in family if is_locust(p)}


@dataclass
class StackProcesses:
    """The stack's processes: every process in the process group of a service the state file names.

    ``on_host`` is False for a remote target (external provider), None for containers (docker provider).
    """

    state_path: Path | None
    groups: set[int] = field(default_factory=set)
    on_host: bool | None = True

    def refresh(self) -> None:
        """Re-read the state file (chaos restarts services with new pids); keep what was known on error."""
        if self.state_path is None:
            self.on_host = None
            return
        try:
            state = read_state(self.state_path)
        except Exception:  # missing or half-replaced state file: the last known groups stay
            return
        if state.provider == "external":
            self.on_host, self.groups = False, set()
            return
        groups = set()
        for service in state.services.values():
            if service.pid is None:
                continue
            try:
                groups.add(os.getpgid(service.pid))
            except OSError:
                continue
        self.on_host = True if groups else None
        self.groups = groups

    def pids(self) -> set[int]:
        found = set()
        for pid in psutil.pids():
            try:
                if os.getpgid(pid) in self.groups:
                    found.add(pid)
            except OSError:
                continue
        return found


def _psi_some_total_us() -> tuple[float | None, float | None]:
    """(total microseconds, avg10 percent) of ``/proc/pressure/cpu`` "some"; ``(None, None)`` without PSI."""
    try:
        line = PSI_CPU.read_text(encoding="ascii").splitlines()[0]
    except (OSError, IndexError):
        return None, None
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    return float(fields["total"]), float(fields["avg10"])


def _runnable() -> int:
    """Tasks running or waiting for a CPU right now (the 4th field of ``/proc/loadavg``, ``running/total``)."""
    try:
        return int(LOADAVG.read_text(encoding="ascii").split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0


def _busy_and_steal(before: list[object], after: list[object]) -> tuple[list[float], float]:
    """Per core busy share (not idle, not iowait, not steal) and the steal share of all cores."""
    busy: list[float] = []
    steal = total_all = 0.0
    for old, new in zip(before, after, strict=True):
        delta = {name: getattr(new, name) - getattr(old, name) for name in new._fields}  # type: ignore[attr-defined]
        total = sum(delta.values()) - delta.get("guest", 0.0) - delta.get("guest_nice", 0.0)
        idle = delta.get("idle", 0.0) + delta.get("iowait", 0.0)
        stolen = delta.get("steal", 0.0)
        busy.append(round(max(0.0, total - idle - stolen) / total, 4) if total > 0 else 0.0)
        steal += stolen
        total_all += total
    return busy, round(steal / total_all, 4) if total_all > 0 else 0.0


class HostSampler:
    """Samples the host every ``interval_s`` into ``folder``'s ``host.jsonl`` (see the module docstring)."""

    def __init__(self, folder: RunFolder, stack: StackProcesses, interval_s: float = INTERVAL_S) -> None:
        self.folder = folder
        self.stack = stack
        self.interval_s = interval_s
        self.probe = WakeProbe()
        self.samples_written = 0
        self._generator = ProcessCpu()
        self._stack_cpu = ProcessCpu()
        self._stopped = False
        self._started = False
        self._mark = time.time()
        self._cpu = psutil.cpu_times(percpu=True)
        self._psi, _ = _psi_some_total_us()

    def start_probe(self) -> bool:
        """Start the probe thread and take the baseline of every counter; False if already started."""
        if self._started:
            return False
        self._started = True
        self.stack.refresh()
        self.probe.start()
        self.sample()  # a first, discarded pass: the baseline of every process's CPU counter
        return True

    def sample(self) -> HostSample:
        """One sample of the interval since the previous call (written by ``run``)."""
        now = time.time()
        interval = max(now - self._mark, 1e-6)
        cpu = psutil.cpu_times(percpu=True)
        busy, steal = _busy_and_steal(self._cpu, cpu)
        psi_total, psi_avg10 = _psi_some_total_us()
        psi = None
        if psi_total is not None and self._psi is not None:
            psi = round(min(1.0, max(0.0, (psi_total - self._psi) / 1e6 / interval)), 4)
        generator, _ = self._generator.measure(generator_pids(), self._mark)
        sample = HostSample(
            t=now,
            interval_s=round(interval, 4),
            cores=len(cpu),
            cpu_busy=busy,
            steal=steal,
            load1=os.getloadavg()[0],
            runnable=_runnable(),
            psi_some=psi,
            psi_some_avg10=psi_avg10,
            generator_cpu=round(sum(generator) / interval, 4),
            generator_max_process_cpu=round(max(generator, default=0.0) / interval, 4),
            generator_processes=len(generator),
            stack_on_host=self.stack.on_host,
            wake_delay_counts=self.probe.take(),
        )
        if self.stack.on_host:
            stack, waited = self._stack_cpu.measure(self.stack.pids(), self._mark, threads_wait=True)
            sample.stack_cpu = round(sum(stack) / interval, 4)
            sample.stack_processes = len(stack)
            sample.stack_wait = round(waited / interval, 4)
        self._mark, self._cpu, self._psi = now, cpu, psi_total
        return sample

    def run(self, sleep: Callable[[float], None]) -> None:
        """Sample every ``interval_s`` until ``stop``; ``sleep`` is ``time.sleep`` or ``gevent.sleep``."""
        deadline = time.monotonic()
        refreshed = 0
        while not self._stopped:
            deadline += self.interval_s
            sleep(max(0.0, deadline - time.monotonic()))
            if self._stopped:
                break
            refreshed += 1
            if refreshed % 5 == 0:
                self.stack.refresh()
            try:
                self.folder.append_host_sample(self.sample())
                self.samples_written += 1
            except Exception:  # a sample is evidence, not a reason to stop the run
                log.exception("host sampler: a sample failed")

    def stop(self) -> None:
        self._stopped = True
        self.probe.stop()


@contextmanager
def sampling_host(folder: RunFolder, state_path: Path | None) -> Iterator[HostSampler]:
    """Sample the host in a thread while the block runs (``quotaquake run``)."""
    sampler = HostSampler(folder, StackProcesses(state_path))
    sampler.start_probe()
    thread = threading.Thread(target=sampler.run, args=(time.sleep,), name="host-sampler", daemon=True)
    thread.start()
    try:
        yield sampler
    finally:
        sampler.stop()
        thread.join(timeout=5 * INTERVAL_S)
