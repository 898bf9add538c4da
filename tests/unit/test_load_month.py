"""quota-month seeds the counter the target reads: the embedded limiter's key, or Kong's own."""

from __future__ import annotations

import argparse
from pathlib import Path

from quotaquake.load.month import month_seeds
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.runtime import ScenarioRuntime
from quotaquake.load.schedule import EpochClock
from quotaquake.load.traffic import build_mix
from quotaquake.policy import load_policy
from quotaquake.stack import kong
from quotaquake.stack.state import Consumer, Endpoints, StackState

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")


def runtime(model: str, *argv: str) -> ScenarioRuntime:
    parser = argparse.ArgumentParser()
    add_options(parser, ScenarioDefaults(tiers="free=1,pro=1,enterprise=1"))
    options = ScenarioOptions.from_namespace(parser.parse_args(list(argv)))
    state = StackState(
        provider="docker", stack_id="qq-t", work_dir="/tmp", state_file="s.json", model=model,  # type: ignore[arg-type]
        kong=kong.spec_for(POLICY, replicas=3) if model == "kong" else None,
        endpoints=Endpoints(gateway="http://127.0.0.1:1", redis="redis://127.0.0.1:1/0"),
        consumers=[Consumer(id=f"{t}-1", tier=t, key=f"k-{t}") for t in ("free", "pro", "enterprise")],
    )  # fmt: skip
    mix, _ = build_mix(state, POLICY, options)
    return ScenarioRuntime(options, state, POLICY, mix, EpochClock())


def test_kong_seeds_whole_requests_from_its_declared_month_limit() -> None:
    seeds = month_seeds(runtime("kong", "--qq-month-headroom", "2.5"))
    assert {(s.consumer, s.used) for s in seeds} == {("free-1", 49_997.0), ("pro-1", 999_997.0)}  # floor
    embedded = month_seeds(runtime("token-bucket", "--qq-month-headroom", "2.5"))
    assert {(s.consumer, s.used) for s in embedded} == {("free-1", 49_997.5), ("pro-1", 999_997.5)}
