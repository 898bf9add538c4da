"""Load generator ceiling, recording overhead, distributed history and arrival accuracy, measured side by side
against the same target: the stack's LB on the calibration route (``<gateway>/calibrate``: direct response
from each replica, no limiter, no upstream), or with ``--direct`` a single direct-response Envoy.

Measurements, in one run (every Locust variant as master + ``PROCESSES`` workers, ``--processes``):

1. wrk (2 threads, 64 connections): the ceiling of machine + target without Python.
2. maximum throughput, alternating ``--repeat`` times:
   * ``plain``: FastHttpUser with no wait time, ``USERS`` users, nothing recorded;
   * ``recorded``: ``scenarios/tiered.py --qq-target calibrate`` (open model + history) with the same users,
     asked for far more than it can send, so it runs flat out; each run's history is then checked:
     rows = Locust's requests = the workers' rows, and verify's completeness check passes;
   * ``shipped``: the same, but master + 2 ``--worker`` processes each in its own working directory with a
     relative ``--qq-out``, so no worker sees the run folder and every part crosses Locust's connection
     (what generators on other machines do).
3. a fixed rate (``--fixed-rate``, default 3,000 req/s, ``rate / 20`` users each side), alternating too:
   * ``plain@rate``: FastHttpUser with ``constant_throughput(20)``, nothing recorded;
   * ``open@rate``: the tiered scenario with its recorder left out (``load_unrecorded_locustfile.py``);
   * ``recorded@rate``: the tiered scenario as it runs.
   CPU per request: recorder cost = (recorded - open) / plain; open-model cost = (open - plain) / plain.
4. accuracy: the recorded scenario at ``--accuracy-rate`` (default 2000 req/s): steady arrival rate from the
   history (first and last second trimmed) against the target.

Every variant is measured the same way, in a steady window that starts 2 s after the first request reaches
the target and ends 2 s before the run does: throughput = the target's request counter over the window;
CPU per request = CPU time (user + system) of all Locust processes over the window / requests. Ratios
are medians of per-repeat ratios (runs next to each other share the machine's load of the moment).

Usage (the machine is shared, so numbers are noisy: read the load average printed with them):

    .venv/bin/python benchmarks/load_generator.py --direct --duration 15 --repeat 3
    .venv/bin/python benchmarks/load_generator.py --state .quotaquake/stack.json --duration 15
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.support

from quotaquake.load.measure import arrival_stats
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import read_history
from quotaquake.stack.state import read_state
from quotaquake.verify.checks.completeness import check_completeness
from quotaquake.verify.data.rundata import load_run
from quotaquake.verify.thresholds import Thresholds
from tests.support.direct_envoy import DirectEnvoy, free_port

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "tiered.py"
PLAIN = REPO / "benchmarks" / "load_plain_locustfile.py"
PLAIN_RATE = REPO / "benchmarks" / "load_plain_rate_locustfile.py"
UNRECORDED = REPO / "benchmarks" / "load_unrecorded_locustfile.py"
USERS = 100
PROCESSES = 2
USER_RATE = 20.0  # req/s of one user at the fixed rate (both sides)
EDGE_S = 2.0  # seconds cut at both ends of a run for the steady window
LB_COUNTER = "http.front.downstream_rq_total"


@dataclass(frozen=True)
class Target:
    gateway: str
    url: str  # the calibration URL
    state: Path
    admin: str  # Envoy admin URL whose ``counter`` counts the requests served
    counter: str


@dataclass(frozen=True)
class Window:
    rate: float  # req/s at the target
    cpu_us: float  # Locust CPU per request, microseconds


@dataclass(frozen=True)
class Launch:
    """One Locust process of a variant: its arguments (after ``-m locust``) and working directory."""

    args: list[str]
    cwd: Path = REPO


@dataclass
class Results:
    windows: dict[str, list[Window]] = field(default_factory=lambda: defaultdict(list))
    history_checks: list[str] = field(default_factory=list)


def wrk_rate(url: str, duration_s: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{duration_s}s", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration_s + 30,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{out}")
    return float(match.group(1))


def served(target: Target) -> int:
    with urllib.request.urlopen(f"{target.admin}/stats?filter=^{target.counter}$", timeout=5) as response:
        text = response.read().decode()
    return int(text.split(":")[1])


def tree_cpu_s(processes: list[psutil.Process]) -> float:
    """CPU seconds (user + system) of ``processes`` and all their children."""
    total = 0.0
    for root in processes:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in tree:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


def await_first_requests(target: Target, before: int, deadline: float) -> None:
    while served(target) == before:
        if time.monotonic() > deadline:
            raise RuntimeError("Locust sent nothing within the deadline")
        time.sleep(0.05)  # poll interval


def measured(launches: list[Launch], duration_s: int, target: Target) -> Window:
    """Run the Locust processes of one variant together and measure their steady window (module docstring)."""
    before = served(target)
    popens = []
    for launch in launches:
        launch.cwd.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "locust", *launch.args]
        popens.append(subprocess.Popen(command, cwd=launch.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        procs = [psutil.Process(p.pid) for p in popens]
        await_first_requests(target, before, time.monotonic() + 30)
        time.sleep(EDGE_S)  # measurement window start, not synchronisation
        t0, n0, c0 = time.monotonic(), served(target), tree_cpu_s(procs)
        time.sleep(duration_s - 2 * EDGE_S)  # the measurement window itself
        t1, n1, c1 = time.monotonic(), served(target), tree_cpu_s(procs)
        for popen, launch in zip(popens, launches, strict=True):
            if popen.wait(timeout=duration_s + 60) != 0:
                raise RuntimeError(f"locust exited with {popen.returncode}: {' '.join(launch.args)}")
    finally:
        for popen in popens:
            if popen.poll() is None:
                popen.kill()
                popen.wait()
    return Window(rate=(n1 - n0) / (t1 - t0), cpu_us=(c1 - c0) / (n1 - n0) * 1e6)


def headless(duration_s: int, locustfile: Path, *args: str) -> list[str]:
    common = ["--headless", "--run-time", f"{duration_s}s", "--stop-timeout", "3", "--only-summary"]
    return ["-f", str(locustfile), *common, *args]


def processes() -> list[str]:
    """Master and forked workers on a loopback port of their own (5557 may be another run's)."""
    port = str(free_port())
    return ["--processes", str(PROCESSES), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--master-port", port]  # fmt: skip


def tiered(state: Path, out: Path | str, rate: float, user_rate: float) -> list[str]:
    return ["--qq-state", str(state), "--qq-out", str(out), "--qq-target", "calibrate",
            "--qq-rate", f"{rate:g}", "--qq-user-rate", f"{user_rate:g}"]  # fmt: skip


def shipped_launches(target: Target, duration_s: int, rate: float, user_rate: float, tmp: Path) -> list[Launch]:
    """Master + ``PROCESSES`` workers, each in its own directory: the run folder ``run`` is the master's only."""
    port = str(free_port())
    master = Launch(
        headless(duration_s, SCENARIO, *tiered(target.state, "run", rate, user_rate), "--master",
                 "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--expect-workers", str(PROCESSES)),
        tmp / "master",
    )  # fmt: skip
    workers = [
        Launch(["-f", str(SCENARIO), "--worker", "--master-host", "127.0.0.1", "--master-port", port], tmp / f"gen-{n}")
        for n in range(PROCESSES)
    ]
    return [master, *workers]


def history_check(run_dir: Path) -> str:
    """Rows vs Locust's count vs the workers' rows, and verify's completeness verdict, in one line."""
    engine = RunFolder(run_dir).read_engine()
    rows = len(read_history(run_dir / "history", columns=["sent_ns"]))
    workers = "-" if engine is None else "+".join(str(w.rows) for w in engine.workers)
    status = check_completeness(load_run(run_dir), Thresholds()).status
    requests = "-" if engine is None or engine.requests is None else f"{engine.requests:,}"
    return f"rows {rows:,}, Locust requests {requests}, workers' rows {workers}: completeness {status}"


def variants(
    target: Target, duration_s: int, fixed_rate: float, tmp: Path
) -> list[tuple[str, list[Launch], Path | None]]:
    """(name, processes, run folder to check) of every variant of one round (module docstring)."""

    def locust(locustfile: Path, *args: str) -> list[Launch]:
        return [Launch(headless(duration_s, locustfile, *args, *processes()))]

    def users(count: int) -> tuple[str, ...]:
        return ("--host", target.gateway, "-u", str(count), "-r", str(count))

    flat_out = (50_000.0, 50_000.0 / USERS)
    at_rate = (fixed_rate, USER_RATE)
    return [
        ("plain", locust(PLAIN, *users(USERS)), None),
        ("recorded", locust(SCENARIO, *tiered(target.state, tmp / "max", *flat_out)), tmp / "max"),
        ("shipped", shipped_launches(target, duration_s, *flat_out, tmp / "ship"), tmp / "ship" / "master" / "run"),
        ("plain@rate", locust(PLAIN_RATE, *users(round(fixed_rate / USER_RATE))), None),
        ("open@rate", locust(UNRECORDED, *tiered(target.state, tmp / "open", *at_rate)), None),
        ("recorded@rate", locust(SCENARIO, *tiered(target.state, tmp / "rate", *at_rate)), tmp / "rate"),
    ]


def run_variants(
    target: Target, duration_s: int, fixed_rate: float, tmp: Path, results: Results, only: frozenset[str]
) -> None:
    for name, launches, run_dir in variants(target, duration_s, fixed_rate, tmp):
        if only and name not in only:
            continue
        results.windows[name].append(measured(launches, duration_s, target))
        if run_dir is not None:
            results.history_checks.append(f"{name} #{len(results.windows[name])}: {history_check(run_dir)}")


def ratio(results: Results, numerator: str, denominator: str, what: str) -> float:
    pairs = zip(results.windows[numerator], results.windows[denominator], strict=True)
    return statistics.median([getattr(a, what) / getattr(b, what) for a, b in pairs])


def report(results: Results, wrk: float, fixed_rate: float, repeat: int) -> None:
    for name, runs in results.windows.items():
        rate = statistics.median([w.rate for w in runs])
        print(
            f"{name:<14} {rate:8,.0f} req/s  {rate / wrk:6.1%} of wrk   "
            f"Locust CPU {statistics.median([w.cpu_us for w in runs]):4.0f} us/req   "
            f"runs: {', '.join(f'{w.rate:,.0f}' for w in runs)}"
        )
    have = set(results.windows)
    if {"plain", "recorded", "shipped"} <= have:
        throughput = ratio(results, "recorded", "plain", "rate")
        shipped = ratio(results, "shipped", "plain", "rate")
        print(f"max throughput, recorded / plain: {throughput:.3f}  shipped / plain: {shipped:.3f}  ({repeat} rounds)")
    if {"plain@rate", "open@rate", "recorded@rate"} <= have:
        fixed_rate_ratios(results, fixed_rate)
    for line in results.history_checks:
        print(f"  {line}")


def fixed_rate_ratios(results: Results, fixed_rate: float) -> None:
    recorder = statistics.median(
        [(r.cpu_us - o.cpu_us) / p.cpu_us for p, o, r in zip(
            results.windows["plain@rate"], results.windows["open@rate"], results.windows["recorded@rate"], strict=True)]
    )  # fmt: skip
    open_model = ratio(results, "open@rate", "plain@rate", "cpu_us") - 1
    total = ratio(results, "recorded@rate", "plain@rate", "cpu_us") - 1
    print(
        f"at {fixed_rate:,.0f} req/s, CPU per request vs plain: recorder {recorder:+.1%}, "
        f"open model {open_model:+.1%}, both {total:+.1%}"
    )


def measure(target: Target, args: argparse.Namespace, tmp: Path) -> None:
    duration_s, repeat, fixed_rate, accuracy_rate = args.duration, args.repeat, args.fixed_rate, args.accuracy_rate
    only = frozenset(name.strip() for name in args.only.split(",") if name.strip())
    load_before = os.getloadavg()[0]
    wrk = wrk_rate(target.url, duration_s)
    results = Results()
    for n in range(repeat):
        run_variants(target, duration_s, fixed_rate, tmp / f"round-{n}", results, only)
    print(
        f"target: {target.url}  ({PROCESSES} Locust workers, {USERS} users flat out, {duration_s} s runs, "
        f"median of {repeat}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)"
    )
    print(f"wrk            {wrk:8,.0f} req/s")
    report(results, wrk, fixed_rate, repeat)
    if accuracy_rate <= 0:
        return
    acc = Launch(
        headless(duration_s, SCENARIO, *tiered(target.state, tmp / "acc", accuracy_rate, USER_RATE), *processes())
    )
    measured([acc], duration_s, target)
    accuracy = arrival_stats(read_history(tmp / "acc" / "history"))
    print(
        f"accuracy at {accuracy_rate:,.0f} req/s: steady {accuracy.steady_rate:,.1f} req/s "
        f"({accuracy.steady_rate / accuracy_rate - 1:+.2%}), lag p50 {accuracy.lag_p50_ms:.1f} ms, "
        f"p99 {accuracy.lag_p99_ms:.1f} ms, {accuracy.requests:,} rows"
    )


def stack_target(state_path: Path) -> Target:
    endpoints = read_state(state_path).require_endpoints()
    if endpoints.lb_admin is None:
        raise SystemExit(f"{state_path}: no lb_admin endpoint to count requests at")
    url = endpoints.gateway + endpoints.calibration_path
    return Target(endpoints.gateway, url, state_path, endpoints.lb_admin, LB_COUNTER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, default=Path(".quotaquake/stack.json"))
    parser.add_argument("--direct", action="store_true", help="measure against a direct-response Envoy")
    parser.add_argument("--duration", type=int, default=15, help="seconds per measurement (>= 8)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every variant")
    parser.add_argument("--fixed-rate", type=float, default=3000.0, help="req/s of the fixed-rate comparison")
    parser.add_argument("--accuracy-rate", type=float, default=2000.0, help="0: no accuracy run")
    parser.add_argument(
        "--only", default="", help="comma-separated variants to run (default: all), e.g. plain,recorded"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qq-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.direct:
            with DirectEnvoy(tmp / "envoy", concurrency=2) as envoy:
                target = Target(
                    envoy.url, envoy.url + "/calibrate", envoy.state_path, envoy.admin_url, envoy.request_counter
                )
                measure(target, args, tmp)
        else:
            state = args.state.resolve()
            measure(stack_target(state), args, tmp)


if __name__ == "__main__":
    main()
