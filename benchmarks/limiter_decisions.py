"""Benchmark the rate-limit service: decisions per second and decision latency, then the full chain,
on one or more Redis topologies side by side.

    .venv/bin/python benchmarks/limiter_decisions.py [--duration 10] [--connections 32]
        [--redis single,sentinel] [--rounds 1] [--only paced,authz]

Starts a one-replica local stack (Redis, Postgres, limiter, Envoy, stub API) per ``--redis`` topology in a
temp dir with the repository's policy plus a ``bench`` tier (limits so high every request is admitted, so
each decision runs the full Lua script and writes), drives it with wrk, prints one table, and stops
everything. Topologies (``quotaquake stack up --redis``): ``single`` (the limiter talks to one Redis),
``proxied`` (the same node behind an Envoy ``redis_proxy``), ``sentinel`` (the limiter asks three Sentinels
for the primary and talks to it through its ``redis_proxy`` listener; the primary replicates to a replica).

With several topologies every stack is up for the whole benchmark and the runs alternate between them
(run 1 on each topology, then run 2 on each, ...; ``--rounds`` repeats the alternation), so a ratio between
topologies compares measurements taken seconds apart on the same busy machine. The last table gives each
topology's median over the rounds divided by the first topology's.

Runs (wrk is closed-loop: N connections, each sends its next request when the previous one returned):
1. ``authz`` -- the limiter alone (the bench tier's keys in rotation).
2. ``authz-no-redis`` -- enterprise keys: unlimited, so no Redis call (HTTP + auth cost only).
3. ``calibrate`` -- Envoy answers itself: the ceiling of the generator + LB + replica.
4. ``identify`` -- full chain LB -> replica -> limiter -> Redis -> stub API.
5. ``paced`` -- the full chain at ~1.5K req/s, paced by wrk's ``delay()`` hook (20 connections x ~13 ms).
Decision p50/p99 come from the limiter's own histogram (``quotaquake_limiter_decision_seconds``,
interpolated within buckets), read before and after each run; ``<=2ms`` is the exact share of decisions in
the buckets up to 2 ms; ``degraded`` counts decisions made without Redis (a steady-state run has none);
``load1`` is the 1-minute load average when the run ended. Numbers are noisy: 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from quotaquake.services.stub_api import EXAMPLE_FINGERPRINT
from quotaquake.stack.local.provider import LocalProvider
from quotaquake.stack.local.sentinel import primary_node
from quotaquake.stack.state import RedisTopology, StackState, redis_topology

REPO = Path(__file__).resolve().parents[1]
HISTOGRAM = "quotaquake_limiter_decision_seconds_bucket"
DEGRADED = "quotaquake_limiter_degraded_decisions_total"
TARGET_S = 0.002  # the decision latency target: p99 <= 2 ms

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


@dataclass(frozen=True)
class Run:
    """One wrk run: ``target`` is ``limiter`` (its /authz) or ``gateway`` (the LB); ``connections`` None
    takes ``--connections``; ``delay_ms`` > 0 paces each connection (wrk's ``delay()``)."""

    key: str
    name: str
    target: str
    path: str
    tier: str
    method: str
    with_body: bool = False
    connections: int | None = None
    delay_ms: int = 0


RUNS = (
    Run("authz", "limiter /authz", "limiter", "/authz/identify", "bench", "POST"),
    Run("authz-no-redis", "limiter /authz (no redis)", "limiter", "/authz/identify", "enterprise", "POST"),
    Run("calibrate", "gateway /calibrate", "gateway", "/calibrate", "bench", "GET"),
    Run("identify", "gateway /identify", "gateway", "/identify", "bench", "POST", with_body=True),
    Run("paced", "gateway /identify @~1.5K/s", "gateway", "/identify", "bench", "POST", True, 20, 9),
)


@dataclass(frozen=True)
class Result:
    """One run on one topology: wrk's rate (req/s) and latency text, decision quantiles (seconds), the
    share of decisions within the target, degraded decisions, non-2xx answers, the load average after."""

    run: Run
    topology: str
    rate: float
    wrk_p50: str
    wrk_p99: str
    decision_p50: float | None
    decision_p99: float | None
    within_target: float | None
    degraded: float
    non2xx: int
    load1: float
    note: str


def bench_policy(folder: Path) -> Path:
    """The repository policy plus tier ``bench`` (admits everything: every decision writes)."""
    policy = yaml.safe_load((REPO / "stack" / "policy.yaml").read_text())
    policy["tiers"]["bench"] = {"per_minute": 1e9, "per_month": 10**15}
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def scrape(limiter: str) -> tuple[dict[float, float], float]:
    """Cumulative bucket counts of the decision histogram (keyed by upper bound, seconds) and the total of
    degraded decisions (all tiers)."""
    text = httpx.get(f"{limiter}/metrics", timeout=5).text
    found = re.findall(HISTOGRAM + r'\{le="([^"]+)"\} ([0-9.e+]+)', text)
    degraded = sum(float(v) for v in re.findall(DEGRADED + r"\{[^}]*\} ([0-9.e+]+)", text))
    return {float(le): float(count) for le, count in found}, degraded


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


def share_within(before: dict[float, float], after: dict[float, float], bound_s: float) -> float | None:
    """The share of observations between two scrapes at or below ``bound_s`` (a bucket bound: exact)."""
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    if total <= 0 or bound_s not in after:
        return None
    return (after[bound_s] - before.get(bound_s, 0.0)) / total


def wrk(
    url: str, keys: list[str], duration: int, connections: int, method: str, body: str | None, delay_ms: int = 0
) -> tuple[float, str, str, int]:
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


def primary_of(state: StackState) -> str | None:
    """The data node the Sentinels name primary (``None`` for a topology without Sentinels)."""
    return primary_node(state) if state.redis == "sentinel" else None


def measure(run: Run, state: StackState, duration: int, connections: int) -> Result:
    endpoints = state.require_endpoints()
    limiter = endpoints.limiters[0]
    base = limiter if run.target == "limiter" else endpoints.gateway
    keys = [c.key for c in state.consumers_of(run.tier)]
    body = json.dumps(EXAMPLE_FINGERPRINT) if run.with_body else None
    primary = primary_of(state)
    before, degraded_before = scrape(limiter)
    rate, p50, p99, non2xx = wrk(
        f"{base}{run.path}", keys, duration, run.connections or connections, run.method, body, run.delay_ms
    )
    after, degraded_after = scrape(limiter)
    primary_after = primary_of(state)
    note = "" if primary == primary_after else f"FAILOVER {primary} -> {primary_after}"
    return Result(
        run, state.redis, rate, p50, p99,
        quantile(before, after, 0.5), quantile(before, after, 0.99), share_within(before, after, TARGET_S),
        degraded_after - degraded_before, non2xx, os.getloadavg()[0], note,
    )  # fmt: skip


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def results_table(results: list[Result]) -> str:
    header = ("run", "redis", "req/s", "wrk p50", "wrk p99", "decision p50 ms", "decision p99 ms", "<=2ms",
              "degraded", "non-2xx", "load1", "note")  # fmt: skip
    return table([header, *(result_row(r) for r in results)])


def result_row(r: Result) -> tuple[str, ...]:
    within = "-" if r.within_target is None else f"{r.within_target:.2%}"
    decisions = (ms(r.decision_p50), ms(r.decision_p99), within, f"{r.degraded:.0f}")
    return (r.run.name, r.topology, f"{r.rate:,.0f}", r.wrk_p50, r.wrk_p99, *decisions, str(r.non2xx),
            f"{r.load1:.2f}", r.note)  # fmt: skip


def ratio_table(results: list[Result], topologies: list[str]) -> str:
    """Per run and topology after the first: median req/s and median decision p50/p99 over the rounds,
    divided by the first topology's."""

    def median(run: Run, topology: str, field: str) -> float | None:
        values = [getattr(r, field) for r in results if r.run == run and r.topology == topology]
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def ratio(run: Run, topology: str, field: str) -> str:
        mine, base = median(run, topology, field), median(run, topologies[0], field)
        return "-" if mine is None or not base else f"{mine / base:.2f}"

    header = ("run", f"redis / {topologies[0]}", "req/s", "decision p50", "decision p99")
    runs = list(dict.fromkeys(r.run for r in results))
    fields = ("rate", "decision_p50", "decision_p99")
    rows = [(run.name, t, *(ratio(run, t, f) for f in fields)) for run in runs for t in topologies[1:]]
    return table([header, *rows])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--redis", default="single", help="comma-separated Redis topologies, side by side (single,proxied,sentinel)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="times the alternation between topologies is repeated")
    parser.add_argument("--only", default="", help="comma-separated runs: " + ",".join(r.key for r in RUNS))
    args = parser.parse_args()
    args.topologies = list(dict.fromkeys(redis_topology(t.strip()) for t in args.redis.split(",") if t.strip()))
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in keys if k not in {r.key for r in RUNS}]
    if unknown or not args.topologies or args.rounds < 1:
        parser.error(f"--only: unknown run {unknown}" if unknown else "--redis and --rounds need at least one")
    args.runs = [r for r in RUNS if not keys or r.key in keys]
    return args


def start(topology: RedisTopology, root: Path) -> tuple[LocalProvider, StackState]:
    folder = root / topology
    folder.mkdir()
    provider = LocalProvider(
        state_path=folder / "stack.json",
        work_root=folder,
        policy_path=bench_policy(folder),
        replicas=1,
        redis=topology,
        stack_dir=REPO / "stack",
    )
    return provider, provider.up()


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        print("error: wrk not found on PATH", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="qq-limiter-bench-"))
    stacks: list[tuple[LocalProvider, StackState]] = []
    results: list[Result] = []
    started_load = os.getloadavg()
    try:
        for topology in args.topologies:
            stacks.append(start(topology, root))
        for run in args.runs:
            for _ in range(args.rounds):
                results.extend(measure(run, state, args.duration, args.connections) for _, state in stacks)
    finally:
        for provider, state in stacks:
            provider.down(state)
        shutil.rmtree(root, ignore_errors=True)
    print("load average at start (1/5/15 min): " + " ".join(f"{x:.2f}" for x in started_load))
    print("load average at end   (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(results_table(results))
    if len(args.topologies) > 1:
        print(f"\nmedian over {args.rounds} round(s), relative to {args.topologies[0]}:")
        print(ratio_table(results, args.topologies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
