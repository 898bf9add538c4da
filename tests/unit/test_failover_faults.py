"""The failover and latency faults as the journal, the preflight and the run see them (no processes).

Journal times are seconds after ``T0``; outputs are what the actions return (hand-written).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quotaquake.chaos.journal import windows_of
from quotaquake.chaos.preflight import check_experiment, needed_redis
from quotaquake.context import RunRequest
from quotaquake.errors import UsageError
from quotaquake.faults import failover, latency, role_of
from quotaquake.faults.targets import ChaosTargetError
from quotaquake.policy import Policy, load_policy
from quotaquake.preflight import check_chaos_topology
from quotaquake.runfolder.models import Expectation, FaultKind, ServiceRole
from quotaquake.stack.state import Endpoints, RedisTopology, ServiceRecord, StackState, redis_topology
from tests.unit.test_chaos_journal import EPOCH0, run

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")
FAIL_CLOSED = Policy.model_validate({**POLICY.model_dump(), "degradation": {"on_redis_unavailable": "fail-closed"}})
KILL_OUTPUT = {
    "primary": "redis-1", "promoted": "redis-2", "fault_at": EPOCH0 + 10.3, "promoted_at": EPOCH0 + 12.6,
    "promotion_s": 2.3, "down_after_ms": 1000, "failover_timeout_ms": 3000, "replicated_until": EPOCH0 + 10.29,
    "offset_samples": [[EPOCH0 + 10.28, 100.0], [EPOCH0 + 10.29, 140.0]], "primary_offset": 140,
    "replicated_offset": 140,
}  # fmt: skip


def experiment(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((REPO / "chaos" / f"{name}.json").read_text())
    return loaded


def stack(topology: RedisTopology, tmp_path: Path) -> StackState:
    nodes = ["redis"] if topology != "sentinel" else ["redis-1", "redis-2", "sentinel-1"]
    services = {n: ServiceRecord(name=n, kind="sentinel" if n.startswith("sentinel") else "redis") for n in nodes}
    proxy = "http://127.0.0.1:9" if topology != "single" else None
    return StackState(
        provider="local", stack_id="s1", work_dir=str(tmp_path), state_file=str(tmp_path / "stack.json"),
        redis=topology, services=services,
        endpoints=Endpoints(gateway="http://127.0.0.1:9", redis_proxy_admin=proxy),
    )  # fmt: skip


# --- the journal -------------------------------------------------------------------------------------


def test_a_killed_primary_is_one_failover_window_carrying_the_measurements() -> None:
    journal = {
        "run": [run("kill-redis-primary", "kill_redis_primary", 10.0, 12.7, output=KILL_OUTPUT)],
        "rollbacks": [run("restore", "restore_all", 23.0, 25.0, output={"actions": ["restarted redis-1"],
                                                                         "healthy_after_s": 1.9})],
    }  # fmt: skip
    (window,) = windows_of(journal, POLICY)
    assert (window.kind, window.service, window.role) == (FaultKind.FAILOVER, "redis-1", ServiceRole.RATE_LIMIT_STORE)
    assert (window.expect, window.start, window.end) == (Expectation.FAIL_OPEN_LOCAL, EPOCH0 + 10.0, EPOCH0 + 25.0)
    assert window.details is not None
    assert window.details["promoted_at"] == EPOCH0 + 12.6 and window.details["healthy_after_s"] == 1.9
    assert windows_of(journal, FAIL_CLOSED)[0].expect is Expectation.FAIL_CLOSED


def test_await_replicated_set_ends_a_stale_primary_window_and_adds_the_demotion() -> None:
    paused = {**KILL_OUTPUT, "hold_s": 5.0, "resumed_at": EPOCH0 + 15.3}
    journal = {
        "run": [run("pause", "pause_redis_primary", 10.0, 15.4, output=paused, hold_s=5.0),
                run("await", "await_replicated_set", 15.4, 25.5, output={"demoted_at": EPOCH0 + 25.4,
                                                                         "stale_primary_seen": True})],
        "rollbacks": [run("restore", "restore_all", 36.0, 37.0)],
    }  # fmt: skip
    (window,) = windows_of(journal, POLICY)
    assert (window.start, window.end) == (EPOCH0 + 10.0, EPOCH0 + 25.5)
    assert window.details is not None
    assert (window.details["demoted_at"], window.details["stale_primary_seen"]) == (EPOCH0 + 25.4, True)


def test_a_failed_failover_action_broke_nothing_it_knew_of() -> None:
    journal = {"run": [run("kill-redis-primary", "kill_redis_primary", 10.0, 10.1, status="failed")]}
    assert windows_of(journal, POLICY) == []


def latency_output(delay_ms: int, at: float, decisions: float) -> dict[str, object]:
    buckets = {"0.005": decisions / 2, "0.05": decisions, "+Inf": decisions}
    return {"delay_ms": delay_ms, "at": EPOCH0 + at, "limiter_buckets": buckets,
            "limiter_counters": {"quotaquake_limiter_redis_errors": decisions / 10}}  # fmt: skip


def test_delays_are_windows_expecting_degradation_only_at_the_timeout() -> None:
    # 5 ms from 10 s, 50 ms from 20 s (ends the first), restore_all at 30 s switches the last one off
    journal = {
        "run": [run("delay-5", "delay_redis", 10.0, 10.1, output=latency_output(5, 10.05, 100), delay_ms=5),
                run("delay-50", "delay_redis", 20.0, 20.1, output=latency_output(50, 20.05, 400), delay_ms=50)],
        "rollbacks": [run("restore", "restore_all", 30.0, 31.0,
                          output={"actions": [], "redis_delay": latency_output(0, 30.05, 1000)})],
    }  # fmt: skip
    five, fifty = windows_of(journal, POLICY)
    assert (five.kind, five.service, five.role) == (FaultKind.LATENCY, "redis-proxy", ServiceRole.RATE_LIMIT_STORE)
    assert (five.expect, fifty.expect) == (Expectation.AVAILABLE, Expectation.FAIL_OPEN_LOCAL)
    assert (five.end, fifty.end) == (EPOCH0 + 20.1, EPOCH0 + 31.0)
    assert five.details is not None and fifty.details is not None
    assert five.details["limiter_buckets"] == {"0.005": 150.0, "0.05": 300.0, "+Inf": 300.0}  # 400 - 100 each
    assert fifty.details["limiter_buckets"] == {"0.005": 300.0, "0.05": 600.0, "+Inf": 600.0}
    assert fifty.details["delay_ms"] == 50 and fifty.details["cleared_at"] == EPOCH0 + 30.05
    assert fifty.details["proxy_restarted"] is False


def test_a_proxy_the_rollback_restarted_is_recorded_in_its_window() -> None:
    journal = {
        "run": [run("delay-50", "delay_redis", 10.0, 10.1, output=latency_output(50, 10.05, 100), delay_ms=50)],
        "rollbacks": [run("restore", "restore_all", 20.0, 21.0, output={"actions": ["restarted redis-proxy"]})],
    }  # fmt: skip
    (window,) = windows_of(journal, POLICY)
    assert window.details is not None and window.details["proxy_restarted"] is True
    assert window.details["cleared_at"] is None and window.details["limiter_buckets"] is None


def test_a_limiter_restarted_inside_a_latency_window_leaves_its_histogram_unknown() -> None:
    journal = {
        "run": [run("delay-5", "delay_redis", 10.0, 10.1, output=latency_output(5, 10.05, 100), delay_ms=5),
                run("clear", "clear_redis_delay", 20.0, 20.1, output=latency_output(0, 20.05, 40))],
    }  # fmt: skip
    (window,) = windows_of(journal, POLICY)
    assert window.details is not None and window.details["limiter_buckets"] is None


def test_replica_kill_records_ejection_and_recovery() -> None:
    killed = {"replicas": ["gateway-3"], "killed_at": EPOCH0 + 10.01, "ejected_after_s": {"gateway-3": 0.6}}
    journal = {
        "run": [run("kill", "kill_gateway_replicas", 10.0, 10.7, output=killed, count=1)],
        "rollbacks": [run("restore", "restore_all", 20.0, 20.4, output={"healthy_after_s": 0.3})],
    }
    (window,) = windows_of(journal, POLICY)
    assert (window.kind, window.service) == (FaultKind.REPLICA_LOSS, "gateway-3")
    assert window.details is not None
    assert (window.details["healthy_after_s"], window.details["restored_at"]) == (0.3, EPOCH0 + 20.4)


@pytest.mark.parametrize(
    ("service", "role"),
    [("redis-1", ServiceRole.RATE_LIMIT_STORE), ("sentinel-3", ServiceRole.RATE_LIMIT_STORE),
     ("redis-proxy", ServiceRole.RATE_LIMIT_STORE), ("gateway-2", ServiceRole.GATEWAY)],
)  # fmt: skip
def test_roles_of_the_replicated_set(service: str, role: ServiceRole) -> None:
    assert role_of(service) is role


# --- what the measurements mean ----------------------------------------------------------------------


def test_replicated_until_is_the_last_sample_the_replica_had() -> None:
    samples = [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]
    assert failover.replicated_until(samples, 25) == 2.0
    assert failover.replicated_until(samples, 30) == 3.0
    assert failover.replicated_until(samples, 5) is None  # lagged beyond every sample: loss not bounded
    assert failover.replicated_until(samples, None) is None


def test_the_promoted_node_comes_from_the_switch_message(tmp_path: Path) -> None:
    state = stack("sentinel", tmp_path)
    state.services["redis-2"] = state.services["redis-2"].model_copy(update={"url": "redis://:pw@127.0.0.1:7002/0"})
    assert failover.promoted_node(state, "qq 127.0.0.1 7001 127.0.0.1 7002") == "redis-2"
    assert failover.promoted_node(state, "qq 127.0.0.1 7001 127.0.0.1 9999") is None
    assert failover.promoted_node(state, "garbage") is None


# --- preflight and the run's choice of topology ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fitting"),
    [("redis-failover", ("sentinel",)), ("redis-failover-stale", ("sentinel",)),
     ("redis-latency", ("proxied", "sentinel")), ("redis-kill", None), ("gateway-replica-kill", None)],
)  # fmt: skip
def test_experiments_say_which_redis_they_need(name: str, fitting: tuple[str, ...] | None) -> None:
    assert needed_redis(experiment(name)) == fitting


@pytest.mark.parametrize(
    ("name", "topology", "option"),
    [("redis-failover", "single", "--redis sentinel"), ("redis-failover", "proxied", "--redis sentinel"),
     ("redis-latency", "single", "--redis proxied")],
)  # fmt: skip
def test_preflight_names_the_stack_up_option_in_one_line(name: str, topology: RedisTopology, option: str,
                                                         tmp_path: Path) -> None:  # fmt: skip
    with pytest.raises(ChaosTargetError, match=f"`quotaquake stack up {option}`") as raised:
        check_experiment(experiment(name), stack(topology, tmp_path))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("name", "topology"), [("redis-failover", "sentinel"), ("redis-latency", "sentinel"),
                                               ("redis-latency", "proxied")])  # fmt: skip
def test_preflight_accepts_a_stack_that_fits(name: str, topology: RedisTopology, tmp_path: Path) -> None:
    check_experiment(experiment(name), stack(topology, tmp_path))


def test_a_delay_the_proxy_has_no_level_for_is_refused(tmp_path: Path) -> None:
    odd = experiment("redis-latency")
    odd["method"][0]["provider"]["arguments"] = {"delay_ms": 7}  # type: ignore[index]
    with pytest.raises(ChaosTargetError, match="delay_ms 7: the Redis proxy has delay levels 1, 2, 5"):
        check_experiment(odd, stack("proxied", tmp_path))
    with pytest.raises(ChaosTargetError):
        latency.require_level(3)


def test_an_explicit_redis_that_cannot_serve_the_experiment_is_refused_before_anything_starts() -> None:
    request = RunRequest(scenario=Path("s.py"), rate=1, duration_s=10, chaos=REPO / "chaos" / "redis-failover.json",
                         redis="single")  # fmt: skip
    with pytest.raises(UsageError, match="needs --redis sentinel"):
        check_chaos_topology(request, experiment("redis-failover"))
    check_chaos_topology(RunRequest(scenario=Path("s.py"), rate=1, duration_s=10), experiment("redis-failover"))


def test_the_run_starts_the_redis_the_experiment_needs() -> None:
    from quotaquake.run import redis_for

    def request(chaos: str | None, redis: RedisTopology | None = None) -> RunRequest:
        path = REPO / "chaos" / f"{chaos}.json" if chaos else None
        return RunRequest(scenario=Path("s.py"), rate=1, duration_s=10, chaos=path, redis=redis)

    assert redis_for(request("redis-failover")) == "sentinel"
    assert redis_for(request("redis-latency")) == "proxied"
    assert redis_for(request("redis-kill")) == "single"
    assert redis_for(request(None)) == "single"
    assert redis_for(request("redis-kill", "sentinel")) == "sentinel"


def test_redis_topology_option_is_checked() -> None:
    assert redis_topology("sentinel") == "sentinel"
    with pytest.raises(UsageError, match="--redis: 'cluster' is not one of single, proxied, sentinel"):
        redis_topology("cluster")


@pytest.mark.parametrize(
    ("name", "why"),
    [("redis-failover", "Kong 3.9's OSS rate-limiting plugin has no Sentinel setting"),
     ("redis-failover-stale", "replicated Redis"), ("redis-latency", "Envoy redis_proxy")],
)  # fmt: skip
@pytest.mark.parametrize("provider", ["docker", "external"])
def test_a_failover_or_latency_experiment_is_not_applicable_to_a_kong_target(
    name: str, why: str, provider: str, tmp_path: Path
) -> None:
    kong = stack("single", tmp_path).model_copy(update={"provider": provider})
    with pytest.raises(ChaosTargetError, match=f"not applicable to a --provider {provider} target: .*{why}") as raised:
        check_experiment(experiment(name), kong)
    assert "\n" not in str(raised.value) and "stack up" not in str(raised.value)  # no local-only option offered
    request = RunRequest(scenario=Path("s.py"), rate=1, duration_s=10, chaos=REPO / "chaos" / f"{name}.json",
                         provider=provider)  # fmt: skip
    with pytest.raises(UsageError, match=f"{name}.json: activity '.*': not applicable to a --provider {provider} "):
        check_chaos_topology(request, experiment(name))  # before any stack starts


def test_the_other_experiments_still_apply_to_a_kong_target() -> None:
    request = RunRequest(scenario=Path("s.py"), rate=1, duration_s=10, chaos=REPO / "chaos" / "redis-kill.json",
                         provider="docker")  # fmt: skip
    check_chaos_topology(request, experiment("redis-kill"))
