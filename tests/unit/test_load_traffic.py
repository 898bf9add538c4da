"""Traffic mix: callers from the state file, pseudo-tiers, weights, request bodies the stub API accepts."""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from quotaquake.errors import UsageError
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.traffic import BODIES, build_mix, callers_of, endpoint_for
from quotaquake.policy import load_policy
from quotaquake.stack.state import Consumer, Endpoints, StackState

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")


def state(*tiers: str) -> StackState:
    consumers = [Consumer(id=f"{t}-{n}", tier=t, key=f"k-{t}-{n}") for t in tiers for n in (1, 2, 3)]
    return StackState(
        provider="local",
        stack_id="s",
        work_dir="/tmp",
        state_file="/tmp/s.json",
        endpoints=Endpoints(gateway="http://127.0.0.1:1"),
        consumers=consumers,
    )


def options(*argv: str) -> ScenarioOptions:
    parser = argparse.ArgumentParser()
    add_options(parser, ScenarioDefaults())
    return ScenarioOptions.from_namespace(parser.parse_args(list(argv)))


def test_callers_of_tiers_and_pseudo_tiers() -> None:
    st, opts = state("free", "pro"), options("--qq-anon-ips", "3", "--qq-consumers", "2")
    free = callers_of("free", st, opts)
    assert [c.consumer for c in free] == ["free-1", "free-2"]
    assert free[0].headers == {"x-api-key": "k-free-1"}
    anon = callers_of("anonymous", st, opts)
    assert [c.headers["x-forwarded-for"] for c in anon] == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    assert anon[0].consumer == "anon:198.51.100.1" and anon[0].tier == "anonymous"
    invalid = callers_of("invalid", st, opts)
    assert {c.tier for c in invalid} == {"invalid"} and all("x-api-key" in c.headers for c in invalid)


def test_mix_follows_the_weights() -> None:
    opts = options("--qq-tiers", "free=3,pro=1", "--qq-endpoints", "/identify=1,/compare=1")
    mix, warnings = build_mix(state("free", "pro"), POLICY, opts)
    rng = random.Random(7)
    picks = [mix.pick(rng) for _ in range(20_000)]
    tiers = Counter(caller.tier for caller, _ in picks)
    assert tiers["free"] / len(picks) == pytest.approx(0.75, abs=0.015)
    paths = Counter(endpoint.path for _, endpoint in picks)
    assert paths["/compare"] / len(picks) == pytest.approx(0.5, abs=0.015)
    assert warnings == []


def test_tiers_without_consumers_are_skipped_with_a_warning() -> None:
    mix, warnings = build_mix(state("free"), POLICY, options("--qq-tiers", "free=1,partner=1"))
    assert mix.tiers.items == ["free"]
    assert len(warnings) == 1 and "partner" in warnings[0]


def test_no_callers_at_all_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--qq-tiers"):
        build_mix(state(), POLICY, options("--qq-tiers", "free=1"))


def test_calibrate_target_sends_everything_to_the_calibration_route() -> None:
    mix, _ = build_mix(state("free"), POLICY, options("--qq-target", "calibrate", "--qq-tiers", "free=1"))
    assert [(e.path, e.method) for e in mix.endpoints.items] == [("/calibrate", "GET")]


def test_endpoints_have_policy_costs_and_methods() -> None:
    assert endpoint_for("/compare", POLICY).cost == 2.0
    health = endpoint_for("/health", POLICY)
    assert (health.method, health.cost, health.body) == ("GET", 0.0, None)
    identify = endpoint_for("/identify", POLICY)
    assert identify.method == "POST" and json.loads(identify.body or b"") == BODIES["/identify"]


def test_bodies_are_valid_for_the_stub_api() -> None:
    models = pytest.importorskip("quotaquake.services.stub_api.models")
    models.Fingerprint.model_validate(BODIES["/identify"])
    models.CompareRequest.model_validate(BODIES["/compare"])
    models.BatchRequest.model_validate(BODIES["/batch"])
