"""CPU the open model and the recorder add per request, without network: schedule, mix, history row.

Runs the per-request work of ``OpenModelUser.send_due_request`` minus the HTTP call (``ArrivalSchedule``,
``TrafficMix.pick``, ``RequestContext``) plus ``HistoryRecorder.on_request`` on a realistic 429 response
(geventhttpclient ``Headers`` with the limiter's headers), and the Parquet flush amortised at one part per
``FLUSH_ROWS`` rows (one second at 5K req/s per process). Compare the result with plain Locust's CPU per
request from ``benchmarks/load_generator.py`` (~200 us/request measured there).

    .venv/bin/python benchmarks/load_hotpath.py --rows 200000 --plain-us 200
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from geventhttpclient.header import Headers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.support

from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.recorder import CONTEXT_KEY, HistoryRecorder, RequestContext
from quotaquake.load.runtime import policy_of
from quotaquake.load.schedule import ArrivalSchedule, EpochClock
from quotaquake.load.traffic import build_mix
from quotaquake.runfolder import RunFolder
from tests.support.direct_envoy import fake_state

FLUSH_ROWS = 5000


class Response:
    """What the recorder reads of a FastResponse: ``status_code`` and ``headers``."""

    def __init__(self) -> None:
        self.status_code = 429
        self.headers = Headers(
            [
                ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "12"),
                ("retry-after", "1"),
                ("x-ratelimit-limit-month", "50000"),
                ("x-quotaquake-replica", "gateway-2"),
                ("content-type", "application/json"),
                ("content-length", "40"),
                ("date", "now"),
                ("server", "envoy"),
            ]
        )


def run(rows: int, out: Path) -> float:
    """Seconds of CPU (process time) per request over ``rows`` requests."""
    parser = argparse.ArgumentParser()
    add_options(parser, ScenarioDefaults())
    options = ScenarioOptions.from_namespace(parser.parse_args(["--qq-out", str(out)]))
    state = fake_state("http://127.0.0.1:1", out, out / "stack.json")
    mix, _ = build_mix(state, policy_of(state), options)
    clock, rng, response = EpochClock(), random.Random(1), Response()
    schedule = ArrivalSchedule(start_ns=clock.now_ns(), interval_ns=1, phase=0.0)
    recorder = HistoryRecorder(folder=lambda: RunFolder(out), worker="bench")
    started = time.process_time()
    for n in range(rows):
        now = clock.now_ns()
        intended = schedule.take(now)
        caller, endpoint = mix.pick(rng)
        headers = caller.json_headers if endpoint.body is not None else caller.headers
        context = {
            CONTEXT_KEY: RequestContext(
                intended, clock.now_ns(), caller.consumer, caller.tier, endpoint.path, endpoint.cost
            )
        }
        merged = {**{}, **context}  # what Locust's request() does with user.context()
        assert headers is not None
        recorder.on_request(
            request_type=endpoint.method,
            name=endpoint.path,
            response_time=1.0,
            response_length=40,
            response=response,
            context=merged,
            exception=None,
        )
        if n % FLUSH_ROWS == FLUSH_ROWS - 1:
            recorder.flush()
    recorder.flush()
    return (time.process_time() - started) / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--plain-us", type=float, default=200.0, help="plain Locust CPU per request, us")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qq-hotpath-") as tmp:
        per_request_us = run(args.rows, Path(tmp)) * 1e6
    print(
        f"open model + recorder: {per_request_us:.1f} us CPU per request "
        f"= {per_request_us / args.plain_us:.1%} of plain Locust's {args.plain_us:.0f} us/request"
    )


if __name__ == "__main__":
    main()
