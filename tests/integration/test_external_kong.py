"""The external path end to end against a Kong 3.9 stand-in (``tests/support/kong_emulator.py``: key-auth
with an anonymous consumer and the rate-limiting plugin's redis-sync semantics over a real Redis): a target
file with a ``kong:`` section, ``quotaquake run --provider external``, Locust recording Kong's headers, and
verification with the Kong model. No Kong runs here; the stand-in decides with the same replay of
``handler.lua`` the unit tests check against Kong's own spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from quotaquake.faults.base import storage_expectation
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import Expectation, FaultKind, FaultWindow, ServiceRole
from quotaquake.stack.docker.handles import wait_until
from quotaquake.stack.local.provider import binary
from quotaquake.stack.processes import free_port
from quotaquake.stack.readiness import is_ready
from quotaquake.stack.state import StackState
from quotaquake.verify.engine import verify_run
from tests.support.kong_emulator import Emulated, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
CI_THRESHOLDS = Path(__file__).with_name("thresholds-ci.yaml")
TIERS = {"free": {"minute": 100, "month": 50000}, "pro": {"minute": 1000, "month": 1000000}, "enterprise": {}}


def delete_kong_keys(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match="ratelimit:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def kong_keys_removed(stack: StackState) -> Iterator[None]:
    """The stack's Redis is shared by the session's tests: leave no Kong counter behind."""
    yield
    url = stack.require_endpoints().redis
    if url is not None:
        delete_kong_keys(url)


def emulated(redis_url: str, run_id: str, **settings: object) -> Emulated:
    """Consumers with ids unique to the test; Kong's counters emptied first (keyless ones are shared)."""
    delete_kong_keys(redis_url)
    consumers = {
        f"key-{tier}-{n}-{run_id}": (f"{tier}-{n}-{run_id}", limits) for tier, limits in TIERS.items() for n in (1, 2)
    }
    return Emulated(redis_url, consumers, {"minute": 20}, **settings)  # type: ignore[arg-type]


def target_file(folder: Path, gateway: str, config: Emulated) -> Path:
    rows = ["id,tier,key"] + [f"{cid},{cid.split('-')[0]},{key}" for key, (cid, _) in config.consumers.items()]
    (folder / "consumers.csv").write_text("\n".join(rows) + "\n")
    path = folder / "target.yaml"
    path.write_text(
        f"gateway: {gateway}\nconsumers: consumers.csv\npolicy: {REPO / 'stack' / 'policy.yaml'}\n"
        "calibration_path: /calibrate\n"
        "kong:\n  policy: redis\n  redis_timeout_ms: 50\n  replicas: 1\n  forwarded_ip_trusted: true\n"
        "  clock_skew_ms: 5\n"
    )
    return path


def run_external(tmp_path: Path, target: Path, *args: str) -> tuple[int, dict[str, dict[str, object]], str]:
    out = tmp_path / "run"
    env = {**os.environ, "QUOTAQUAKE_STATE": str(tmp_path / "stack.json")}
    command = [sys.executable, "-m", "quotaquake", "run", "--provider", "external", "--target", str(target),
               "--out", str(out), "--thresholds", str(CI_THRESHOLDS), *args]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    verdicts_file = out / "verdicts.json"
    assert verdicts_file.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    verdicts = {v["check"]: v for v in json.loads(verdicts_file.read_text())["verdicts"]}
    return result.returncode, verdicts, result.stdout + result.stderr


BURST = ("--scenario", "scenarios/burst.py", "--rate", "60", "--duration", "20s")
RUN_WITH_STARTUP_S = 35.0  # the 20 s of load, Locust's start and the target's checks on a busy machine


def test_a_correct_kong_passes_a_burst_run_through_the_external_path(stack: StackState, tmp_path: Path) -> None:
    redis_url = stack.require_endpoints().redis
    assert redis_url is not None
    config = emulated(redis_url, tmp_path.name[-12:])
    with running(config) as gateway:
        code, verdicts, output = run_external(tmp_path, target_file(tmp_path, gateway, config), *BURST)
    statuses = {name: v["status"] for name, v in verdicts.items()}
    assert statuses["quota-accuracy"] == "pass", output[-3000:]
    assert statuses["headers"] == "pass", verdicts["headers"]
    assert statuses["policy-expressiveness"] == "not-applicable"
    assert statuses["prometheus-crosscheck"] == statuses["limiter-latency"] == "not-applicable"
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["model"] == "kong" and run["kong"]["policy"] == "redis" and run["kong"]["redis_timeout_ms"] == 50
    assert "fail" not in statuses.values(), output[-3000:]
    # no Prometheus declared: nothing is unknown for want of it. What 20 s cannot decide stays unknown (the error
    # budget's 0.1 % needs ~3000 requests; a busy machine may leave the generator's health and latency open)
    unknown = {name for name, status in statuses.items() if status == "unknown"}
    assert unknown <= {"generator-health", "latency", "error-budget"}, verdicts
    assert code == (3 if unknown else 0)


