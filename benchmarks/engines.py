"""k6 vs Locust as quotaquake's load engine, at the same fixed rate, side by side: CPU per request and
how well each keeps the rate.

Both engines run the tiered scenario (``scenarios/tiered.py --qq-target calibrate``: the GET route every
replica answers itself) through quotaquake's own engine code (``run_locust`` / ``run_k6`` with one
``RunContext`` each), so each records the full history, as a real run does. The target is a throwaway
direct-response Envoy (``tests/support/direct_envoy.py``, 2 worker threads), or a running stack's load
balancer with ``--state``.

Per run:

* engine CPU per request: user + system CPU of the engine's processes (``RUSAGE_CHILDREN``: Locust and its
  workers, or k6) / requests; orchestrator CPU per request: this process meanwhile (progress polling, and
  for k6 the conversion of its samples to the history);
* rate accuracy from the history (``quotaquake.load.measure.arrival_stats``): the steady send rate (first
  and last second trimmed) against the target, and the lag ``sent - intended`` (p50, p99);
* k6's dropped iterations (a tick without a free VU: the request was never sent).

Engines alternate ``--repeat`` times (Locust first); the machine is shared, so read the load average.

    .venv/bin/python benchmarks/engines.py --rate 1500 --duration 20
    .venv/bin/python benchmarks/engines.py --state .quotaquake/stack.json --rate 1000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.support

from quotaquake.context import RunContext, RunRequest
from quotaquake.load.k6 import run_k6
from quotaquake.load.measure import arrival_stats
from quotaquake.load.runner import run_locust
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import read_history
from quotaquake.stack.state import read_state
from tests.support.direct_envoy import DirectEnvoy

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "tiered.py"


@dataclass(frozen=True)
class Measured:
    engine: str
    requests: int
    engine_cpu_us: float  # per request
    orchestrator_cpu_us: float  # per request
    steady_rate: float  # req/s
    lag_p50_ms: float
    lag_p99_ms: float
    dropped: int


def cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_engine(engine: str, state: Path, rate: float, duration_s: float, out: Path) -> Measured:
    """One run of ``engine`` at ``rate`` req/s for ``duration_s`` into ``out``, measured."""
    request = RunRequest(
        scenario=SCENARIO,
        rate=rate,
        duration_s=duration_s,
        state_path=state,
        engine=engine,
        locust_args=("--qq-target", "calibrate"),
    )
    stack = read_state(state)
    folder = RunFolder(out).create()
    context = RunContext(
        request=request,
        run_id=out.name,
        folder=folder,
        state=stack,
        policy=load_policy(Path(stack.policy_file) if stack.policy_file else REPO / "stack" / "policy.yaml"),
        processes=1,
        console=Console(quiet=True),
    )
    run: Callable[[RunContext], object] = run_k6 if engine == "k6" else run_locust
    children, me = cpu_s(resource.RUSAGE_CHILDREN), cpu_s(resource.RUSAGE_SELF)
    run(context)
    engine_cpu, own_cpu = cpu_s(resource.RUSAGE_CHILDREN) - children, cpu_s(resource.RUSAGE_SELF) - me
    history = read_history(folder.history_dir)
    stats = arrival_stats(history)
    record = folder.read_engine()
    requests = max(1, len(history))
    return Measured(
        engine=engine,
        requests=len(history),
        engine_cpu_us=engine_cpu / requests * 1e6,
        orchestrator_cpu_us=own_cpu / requests * 1e6,
        steady_rate=stats.steady_rate,
        lag_p50_ms=stats.lag_p50_ms,
        lag_p99_ms=stats.lag_p99_ms,
        dropped=(record.dropped_iterations or 0) if record is not None else 0,
    )


def report(runs: list[Measured], rate: float, duration_s: float) -> None:
    load = os.getloadavg()
    print(f"target {rate:g} req/s for {duration_s:g} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"{'engine':<7} {'requests':>9} {'engine CPU':>11} {'+ orchestr.':>12} {'steady rate':>12} {'vs target':>10} "
        f"{'lag p50':>8} {'lag p99':>8} {'dropped':>8}"
    )
    for m in runs:
        print(
            f"{m.engine:<7} {m.requests:>9,} {m.engine_cpu_us:>8.0f} us {m.orchestrator_cpu_us:>9.0f} us "
            f"{m.steady_rate:>8,.1f}/s {m.steady_rate / rate - 1:>+10.2%} {m.lag_p50_ms:>5.2f} ms "
            f"{m.lag_p99_ms:>5.2f} ms {m.dropped:>8,}"
        )


def target(state: Path | None, tmp: Path) -> AbstractContextManager[Path]:
    """The state file to run against: ``state`` as given, or a direct-response Envoy's."""
    if state is not None:
        return nullcontext(state)

    class Direct:
        def __enter__(self) -> Path:
            self.envoy = DirectEnvoy(tmp / "envoy", concurrency=2).__enter__()
            return self.envoy.state_path

        def __exit__(self, *exc: object) -> None:
            self.envoy.__exit__(None, None, None)

    return Direct()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1500.0, help="req/s, both engines")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine, alternating")
    parser.add_argument("--state", type=Path, default=None, help="a running stack's state file (default: direct Envoy)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qq-engines-") as tmp_name:
        tmp = Path(tmp_name)
        with target(args.state, tmp) as state:
            runs = []
            for n in range(args.repeat):
                for engine in ("locust", "k6"):
                    runs.append(run_engine(engine, state, args.rate, args.duration, tmp / f"{engine}-{n}"))
        report(runs, args.rate, args.duration)


if __name__ == "__main__":
    main()
