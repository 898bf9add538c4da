from pathlib import Path

import pytest
import yaml

from quotaquake.context import parse_duration
from quotaquake.errors import UsageError
from quotaquake.policy import load_policy
from quotaquake.stack.local.gateway_config import ReplicaPorts, render_lb, render_prometheus, render_replica
from quotaquake.stack.state import StackState, read_state, write_state

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "stack" / "gateway"


def replica_config() -> dict:
    policy = load_policy(REPO / "stack" / "policy.yaml")
    text = render_replica(
        TEMPLATES,
        ReplicaPorts("gateway-2", 8001, 9001, 7001),
        policy=policy,
        stub_port=6001,
        calibration_path="/calibrate",
        authz_timeout_s=0.5,
    )
    return yaml.safe_load(text)


def routes(config: dict) -> list[dict]:
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["route_config"]["virtual_hosts"][0]["routes"]


def test_replica_routes_api_paths_through_the_limiter_and_answers_calibration_itself():
    config = replica_config()
    by_path = {r["match"].get("path", r["match"].get("prefix")): r for r in routes(config)}
    for path in ("/identify", "/compare", "/batch", "/health"):
        assert by_path[path]["route"]["cluster"] == "stub_api"
        assert "typed_per_filter_config" not in by_path[path]  # ext_authz applies
    calibrate = by_path["/calibrate"]
    assert calibrate["direct_response"]["status"] == 200
    assert calibrate["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] is True
    assert by_path["/"]["direct_response"]["status"] == 404


def test_replica_binds_loopback_and_names_itself():
    config = replica_config()
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "127.0.0.1", "port_value": 8001}
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    header = hcm["route_config"]["response_headers_to_add"][0]["header"]
    assert header == {"key": "x-quotaquake-replica", "value": "gateway-2"}
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    limiter = clusters["limiter"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert limiter["endpoint"]["address"]["socket_address"]["port_value"] == 7001


def test_lb_balances_over_every_replica_with_health_checks():
    config = yaml.safe_load(
        render_lb(TEMPLATES, port=8000, admin_port=9000, replica_ports=[1, 2, 3], hc_interval_s=0.5)
    )
    cluster = config["static_resources"]["clusters"][0]
    assert cluster["lb_policy"] == "ROUND_ROBIN"
    assert cluster["health_checks"][0]["http_health_check"]["path"] == "/gateway-health"
    ports = [
        e["endpoint"]["address"]["socket_address"]["port_value"]
        for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]
    assert ports == [1, 2, 3]


def test_prometheus_scrapes_every_replica_and_limiter_each_second():
    replicas = [ReplicaPorts(f"gateway-{n}", 0, 9000 + n, 7000 + n) for n in (1, 2, 3)]
    config = yaml.safe_load(render_prometheus(TEMPLATES, replicas=replicas, lb_admin_port=9000, stub_port=6000))
    assert config["global"]["scrape_interval"] == "1s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"gateway", "lb", "limiter", "stub-api"}
    gateway_targets = [t for sc in jobs["gateway"]["static_configs"] for t in sc["targets"]]
    assert gateway_targets == ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]


@pytest.mark.parametrize(("text", "seconds"), [("30", 30), ("30s", 30), ("2m", 120), ("1h30m", 5400), ("1.5s", 1.5)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5s"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError, match="--duration"):
        parse_duration(text)


def test_state_round_trip_and_corrupt_file(tmp_path):
    path = tmp_path / "stack.json"
    state = StackState(provider="local", stack_id="abc", work_dir=str(tmp_path), state_file=str(path))
    write_state(state, path)
    assert read_state(path).stack_id == "abc"
    path.write_text("{not json")
    with pytest.raises(UsageError, match="corrupt state file"):
        read_state(path)
    with pytest.raises(UsageError, match="quotaquake stack up"):
        read_state(tmp_path / "missing.json")