def inside_one_minute(run_s: float) -> None:
    """Wait until ``run_s`` fits in what is left of the current UTC minute. Kong's minute windows are aligned
    to the calendar: a 20 s burst split over two windows may stay under the limit in both, and then no request
    is rejected, so a Kong that does not count rejections is indistinguishable from a correct one (the check
    rightly passes such a history)."""
    left_s = 60.0 - time.time() % 60.0
    if left_s < run_s:
        time.sleep(left_s + 0.5)


def test_a_kong_that_does_not_count_rejections_fails(stack: StackState, tmp_path: Path) -> None:
    redis_url = stack.require_endpoints().redis
    assert redis_url is not None
    config = emulated(redis_url, tmp_path.name[-12:], defect="no-count-429")
    with running(config) as gateway:
        target = target_file(tmp_path, gateway, config)
        inside_one_minute(RUN_WITH_STARTUP_S)
        code, verdicts, output = run_external(tmp_path, target, *BURST)
    evidence = verdicts["quota-accuracy"]["evidence"]
    rejected = sum(c["rejected"] for c in evidence["consumers"] if c["tier"] == "free")  # type: ignore[index]
    assert rejected > 0, "the defect shows only once a limit is reached"
    assert verdicts["quota-accuracy"]["status"] == "fail", output[-3000:]
    assert code == 1


def test_a_consumer_whose_limit_differs_from_the_declared_one_fails_naming_it(
    stack: StackState, tmp_path: Path
) -> None:
    redis_url = stack.require_endpoints().redis
    assert redis_url is not None
    suffix = tmp_path.name[-12:]
    config = emulated(redis_url, suffix, overrides={f"free-2-{suffix}": {"minute": 120, "month": 50000}})
    with running(config) as gateway:
        code, verdicts, output = run_external(tmp_path, target_file(tmp_path, gateway, config), *BURST)
    quota = verdicts["quota-accuracy"]
    assert quota["status"] == "fail" and f"free-2-{suffix}" in str(quota["summary"]), output[-3000:]
    assert verdicts["headers"]["status"] == "fail" and code == 1


def test_a_redis_kill_is_judged_as_the_plugin_declares(tmp_path: Path) -> None:
    # a Redis of its own, killed and restarted empty while a tiered run flows; fault_tolerant: admitted with no
    # header and no limit (handler.lua:144-152), which the degradation check reports as declared
    port = free_port()
    argv = [binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis_process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: is_ready(redis_url), 10.0, "redis")
    fault: list[float] = []

    def kill_and_restart() -> None:
        nonlocal redis_process
        time.sleep(9.0)
        fault.append(time.time())
        redis_process.kill()
        redis_process.wait()
        time.sleep(8.0)
        redis_process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_until(lambda: is_ready(redis_url), 10.0, "redis")
        fault.append(time.time())

    config = emulated(redis_url, tmp_path.name[-12:])
    chaos = threading.Thread(target=kill_and_restart)
    try:
        with running(config) as gateway:
            target = target_file(tmp_path, gateway, config)
            chaos.start()
            run_external(tmp_path, target, "--scenario", "scenarios/tiered.py", "--rate", "40", "--duration", "30s")
            chaos.join()
    finally:
        redis_process.kill()
        redis_process.wait()
    folder = RunFolder(tmp_path / "run")
    info = folder.read_info()
    role = ServiceRole.RATE_LIMIT_STORE
    expect = storage_expectation(info.policy, role, info.kong)  # what the run would derive from its journal
    assert expect is Expectation.FAIL_OPEN_UNLIMITED
    folder.write_faults([FaultWindow(name="kill-redis", kind=FaultKind.OUTAGE, service="redis", role=role,
                                     expect=expect, start=fault[0], end=fault[1])])  # fmt: skip
    outcome = verify_run(tmp_path / "run", CI_THRESHOLDS)
    degradation, quota = outcome.verdict("degradation"), outcome.verdict("quota-accuracy")
    assert degradation.status == "pass" and "admitted with no limit" in degradation.summary, degradation
    assert quota.status in ("pass", "unknown") and quota.status != "fail", quota.summary
    assert outcome.verdict("degraded-over-admission").status == "not-applicable"


def test_a_second_run_right_after_is_never_a_false_fail(stack: StackState, tmp_path: Path) -> None:
    # an external target cannot be reset: the second run starts in windows the first one spent (30-day month
    # keys, minute keys of the same minute). Headers pin those counts (Remaining = limit - count_before - 1);
    # a window exhausted before the run stays undecided, never failed
    redis_url = stack.require_endpoints().redis
    assert redis_url is not None
    config = emulated(redis_url, tmp_path.name[-12:])
    with running(config) as gateway:
        target = target_file(tmp_path, gateway, config)
        (tmp_path / "first").mkdir()
        run_external(tmp_path / "first", target, *BURST)
        _, verdicts, output = run_external(tmp_path, target, *BURST)
    quota = verdicts["quota-accuracy"]
    assert quota["status"] in ("pass", "unknown"), output[-3000:]
    if quota["status"] == "unknown":
        assert "before the run" in str(quota["summary"]), quota["summary"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["initial_state"] == "unknown"
