"""The docker provider without a Docker engine: refuses cleanly before creating anything; pure helpers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from quotaquake.errors import UsageError
from quotaquake.stack import kong
from quotaquake.stack.docker import provider as docker_stack
from quotaquake.stack.state import Consumer, StackState

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point the Docker SDK at a socket that does not exist, whatever this machine has."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")


def provider(tmp_path: Path) -> docker_stack.DockerProvider:
    return docker_stack.DockerProvider(
        state_path=tmp_path / "state" / "stack.json",
        work_root=tmp_path / "work",
        policy_path=REPO / "stack" / "policy.yaml",
        replicas=2,
    )


@pytest.mark.usefixtures("no_engine")
def test_up_without_engine_is_one_clear_usage_error_and_creates_nothing(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(UsageError) as raised:
        provider(tmp_path).up()
    assert time.monotonic() - started < docker_stack.DOCKER_PING_TIMEOUT_S + 3
    message = str(raised.value)
    assert "\n" not in message
    assert "needs a running Docker engine" in message
    assert "https://docs.docker.com/engine/install/" in message and "`local`" in message
    assert raised.value.exit_code == 2
    assert not (tmp_path / "state").exists() and not (tmp_path / "work").exists()


@pytest.mark.usefixtures("no_engine")
def test_docker_available_is_false_without_engine() -> None:
    assert docker_stack.docker_available(timeout_s=1.0) is False
    assert docker_stack.docker_problem(timeout_s=1.0)


@pytest.mark.usefixtures("no_engine")
def test_down_without_engine_says_so(tmp_path: Path) -> None:
    state = StackState(provider="docker", stack_id="qq-test", work_dir=str(tmp_path), state_file="s.json")
    with pytest.raises(UsageError, match="cannot stop docker stack qq-test"):
        provider(tmp_path).down(state)


def test_replicas_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--replicas"):
        docker_stack.DockerProvider(state_path=tmp_path / "s.json", work_root=tmp_path, replicas=0)


def test_kong_environment_uses_postgres_and_all_three_listeners() -> None:
    env = docker_stack.kong_env()
    assert env["KONG_DATABASE"] == "postgres" and env["KONG_PG_HOST"] == docker_stack.POSTGRES_ALIAS
    assert env["KONG_PROXY_LISTEN"].endswith(":8000")
    assert env["KONG_ADMIN_LISTEN"].endswith(":8001")
    assert env["KONG_STATUS_LISTEN"].endswith(":8100")
    assert env["KONG_REAL_IP_HEADER"] == "X-Forwarded-For"


def test_lb_config_round_robins_over_every_replica_and_keeps_client_xff() -> None:
    config = docker_stack.nginx_config(3)
    for i in (1, 2, 3):
        assert f"server gateway-{i}:8000 resolve" in config
    assert "gateway-4" not in config
    assert "proxy_set_header X-Forwarded-For $http_x_forwarded_for;" in config
    assert "proxy_next_upstream error timeout;" in config
    assert config.count("{") == config.count("}")


def test_stub_build_context_holds_only_the_dockerfile_and_the_package(tmp_path: Path) -> None:
    (REPO / "src" / "quotaquake" / "__pycache__").mkdir(exist_ok=True)
    context = docker_stack.stage_stub_context(tmp_path / "ctx")
    assert sorted(p.name for p in context.iterdir()) == ["Dockerfile", "src"]
    assert (context / "src" / "quotaquake" / "services" / "stub_api" / "__main__.py").is_file()
    assert not list(context.rglob("__pycache__"))


def test_stub_image_runs_the_stub_module_on_port_3000() -> None:
    dockerfile = (REPO / "stack" / "docker" / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "quotaquake.services.stub_api", "--host", "0.0.0.0", "--port", "3000"]' in dockerfile
    assert "COPY src/quotaquake /app/quotaquake" in dockerfile


def test_kong_rebuilds_plugins_before_a_request_sees_a_stale_set() -> None:
    # worker_consistency defaults to eventual (kong.conf.default:1668) with a 5 s rebuild timer (1703): a
    # consumer added at run time would go unlimited for ~6 s; strict rebuilds before the request
    # (kong/runloop/handler.lua:587-598)
    env = docker_stack.kong_env()
    assert env["KONG_WORKER_CONSISTENCY"] == "strict"
    assert env["KONG_WORKER_STATE_UPDATE_FREQUENCY"] == env["KONG_DB_UPDATE_FREQUENCY"] == "1"
    assert env["KONG_NGINX_WORKER_PROCESSES"] == "1"  # KongSpec.workers_per_replica


def test_prometheus_scrapes_every_replicas_status_listener() -> None:
    import yaml

    config = yaml.safe_load(docker_stack.prometheus_config(3))
    assert config["global"]["scrape_interval"] == "1s"
    [job] = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["gateway-1:8100", "gateway-2:8100", "gateway-3:8100"]


def test_the_state_declares_kong_and_its_plugin(tmp_path: Path) -> None:
    state = StackState(provider="docker", stack_id="qq-t", work_dir=str(tmp_path), state_file="s.json", replicas=2,
                       policy_file=str(REPO / "stack" / "policy.yaml"))  # fmt: skip
    spec = provider(tmp_path)._spec(state)
    assert (spec.policy, spec.sync_rate_s, spec.replicas, spec.workers_per_replica) == ("redis", -1.0, 2, 1)
    assert spec.redis_timeout_ms == 50 and spec.fault_tolerant and spec.cors_preflight
    assert spec.clock_skew_ms == docker_stack.CLOCK_SKEW_MS


def test_kong_counts_consumers_by_entity_id_and_keyless_clients_by_ip() -> None:
    assert docker_stack.kong_identifier(Consumer(id="free-1", tier="free", key="k")) == kong.entity_id(
        "consumer", "free-1"
    )
    assert docker_stack.kong_identifier(Consumer(id="anon:198.51.100.9", tier="anonymous", key="")) == "198.51.100.9"
