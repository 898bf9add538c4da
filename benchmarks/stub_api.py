"""Benchmark the stub fingerprint API alone with wrk: req/s, latency and server CPU per request.

Starts the stub on a free loopback port (uvicorn through ``python -m quotaquake.services.stub_api``, or
granian on the same app factory for comparison), waits for GET /health by polling with a deadline,
warms up for 1 s, runs wrk with a Lua script that POSTs a small valid fingerprint to /identify, then
stops the server (SIGTERM to its process group, SIGKILL after 5 s). Prints one markdown row per case.

``cpu us/req`` is the server's user+system CPU time (all its processes, from /proc, 10 ms ticks)
divided by the requests wrk completed: the number that matters on 2 shared cores, and much less
sensitive than req/s to other load on the machine. wrk itself runs on the same machine.

    .venv/bin/python benchmarks/stub_api.py                      # uvicorn, 1 and 2 workers, median 0 and 2 ms
    .venv/bin/python benchmarks/stub_api.py --server granian --workers 1 --median-ms 0
    .venv/bin/python benchmarks/stub_api.py --in-process       # app only: fast path vs FastAPI router

``--in-process`` calls the ASGI app directly (no server, no sockets, latency model off) and prints the
app's own microseconds per request, with the pure-ASGI fast path and through FastAPI's router.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from quotaquake.services.stub_api import EXAMPLE_FINGERPRINT

REPO = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)
BODY = EXAMPLE_FINGERPRINT  # the small valid /identify body the package exports
READY_TIMEOUT_S = 15.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Case:
    server: str  # uvicorn | granian
    workers: int
    median_ms: float
    sigma: float


@dataclass(frozen=True)
class Result:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    cpu_us_per_request: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(case: Case, port: int) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if case.server == "uvicorn":
        argv = [str(PYTHON), "-m", "quotaquake.services.stub_api", "--port", str(port)]
        argv += ["--latency-median-ms", str(case.median_ms), "--latency-sigma", str(case.sigma)]
        return [*argv, "--workers", str(case.workers)], env
    settings = {"port": port, "latency_median_ms": case.median_ms, "latency_sigma": case.sigma}
    env["QUOTAQUAKE_STUB_API_SETTINGS"] = json.dumps({**settings, "workers": case.workers})
    granian = PYTHON.parent / "granian"
    argv = [str(granian), "--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--loop", "uvloop", "--http", "1", "--runtime-mode", "st", "--no-access-log"]
    argv += ["--log-level", "warning", "--workers", str(case.workers)]
    return [*argv, "quotaquake.services.stub_api.app:app_from_env"], env


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)  # poll interval, not a synchronisation sleep
    raise SystemExit(f"server at {url} not healthy within {READY_TIMEOUT_S} s")


def session_cpu_ticks(session_id: int) -> int:
    """utime+stime (clock ticks) of every live process in the session ``session_id``."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # fields after the command: state ppid pgrp session ...
            total += int(fields[11]) + int(fields[12])
    return total


def run_wrk(url: str, script: Path, seconds: int, connections: int, threads: int) -> str:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
    return subprocess.run([*argv, url + "/identify"], check=True, capture_output=True, text=True).stdout


def parse_wrk(output: str) -> tuple[float, float, float, int, int]:
    """(req/s, p50 ms, p99 ms, non-2xx count, total requests) from wrk's text output."""

    def duration_ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if match is None:
            raise SystemExit(f"no {label}% latency in wrk output:\n{output}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rate is None or total is None:
        raise SystemExit(f"cannot parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    return float(rate.group(1)), duration_ms("50"), duration_ms("99"), errors, int(total.group(1))


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def measure(case: Case, script: Path, seconds: int, connections: int, threads: int) -> Result:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv, env = server_command(case, port)
    process = subprocess.Popen(argv, env=env, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        wait_healthy(url, process)
        run_wrk(url, script, 1, connections, threads)  # warm-up
        before = session_cpu_ticks(process.pid)
        output = run_wrk(url, script, seconds, connections, threads)
        cpu_s = (session_cpu_ticks(process.pid) - before) / CLOCK_TICKS
    finally:
        stop(process)
    rate, p50, p99, non_2xx, total = parse_wrk(output)
    return Result(rate, p50, p99, non_2xx, cpu_s / max(total, 1) * 1e6)


def markdown_row(case: Case, result: Result) -> str:
    latency = f"{case.median_ms:g} ms / {case.sigma:g}" if case.median_ms else "off"
    return (
        f"| {case.server} | {case.workers} | {latency} | {result.requests_per_s:,.0f} | "
        f"{result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.cpu_us_per_request:.0f} | {result.non_2xx} |"
    )


def in_process_us_per_request(path: str, body: bytes, fast_path: bool, count: int = 20_000) -> float:
    """Mean microseconds per POST ``path`` through the ASGI app alone, after 500 warm-up calls."""
    from quotaquake.services.stub_api import StubSettings, create_app

    app = create_app(StubSettings(latency_median_ms=0), fast_path=fast_path)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope: dict[str, object] = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST"}
    scope |= {"scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": ""}
    scope |= {"headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: object) -> None:
        return None

    async def loop(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await app(dict(scope), receive, send)
        return time.perf_counter() - started

    asyncio.run(loop(500))
    return asyncio.run(loop(count)) / count * 1e6


def in_process_table() -> None:
    fingerprint = json.dumps(BODY).encode()
    cases = [
        ("/identify", fingerprint),
        ("/compare", b'{"left":' + fingerprint + b',"right":' + fingerprint + b"}"),
        ("/batch (10)", b'{"fingerprints":[' + b",".join([fingerprint] * 10) + b"]}"),
    ]
    print("| route | fast path us/req | FastAPI router us/req |")
    print("| --- | --- | --- |")
    for label, body in cases:
        path = label.split()[0]
        fast, routed = (in_process_us_per_request(path, body, mode) for mode in (True, False))
        print(f"| POST {label} | {fast:.1f} | {routed:.1f} |", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["uvicorn", "granian"], action="append")
    parser.add_argument("--workers", type=int, action="append", help="default: 1 and 2")
    parser.add_argument("--median-ms", type=float, action="append", help="default: 0 and 2")
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--in-process", action="store_true", help="time the ASGI app alone (no server, no wrk)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.in_process:
        in_process_table()
        return
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, POST /identify "
        f"({len(json.dumps(BODY))} B JSON), {os.cpu_count()} cores shared with wrk; "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    print("| server | workers | latency model (median / sigma) | req/s | p50 ms | p99 ms | cpu us/req | non-2xx |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post_identify.lua"
        body = json.dumps(BODY, separators=(",", ":"))
        script.write_text(
            f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[{body}]]\n'
        )
        for server in args.server or ["uvicorn"]:
            for workers in args.workers or [1, 2]:
                for median in args.median_ms if args.median_ms is not None else [0.0, 2.0]:
                    case = Case(server, workers, median, args.sigma)
                    result = measure(case, script, args.duration, args.connections, args.threads)
                    print(markdown_row(case, result), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
