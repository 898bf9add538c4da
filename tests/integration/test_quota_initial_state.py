"""Known initial quota state on the real local stack: providers reset consumers, and back-to-back runs on
one long-lived stack are judged correctly (issue 11).

Before, the second ``quotaquake run`` (or plain Locust run) on a stack failed quota-accuracy for a correct
limiter: the model assumed full buckets while the limiter remembered the first run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from quotaquake.services.limiter.keys import bucket_key, current_month, month_key, seed_month_usage
from quotaquake.services.stub_api import EXAMPLE_FINGERPRINT
from quotaquake.stack import kong
from quotaquake.stack.docker.provider import DockerProvider
from quotaquake.stack.registry import provider_for
from quotaquake.stack.state import Consumer, StackState

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CI_THRESHOLDS = Path(__file__).with_name("thresholds-ci.yaml")
SHORT_RUN = ("--scenario", "scenarios/tiered.py", "--rate", "150", "--duration", "8s")


def spend(gateway: str, consumer: Consumer, count: int) -> httpx.Response:
    """``count`` /identify requests of ``consumer``; returns the last response."""
    with httpx.Client(base_url=gateway, timeout=5.0) as client:
        responses = [
            client.post("/identify", headers={"x-api-key": consumer.key}, json=EXAMPLE_FINGERPRINT)
            for _ in range(count)
        ]
    return responses[-1]


def test_local_reset_forgets_buckets_and_month_counters(
    stack: StackState, fresh_consumer: Callable[[str], Consumer]
) -> None:
    endpoints = stack.require_endpoints()
    assert endpoints.redis is not None
    reset, untouched = fresh_consumer("free"), fresh_consumer("free")
    for consumer in (reset, untouched):
        seed_month_usage(endpoints.redis, consumer.id, 40_000.0)
        seed_month_usage(endpoints.redis, consumer.id, 7.0, month="2020-01")
        assert spend(endpoints.gateway, consumer, 10).status_code == 200
    provider_for(stack).reset_consumers(stack, [reset])
    client = redis.Redis.from_url(endpoints.redis)
    try:
        assert not client.exists(bucket_key(reset.id), month_key(reset.id, current_month()))
        assert not client.exists(month_key(reset.id, "2020-01"))
        assert client.exists(bucket_key(untouched.id), month_key(untouched.id, "2020-01")) == 2
    finally:
        client.close()
    fresh = spend(endpoints.gateway, reset, 1)
    assert fresh.headers["x-ratelimit-remaining"] == "149"  # a full bucket of 150, minus this request
    assert fresh.headers["x-ratelimit-remaining-month"] == "49999"
    kept = spend(endpoints.gateway, untouched, 1)
    assert int(kept.headers["x-ratelimit-remaining"]) <= 140
    assert kept.headers["x-ratelimit-remaining-month"] == str(50_000 - 40_011)


def test_kong_counters_are_deleted_by_consumer_id_and_client_ip(stack: StackState, tmp_path: Path) -> None:
    # Kong's key format, on a real Redis (the local stack's): only the named identifiers' counters go
    redis_url = stack.require_endpoints().redis
    assert redis_url is not None
    route = service = "00000000-0000-0000-0000-000000000000"
    gone = kong.entity_id("consumer", "free-1"), "198.51.100.7"
    kept = kong.entity_id("consumer", "free-2"), "198.51.100.70"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for identifier in (*gone, *kept):
            client.set(f"ratelimit:{route}:{service}:{identifier}:1767225600000:minute", 3)
            client.set(f"ratelimit:{route}:{service}:{identifier}:1767225600000:month", 9)
        docker_state = stack.model_copy(update={"provider": "docker"})
        consumers = [
            Consumer(id="free-1", tier="free", key="k"),
            Consumer(id="anon:198.51.100.7", tier="anonymous", key=""),
        ]
        DockerProvider(state_path=tmp_path / "stack.json").reset_consumers(docker_state, consumers)
        left = sorted(client.scan_iter(match="ratelimit:*"))
        assert left == sorted(
            f"ratelimit:{route}:{service}:{i}:1767225600000:{p}" for i in kept for p in ("minute", "month")
        )
        client.delete(*left)
    finally:
        client.close()


def quotaquake(state: StackState, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUOTAQUAKE_STATE": stack_state_file(state)}
    command = [sys.executable, "-m", "quotaquake", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


def stack_state_file(state: StackState) -> str:
    return state.state_file


def verdicts(run_dir: Path, output: str) -> dict[str, dict[str, object]]:
    path = run_dir / "verdicts.json"
    assert path.exists(), output[-4000:]
    return {v["check"]: v for v in json.loads(path.read_text())["verdicts"]}


def initial_state(run_dir: Path) -> str:
    return str(json.loads((run_dir / "run.json").read_text())["initial_state"])


def test_back_to_back_quotaquake_runs_both_judge_quotas(stack: StackState, tmp_path: Path) -> None:
    for n in (1, 2):
        run_dir = tmp_path / f"run-{n}"
        done = quotaquake(stack, "run", *SHORT_RUN, "--out", str(run_dir), "--thresholds", str(CI_THRESHOLDS))
        output = done.stdout + done.stderr
        quota = verdicts(run_dir, output)["quota-accuracy"]
        assert quota["status"] == "pass", (n, quota["summary"], output[-3000:])
        assert initial_state(run_dir) == "reset"
    assert Path(stack.state_file).exists(), "a run on the running stack leaves it up"


def locust_run(state: StackState, run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO / "scenarios" / "tiered.py"),
        "--headless",
        "--run-time",
        "8s",
        "--stop-timeout",
        "5",
        "--qq-rate",
        "150",
        "--qq-state",
        stack_state_file(state),
        "--qq-out",
        str(run_dir),
        *args,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_back_to_back_plain_locust_runs_both_judge_quotas(stack: StackState, tmp_path: Path) -> None:
    for n in (1, 2):
        run_dir = tmp_path / f"locust-{n}"
        ran = locust_run(stack, run_dir)
        assert ran.returncode == 0, ran.stderr[-3000:]
        checked = quotaquake(stack, "verify", str(run_dir), "--thresholds", str(CI_THRESHOLDS))
        quota = verdicts(run_dir, checked.stdout + checked.stderr)["quota-accuracy"]
        assert quota["status"] == "pass", (n, quota["summary"])
        assert initial_state(run_dir) == "reset"
    # the same without a reset: the limiter remembers the runs before; a correct limiter is never failed
    run_dir = tmp_path / "locust-kept"
    ran = locust_run(stack, run_dir, "--qq-initial-state", "keep")
    assert ran.returncode == 0, ran.stderr[-3000:]
    checked = quotaquake(stack, "verify", str(run_dir), "--thresholds", str(CI_THRESHOLDS))
    quota = verdicts(run_dir, checked.stdout + checked.stderr)["quota-accuracy"]
    assert quota["status"] in ("pass", "unknown"), quota["summary"]
    assert initial_state(run_dir) == "unknown"
