"""The host sampler on this machine: CPU per core, pressure, the scheduler-delay probe, and the CPU of
the generator's and the stack's processes (child processes of the test stand in for both)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest

from quotaquake.load.host import HostSampler, StackProcesses, _busy_and_steal, generator_pids, sampling_host
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import WAKE_DELAY_EDGES_MS
from quotaquake.stack.state import ServiceRecord, StackState, write_state

BUSY = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\n"
Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_busy_share_per_core_and_steal_from_cpu_time_differences():
    before = [Times(0, 0, 0, 0, 0, 0, 0, 0, 0, 0), Times(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    # core 0: 0.6 s user + 0.2 system + 0.1 idle + 0.1 steal; core 1: 1 s idle. Guest time is inside user.
    after = [Times(0.6, 0, 0.2, 0.1, 0, 0, 0, 0.1, 0.3, 0), Times(0, 0, 0, 1.0, 0, 0, 0, 0, 0, 0)]
    busy, steal = _busy_and_steal(before, after)
    assert busy == [0.8, 0.0]
    assert steal == 0.05  # 0.1 of 2 s


def stack_state(tmp_path: Path, pid: int, provider: str = "local") -> Path:
    state = StackState(
        provider=provider,
        stack_id="s",
        work_dir=str(tmp_path),
        state_file=str(tmp_path / "stack.json"),
        services={"limiter-1": ServiceRecord(name="limiter-1", kind="limiter", pid=pid)},
    )
    write_state(state, tmp_path / "stack.json")
    return tmp_path / "stack.json"


def test_stack_and_generator_cpu_are_attributed_to_their_processes(tmp_path: Path):
    locust = tmp_path / "locust"  # a process whose command is "locust", a child of this one: the generator
    locust.symlink_to(sys.executable)
    stack = subprocess.Popen([sys.executable, "-c", BUSY.format(s=3)], start_new_session=True)
    generator = subprocess.Popen([str(locust), "-c", BUSY.format(s=3)])
    try:
        stack_processes = StackProcesses(stack_state(tmp_path, stack.pid))
        sampler = HostSampler(RunFolder(tmp_path / "run"), stack_processes)
        assert sampler.start_probe()
        assert generator_pids() == {generator.pid}
        time.sleep(1.0)
        sample = sampler.sample()
    finally:
        sampler.stop()
        stack.kill()
        generator.kill()
        stack.wait()
        generator.wait()
    assert (sample.stack_processes, sample.generator_processes) == (1, 1)
    assert sample.stack_cpu is not None and sample.stack_cpu > 0.1  # a busy loop sharing two cores
    assert 0.1 < sample.generator_cpu == sample.generator_max_process_cpu
    assert sample.cores == os.cpu_count() and len(sample.cpu_busy) == sample.cores
    assert len(sample.wake_delay_counts) == len(WAKE_DELAY_EDGES_MS) + 1 and sum(sample.wake_delay_counts) > 50
    assert sample.stack_wait is not None and sample.stack_on_host is True


@pytest.mark.parametrize(("provider", "on_host"), [("external", False), ("docker", None)])
def test_a_remote_or_containerised_stack_is_not_attributed(tmp_path: Path, provider: str, on_host: bool | None):
    stack = StackProcesses(stack_state(tmp_path, 999_999_999, provider))  # no such pid
    stack.refresh()
    assert stack.on_host is on_host and stack.groups == set()


def test_sampling_writes_one_sample_a_second(tmp_path: Path):
    folder = RunFolder(tmp_path)
    with sampling_host(folder, None):
        time.sleep(2.3)
    samples = folder.read_host_samples()
    assert len(samples) == 2
    assert all(0.9 < s.interval_s < 1.5 and s.stack_on_host is None for s in samples)
    assert samples[0].psi_some is None or 0.0 <= samples[0].psi_some <= 1.0
