"""Load generator ceiling, recording overhead and arrival accuracy, through the stack's LB on the calibration
route (``<gateway>/calibrate``: direct response from each replica, no limiter, no upstream).

Measurements, one after the other on the same target:

1. wrk (2 threads, 64 connections): the ceiling of machine + LB + replicas without Python.
2. plain Locust: FastHttpUser with no wait time, 2 processes, ``USERS`` users, nothing recorded.
3. recorded: ``scenarios/tiered.py --qq-target calibrate`` (open model + history), 2 processes, the same
   number of users, asked for far more than it can send, so it runs flat out.
4. accuracy: the same scenario at ``--accuracy-rate`` (default 2000 req/s, not saturating): steady arrival
   rate from the history (first and last second trimmed) against the target.

Plain and recorded are measured the same way, in a steady window that starts 2 s after the first request
reaches the LB and ends 2 s before the run does: throughput = the LB's request counter
(``http.front.downstream_rq_total``) over the window; CPU per request = CPU time (user + system) of all
Locust processes over the window / requests. Recording overhead = 1 - recorded / plain throughput.

Plain and recorded runs alternate ``--repeat`` times; the report gives the median of each and the median
of the per-pair ratios. ``--direct`` measures against a single direct-response Envoy (2 worker threads)
started by the benchmark instead of the stack (the setup of the issue's reference figure: 10K req/s).

Usage (a running ``quotaquake stack up``; the machine is shared, so numbers are noisy):

    .venv/bin/python benchmarks/load_generator.py --state .quotaquake/stack.json --duration 15
    .venv/bin/python benchmarks/load_generator.py --direct --duration 15
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.support

from quotaquake.load.measure import arrival_stats
from quotaquake.runfolder.history import read_history
from quotaquake.stack.state import read_state
from tests.support.direct_envoy import DirectEnvoy

REPO = Path(__file__).resolve().parents[1]
USERS = 100
PROCESSES = 2
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
    rate: float  # req/s at the LB
    cpu_us: float  # Locust CPU per request, microseconds


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


def tree_cpu_s(process: psutil.Process) -> float:
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
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


def measured_locust(args: list[str], duration_s: int, target: Target) -> Window:
    """Run Locust and measure its steady window (see the module docstring)."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "--headless",
        "--run-time",
        f"{duration_s}s",
        "--processes",
        str(PROCESSES),
        "--stop-timeout",
        "3",
        "--only-summary",
        *args,
    ]
    before = served(target)
    popen = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        locust = psutil.Process(popen.pid)
        await_first_requests(target, before, time.monotonic() + 30)
        time.sleep(EDGE_S)  # measurement window start, not synchronisation
        t0, n0, c0 = time.monotonic(), served(target), tree_cpu_s(locust)
        time.sleep(duration_s - 2 * EDGE_S)  # the measurement window itself
        t1, n1, c1 = time.monotonic(), served(target), tree_cpu_s(locust)
        if popen.wait(timeout=duration_s + 60) != 0:
            raise RuntimeError(f"locust exited with {popen.returncode}: {' '.join(command)}")
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    return Window(rate=(n1 - n0) / (t1 - t0), cpu_us=(c1 - c0) / (n1 - n0) * 1e6)


def tiered_args(state: Path, out: Path, rate: float, user_rate: float) -> list[str]:
    return [
        "-f",
        "scenarios/tiered.py",
        "--qq-state",
        str(state),
        "--qq-out",
        str(out),
        "--qq-target",
        "calibrate",
        "--qq-rate",
        f"{rate:g}",
        "--qq-user-rate",
        f"{user_rate:g}",
    ]


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure(target: Target, duration_s: int, repeat: int, accuracy_rate: float, tmp: Path) -> None:
    plain_args = [
        "-f",
        "benchmarks/load_plain_locustfile.py",
        "--host",
        target.gateway,
        "-u",
        str(USERS),
        "-r",
        str(USERS),
    ]
    wrk = wrk_rate(target.url, duration_s)
    plain: list[Window] = []
    recorded: list[Window] = []
    for n in range(repeat):
        plain.append(measured_locust(plain_args, duration_s, target))
        flat_out = tiered_args(target.state, tmp / f"max-{n}", 50_000, 50_000 / USERS)
        recorded.append(measured_locust(flat_out, duration_s, target))
    measured_locust(tiered_args(target.state, tmp / "acc", accuracy_rate, 20), duration_s, target)
    accuracy = arrival_stats(read_history(tmp / "acc" / "history"))
    print(
        f"target: {target.url}  ({PROCESSES} Locust processes, {USERS} users, {duration_s} s runs, median of {repeat})"
    )
    print(f"wrk                 {wrk:8,.0f} req/s")
    for name, runs in (("plain FastHttpUser", plain), ("tiered, recorded", recorded)):
        rate = median([w.rate for w in runs])
        print(
            f"{name:<19} {rate:8,.0f} req/s  {rate / wrk:6.1%} of wrk   "
            f"Locust CPU {median([w.cpu_us for w in runs]):4.0f} us/req   "
            f"runs: {', '.join(f'{w.rate:,.0f}' for w in runs)}"
        )
    throughput = median([r.rate / p.rate for p, r in zip(plain, recorded, strict=True)])
    cpu = median([r.cpu_us / p.cpu_us for p, r in zip(plain, recorded, strict=True)])
    print(
        f"recorded / plain (median of pairs): throughput {throughput:.1%} (overhead {1 - throughput:+.1%}), "
        f"CPU per request {cpu:.1%}"
    )
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
    parser.add_argument("--repeat", type=int, default=3, help="plain/recorded pairs")
    parser.add_argument("--accuracy-rate", type=float, default=2000.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qq-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.direct:
            with DirectEnvoy(tmp / "envoy", concurrency=2) as envoy:
                target = Target(
                    envoy.url, envoy.url + "/calibrate", envoy.state_path, envoy.admin_url, envoy.request_counter
                )
                measure(target, args.duration, args.repeat, args.accuracy_rate, tmp)
        else:
            measure(stack_target(args.state), args.duration, args.repeat, args.accuracy_rate, tmp)


if __name__ == "__main__":
    main()
