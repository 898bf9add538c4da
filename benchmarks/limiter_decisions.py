"""Benchmark the rate-limit service: decisions per second and decision latency, then the full chain.

    .venv/bin/python benchmarks/limiter_decisions.py [--duration 10] [--connections 32]

Starts a one-replica local stack (Redis, Postgres, limiter, Envoy, stub API) in a temp dir with the
repository's policy plus a ``bench`` tier (limits so high every request is admitted, so each decision
runs the full Lua script and writes), drives it with wrk, prints one table, and stops everything.

Runs (wrk is closed-loop: N connections, each sends its next request when the previous one returned):
1. ``limiter /authz`` -- the limiter alone (the bench tier's keys in rotation).
2. ``limiter /authz (no redis)`` -- enterprise keys: unlimited, so no Redis call (HTTP + auth cost only).
3. ``gateway /calibrate`` -- Envoy answers itself: the ceiling of the generator + LB + replica.
4. ``gateway /identify`` -- full chain LB -> replica -> limiter -> Redis -> stub API.
5. ``gateway /identify @~1.5K/s`` -- paced by wrk's ``delay()`` hook (20 connections x ~13 ms).
Decision p50/p99 come from the limiter's own histogram (``quotaquake_limiter_decision_seconds``,
interpolated within buckets), read before and after each run. Numbers are noisy: 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import yaml

from quotaquake.services.stub_api import EXAMPLE_FINGERPRINT
from quotaquake.stack.local.provider import LocalProvider
from quotaquake.stack.state import StackState

REPO = Path(__file__).resolve().parents[1]
HISTOGRAM = "quotaquake_limiter_decision_seconds_bucket"

WRK_SCRIPT = """
keys = {%(keys)s}
local n = 0
wrk.method = "%(method)s"
wrk.body = %(body)s
wrk.headers["content-type"] = "application/json"
request = function()
  n = n + 1
  wrk.headers["x-api-key"] = keys[(n %% #keys) + 1]
  wrk.headers["x-forwarded-for"] = "10.0.0." .. (n %% 200)
  return wrk.format()
end
%(delay)s
"""


def bench_policy(folder: Path) -> Path:
    """The repository policy plus tier ``bench`` (admits everything: every decision writes)."""
    policy = yaml.safe_load((REPO / "stack" / "policy.yaml").read_text())
    policy["tiers"]["bench"] = {"per_minute": 1e9, "per_month": 10**15}
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def histogram(limiter: str) -> dict[float, float]:
    """Cumulative bucket counts of the decision histogram, keyed by upper bound in seconds."""
    text = httpx.get(f"{limiter}/metrics", timeout=5).text
    found = re.findall(HISTOGRAM + r'\{le="([^"]+)"\} ([0-9.e+]+)', text)
    return {float(le): float(count) for le, count in found}


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The ``q`` quantile (seconds) of the observations between two scrapes, linear within a bucket."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    target, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= target:
            inside = cumulative - below
            upper = bound if bound != float("inf") else lower
            return lower + (upper - lower) * ((target - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return None


def wrk(url: str, keys: list[str], duration: int, connections: int, method: str, body: str | None, delay_ms: int = 0):
    script = WRK_SCRIPT % {
        "keys": ", ".join(json.dumps(k) for k in keys),
        "method": method,
        "body": "nil" if body is None else json.dumps(body),
        "delay": f"delay = function() return {delay_ms} end" if delay_ms else "",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", handle.name, url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    Path(handle.name).unlink()
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, p50, p99, int(non2xx.group(1)) if non2xx else 0


def measure(state: StackState, duration: int, connections: int) -> list[tuple[str, ...]]:
    endpoints = state.require_endpoints()
    limiter, gateway = endpoints.limiters[0], endpoints.gateway
    limited = [c.key for c in state.consumers_of("bench")]
    unlimited = [c.key for c in state.consumers_of("enterprise")]
    body = json.dumps(EXAMPLE_FINGERPRINT)
    runs = [
        ("limiter /authz", f"{limiter}/authz/identify", limited, "POST", None, connections, 0),
        ("limiter /authz (no redis)", f"{limiter}/authz/identify", unlimited, "POST", None, connections, 0),
        ("gateway /calibrate", f"{gateway}/calibrate", limited, "GET", None, connections, 0),
        ("gateway /identify", f"{gateway}/identify", limited, "POST", body, connections, 0),
        ("gateway /identify @~1.5K/s", f"{gateway}/identify", limited, "POST", body, 20, 9),
    ]
    rows = []
    for name, url, keys, method, payload, conns, delay in runs:
        before = histogram(limiter)
        rate, p50, p99, non2xx = wrk(url, keys, duration, conns, method, payload, delay)
        after = histogram(limiter)
        d50, d99 = quantile(before, after, 0.5), quantile(before, after, 0.99)
        fmt = lambda s: "-" if s is None else f"{s * 1000:.2f}"  # noqa: E731
        rows.append((name, f"{rate:,.0f}", p50, p99, fmt(d50), fmt(d99), str(non2xx)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("error: wrk not found on PATH", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="qq-limiter-bench-"))
    provider = LocalProvider(
        state_path=root / "stack.json",
        work_root=root,
        policy_path=bench_policy(root),
        replicas=1,
        stack_dir=REPO / "stack",
    )
    state = provider.up()
    try:
        rows = measure(state, args.duration, args.connections)
    finally:
        provider.down(state)
        shutil.rmtree(root, ignore_errors=True)
    header = ("run", "req/s", "wrk p50", "wrk p99", "decision p50 ms", "decision p99 ms", "non-2xx")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
