"""The external provider: target file validation, host allow-list, reachability, no chaos, no teardown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from quotaquake.errors import ConfigError, StackError, UsageError
from quotaquake.load.initial_state import reset_initial_state
from quotaquake.policy import load_policy
from quotaquake.runfolder.models import InitialState, RunInfo
from quotaquake.stack.external import CHAOS_REFUSED, ExternalProvider, is_loopback, read_consumers
from quotaquake.stack.state import read_state

REPO = Path(__file__).resolve().parents[2]


def write_target(folder: Path, body: str, consumers_csv: str = "id,tier,key\nfree-1,free,k1\npro-1,pro,k2\n") -> Path:
    (folder / "consumers.csv").write_text(consumers_csv)
    path = folder / "target.yaml"
    path.write_text(body)
    return path


def provider(path: Path, allow: tuple[str, ...] = (), handler: object = None) -> ExternalProvider:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if request.url.path == "/-/ready" else 404)

    transport = httpx.MockTransport(handler or respond)  # type: ignore[arg-type]
    return ExternalProvider(
        path, allow, state_path=path.parent / "stack.json", client_factory=lambda: httpx.Client(transport=transport)
    )


def test_loopback_targets_need_no_allow_host_and_state_is_written(tmp_path: Path) -> None:
    path = write_target(
        tmp_path,
        "gateway: [http://127.0.0.1:8000, http://localhost:8001/]\nconsumers: consumers.csv\n"
        "prometheus: http://[::1]:9090\nmodel: fixed-window\n",
    )
    state = provider(path).up()
    assert state.provider == "external" and state.model == "fixed-window" and state.ready
    endpoints = state.require_endpoints()
    assert endpoints.gateway == "http://127.0.0.1:8000"
    assert endpoints.replicas == ["http://127.0.0.1:8000", "http://localhost:8001"]
    assert [(c.id, c.tier, c.key) for c in state.consumers] == [("free-1", "free", "k1"), ("pro-1", "pro", "k2")]
    assert read_state(tmp_path / "stack.json") == state


def test_remote_host_needs_allow_host(tmp_path: Path) -> None:
    path = write_target(tmp_path, "gateway: https://kong.staging.example.com\nconsumers: consumers.csv\n")
    with pytest.raises(UsageError, match=r"--allow-host kong\.staging\.example\.com"):
        provider(path).plan()
    assert provider(path, ("kong.staging.example.com",)).plan().replicas == 1


def test_remote_prometheus_is_checked_too(tmp_path: Path) -> None:
    path = write_target(
        tmp_path, "gateway: http://127.0.0.1:1\nconsumers: consumers.csv\nprometheus: http://prom.internal:9090\n"
    )
    with pytest.raises(UsageError, match=r"prom\.internal"):
        provider(path).plan()


def test_allow_hosts_in_the_target_file_is_the_same_opt_in(tmp_path: Path) -> None:
    path = write_target(tmp_path, "gateway: http://10.0.0.5:8000\nconsumers: consumers.csv\nallow_hosts: [10.0.0.5]\n")
    assert provider(path).plan().require_endpoints().gateway == "http://10.0.0.5:8000"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("gateway: http://127.0.0.1:1\nconsumers: consumers.csv\nmodel: sliding\n", "model"),
        ("gateway: ftp://127.0.0.1\nconsumers: consumers.csv\n", "gateway.0"),
        ("gateway: []\nconsumers: consumers.csv\n", "gateway"),
        ("consumers: consumers.csv\n", "gateway"),
        ("gateway: http://127.0.0.1:1\nconsumers: consumers.csv\ncolour: red\n", "colour"),
    ],
)
def test_bad_target_file_names_file_and_field(tmp_path: Path, body: str, field: str) -> None:
    path = write_target(tmp_path, body)
    with pytest.raises(ConfigError) as raised:
        provider(path).plan()
    assert raised.value.path == path and raised.value.field == field


def test_consumers_csv_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,tier,key\na,free,k\nb,free,k\n")
    with pytest.raises(ConfigError, match=r"c\.csv: row 2\.key: duplicate key 'k'"):
        read_consumers(path)
    path.write_text("name,tier\na,free\n")
    with pytest.raises(ConfigError, match="header"):
        read_consumers(path)
    path.write_text("id,tier,key\na,,k\n")
    with pytest.raises(ConfigError, match=r"row 1\.tier"):
        read_consumers(path)


def test_consumers_yaml_and_tiers_checked_against_the_policy(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("- {id: a, tier: gold, key: k}\n")
    policy = REPO / "stack" / "policy.yaml"
    (tmp_path / "t.yaml").write_text(f"gateway: http://127.0.0.1:1\nconsumers: c.yaml\npolicy: {policy}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: row 1\.tier: tier 'gold' is not in the policy"):
        provider(tmp_path / "t.yaml").plan()


def test_unreachable_gateway_is_a_stack_error(tmp_path: Path) -> None:
    path = write_target(tmp_path, "gateway: http://127.0.0.1:1\nconsumers: consumers.csv\n")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(StackError, match="does not answer"):
        provider(path, handler=refuse).up()
    assert not (tmp_path / "stack.json").exists()


def test_chaos_is_refused_and_down_leaves_the_deployment_alone(tmp_path: Path) -> None:
    path = write_target(tmp_path, "gateway: http://127.0.0.1:1\nconsumers: consumers.csv\n")
    calls: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    target = provider(path, handler=record)
    state = target.up()
    calls.clear()
    with pytest.raises(UsageError, match="chaos needs a provider that controls the services"):
        target.handle(state, "redis")
    target.down(state)
    assert calls == []
    assert "chaos needs a provider that controls the services" in CHAOS_REFUSED


def test_quota_state_cannot_be_reset_so_it_stays_unknown(tmp_path: Path) -> None:
    path = write_target(tmp_path, "gateway: http://127.0.0.1:1\nconsumers: consumers.csv\n")
    target = provider(path)
    state = target.plan()
    with pytest.raises(UsageError, match="cannot reset the quota state of its 2 consumer"):
        target.reset_consumers(state, state.consumers)
    record = reset_initial_state(state)  # what quotaquake run and the Locust master record then
    assert record.state == InitialState.UNKNOWN and record.at is None
    info = record.apply(
        RunInfo(
            run_id="r", scenario="s", started_at=datetime.now(UTC), policy=load_policy(REPO / "stack" / "policy.yaml")
        )
    )
    assert info.initial_state == InitialState.UNKNOWN
    assert "the initial state stays unknown" in info.notes[-1]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("127.0.0.1", True), ("127.8.9.1", True), ("[::1]", True), ("::1", True),
     ("10.0.0.1", False), ("example.com", False), ("localhost.example.com", False)],
)  # fmt: skip
def test_is_loopback_needs_no_dns(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# ------------------------------------------------------------------------------- a Kong 3.9 target


def kong_target(folder: Path, kong: str, extra: str = "") -> Path:
    body = f"gateway: http://127.0.0.1:8000\nconsumers: consumers.csv\npolicy: {REPO / 'stack' / 'policy.yaml'}\n"
    return write_target(folder, body + extra + "kong:\n" + kong)


def test_a_kong_section_declares_the_plugin_into_the_state(tmp_path: Path) -> None:
    path = kong_target(tmp_path, "  policy: redis\n  redis_timeout_ms: 50\n  replicas: 3\n  fault_tolerant: false\n")
    state = provider(path).up()
    assert state.model == "kong" and state.replicas == 3 and state.kong is not None
    spec = state.kong
    assert (spec.policy, spec.sync_rate_s, spec.fault_tolerant, spec.redis_timeout_ms) == ("redis", -1.0, False, 50)
    assert spec.limits_of("free") == {"minute": 100, "month": 50000}  # the policy's tiers by default
    assert spec.limits_of("anonymous") == {"minute": 20}
    assert spec.clock_skew_ms == 100.0  # another machine's clock: a margin is assumed, and can be declared
    assert read_state(tmp_path / "stack.json").kong == spec  # what verify reads from run.json


def test_kong_section_overrides_tiers_and_can_drop_the_anonymous_consumer(tmp_path: Path) -> None:
    kong = (
        "  policy: redis\n  tiers:\n    free: {minute: 100, hour: 3000, month: 50000}\n    pro: {}\n  anonymous: null\n"
    )
    spec = provider(kong_target(tmp_path, kong)).plan().kong
    assert spec is not None and spec.limits_of("free") == {"minute": 100, "hour": 3000, "month": 50000}
    assert spec.limits_of("pro") == {} and spec.limits_of("anonymous") is None


@pytest.mark.parametrize(
    ("kong", "field"),
    [
        ("  fault_tolerant: true\n", "kong.policy"),  # Kong's default policy is local: never assumed
        ("  policy: local\n", "kong.replicas"),  # local counts per node
        ("  policy: redis\n  sync_rate_s: 0.01\n", "kong"),  # schema.lua:29-33
        ("  policy: redis\n  tiers: {free: {minute: 100, hour: 50}}\n", "kong.tiers.free"),  # schema.lua:10-23
    ],
)
def test_bad_kong_sections_name_the_field(tmp_path: Path, kong: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"target\.yaml: {field}"):
        provider(kong_target(tmp_path, kong)).plan()


def test_model_kong_needs_the_kong_section_and_old_files_stay_fixed_window(tmp_path: Path) -> None:
    path = write_target(tmp_path, "gateway: http://127.0.0.1:8000\nconsumers: consumers.csv\nmodel: kong\n")
    with pytest.raises(ConfigError, match=r"target\.yaml: kong: required with model kong"):
        provider(path).plan()
    old = write_target(tmp_path, "gateway: http://127.0.0.1:8000\nconsumers: consumers.csv\n")
    assert provider(old).plan().model == "fixed-window"
