"""The ``docker`` provider: the real gateway, Kong 3.9 OSS, brought up with Testcontainers.

Containers, all on one Docker network and labelled ``io.quotaquake.stack=<stack id>``::

    client ──> lb (nginx, round robin over the replicas, re-resolving their names)
                 ├─> gateway-1 (kong:3.9) ─┬─> redis (rate-limiting counters, policy redis)
                 ├─> gateway-2 (kong:3.9) ─┤   postgres (Kong's database: consumers, keys, plugins)
                 └─> gateway-N (kong:3.9) ─┘   stub-api (image built from stack/docker/Dockerfile)
    prometheus (scrapes every replica's status listener /metrics: Kong's prometheus plugin, 1 s)

``kong migrations bootstrap`` runs once (a one-shot container) before the replicas start. The gateway
is provisioned through the Admin API of ``gateway-1`` from the quota policy
(``quotaquake.stack.kong.provisioning_plan``); the other replicas read the same database. The state
declares the result (``model: kong`` and its ``KongSpec``), so verification judges the run against
Kong 3.9's own rate-limiting semantics.

Consistency: a replica learns what another replica's Admin API wrote from the database's cluster events
every ``KONG_DB_UPDATE_FREQUENCY`` (1 s; Kong's default is 5), and with ``KONG_WORKER_CONSISTENCY=strict``
each request rebuilds a stale plugins iterator before it runs (``kong/runloop/handler.lua:587-598``;
Kong 3.9's default ``eventual`` leaves it to a timer every ``worker_state_update_frequency``, 5 s, so a
consumer added at run time could go unlimited for ~6 s). Readiness is proven, not assumed: ``up`` and
``add_consumer`` wait until every replica answers a limited consumer's key with that consumer's
``X-RateLimit-Limit-*`` headers, then delete the counters those probes spent.

Why an LB container: the load generator and the chaos scenarios need one gateway URL that survives a
replica being killed, like the local stack's Envoy LB. nginx (``nginx:1.27``, which has the ``resolve``
upstream parameter) passes the client's ``X-Forwarded-For`` through unchanged (Kong trusts it for
per-IP anonymous limits), retries a dead replica on the next one (``proxy_next_upstream error
timeout``, passive health: ``max_fails=1 fail_timeout=2s``) and adds ``X-Quotaquake-Replica`` with the
answering replica's address (``ip:port``, not its name). Each replica's own proxy URL is also in
``endpoints.replicas`` for tests that target one replica.

Host ports are chosen up front and bound on ``bind_host`` (loopback by default), so they stay the same
when chaos restarts a container. ``reset_consumers`` deletes the given consumers' Kong counters (Kong's key
format, ``stack.quota_reset``) so a run can start from known, empty windows.

The stack must outlive the ``stack up`` process, so Testcontainers' reaper (Ryuk) is disabled for
these containers; ``down`` removes everything carrying the stack's label, which also covers a start
that was interrupted before the state file named a container.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import docker
import docker.errors
import httpx
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.image import DockerImage
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import ExecWaitStrategy, HttpWaitStrategy, LogMessageWaitStrategy

from quotaquake import defaults
from quotaquake.errors import StackError, UsageError
from quotaquake.kongspec import KongSpec
from quotaquake.load.safety import check_target
from quotaquake.policy import ANONYMOUS_TIER, DEFAULT_POLICY_PATH, load_policy
from quotaquake.stack import kong
from quotaquake.stack.consumers import fresh_consumer, plan_consumers
from quotaquake.stack.docker.handles import container_handle, wait_until
from quotaquake.stack.processes import free_port
from quotaquake.stack.provider import ProviderOptions, ServiceHandle
from quotaquake.stack.quota_reset import delete_kong_counters
from quotaquake.stack.state import Consumer, Endpoints, ServiceRecord, StackState, write_state
from quotaquake.stack.status import ServiceHealth, stack_health

STACK_LABEL = "io.quotaquake.stack"
DOCKER_PING_TIMEOUT_S = 2.0
DOCKER_HELP = (
    "install and start Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop, "
    "or point DOCKER_HOST at a running engine; the default provider `local` needs no Docker"
)
REDIS_ALIAS, REDIS_PORT = "redis", 6379
POSTGRES_ALIAS, POSTGRES_PORT = "postgres", 5432
STUB_ALIAS, STUB_PORT = "stub-api", 3000
KONG_PROXY_PORT, KONG_ADMIN_PORT, KONG_STATUS_PORT = 8000, 8001, 8100
LB_PORT = 8080
PROMETHEUS_PORT = 9090
CONSUMER_READY_TIMEOUT_S = 30.0  # a new consumer's limits must be active on every replica within this
CLOCK_SKEW_MS = 10.0  # containers read the host's clock; the margin covers a wall-clock step during a run
KONG_DB = {"user": "kong", "password": "kong", "database": "kong"}
PACKAGE_DIR = Path(__file__).resolve().parents[2]
"""The ``quotaquake`` package this module belongs to: the stub API's image is built from it."""


@dataclass(frozen=True)
class Images:
    """Image references; override for a registry mirror or another Kong 3.x tag."""

    kong: str = "kong:3.9"
    postgres: str = "postgres:15-alpine"
    redis: str = "redis:7-alpine"
    lb: str = "nginx:1.27-alpine"
    prometheus: str = "prom/prometheus:v2.55.1"
    stub_api_tag: str = "quotaquake/stub-api:dev"


def docker_problem(timeout_s: float = DOCKER_PING_TIMEOUT_S) -> str | None:
    """Why no Docker engine can be used (one short phrase), or ``None`` when ``ping`` answers."""
    try:
        client = docker.from_env(timeout=max(1, round(timeout_s)))
    except docker.errors.DockerException as exc:
        return str(exc).split(":", 1)[0] or type(exc).__name__
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:  # requests' errors subclass OSError
        return f"ping failed: {type(exc).__name__}"
    finally:
        client.close()
    return None


def docker_available(timeout_s: float = DOCKER_PING_TIMEOUT_S) -> bool:
    return docker_problem(timeout_s) is None


def require_docker(timeout_s: float = DOCKER_PING_TIMEOUT_S) -> None:
    """Raise a one-line ``UsageError`` (exit code 2) unless a Docker engine answers within ``timeout_s``."""
    problem = docker_problem(timeout_s)
    if problem is not None:
        raise UsageError(
            f"the docker provider needs a running Docker engine and none answered ({problem}); {DOCKER_HELP}"
        )


def stage_stub_context(dest: Path, dockerfile: Path = defaults.STUB_DOCKERFILE, package: Path = PACKAGE_DIR) -> Path:
    """Write the stub API's build context to ``dest``: the Dockerfile and the package as ``src/quotaquake``
    only (the packaged ``stack/docker/Dockerfile`` and the installed package: works from any directory)."""
    if not dockerfile.is_file() or not package.is_dir():
        raise StackError("stub-api", f"cannot build the image: {dockerfile} or {package} is missing")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(package, dest / "src" / "quotaquake", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(dockerfile, dest / "Dockerfile")
    return dest


def kong_env() -> dict[str, str]:
    """Environment of every Kong container (migrations and replicas)."""
    return {
        "KONG_DATABASE": "postgres",
        "KONG_PG_HOST": POSTGRES_ALIAS,
        "KONG_PG_PORT": str(POSTGRES_PORT),
        "KONG_PG_USER": KONG_DB["user"],
        "KONG_PG_PASSWORD": KONG_DB["password"],
        "KONG_PG_DATABASE": KONG_DB["database"],
        "KONG_PROXY_LISTEN": f"0.0.0.0:{KONG_PROXY_PORT}",
        "KONG_ADMIN_LISTEN": f"0.0.0.0:{KONG_ADMIN_PORT}",
        "KONG_STATUS_LISTEN": f"0.0.0.0:{KONG_STATUS_PORT}",
        "KONG_TRUSTED_IPS": "0.0.0.0/0,::/0",
        "KONG_REAL_IP_HEADER": "X-Forwarded-For",
        "KONG_REAL_IP_RECURSIVE": "on",
        "KONG_DB_UPDATE_FREQUENCY": "1",  # seconds: other replicas see Admin API writes within ~1 s
        "KONG_WORKER_CONSISTENCY": "strict",  # rebuild a stale plugins iterator before the request
        "KONG_WORKER_STATE_UPDATE_FREQUENCY": "1",  # and the background rebuild every second, not 5
        "KONG_NGINX_WORKER_PROCESSES": "1",  # KongSpec.workers_per_replica
        "KONG_PROXY_ACCESS_LOG": "off",
        "KONG_ADMIN_ACCESS_LOG": "off",
        "KONG_PROXY_ERROR_LOG": "/dev/stderr",
        "KONG_ADMIN_ERROR_LOG": "/dev/stderr",
        "KONG_ANONYMOUS_REPORTS": "off",
    }


def prometheus_config(replicas: int) -> str:
    """Prometheus scraping each replica's status listener, where Kong's prometheus plugin serves /metrics
    (``kong/plugins/prometheus/status_api.lua``), every second."""
    targets = ", ".join(f'"gateway-{i}:{KONG_STATUS_PORT}"' for i in range(1, replicas + 1))
    return f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kong
    metrics_path: /metrics
    static_configs:
      - targets: [{targets}]
"""


def nginx_config(replicas: int) -> str:
    """The LB's nginx.conf: round robin over ``gateway-1..N``, names re-resolved via Docker's DNS."""
    servers = "\n".join(
        f"    server gateway-{i}:{KONG_PROXY_PORT} resolve max_fails=1 fail_timeout=2s;" for i in range(1, replicas + 1)
    )
    return f"""worker_processes 1;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  resolver 127.0.0.11 valid=2s ipv6=off;
  upstream kong {{
    zone kong 64k;
{servers}
    keepalive 64;
  }}
  server {{
    listen {LB_PORT};
    location = /lb-health {{ return 200 "ok\\n"; }}
    location / {{
      proxy_pass http://kong;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $http_x_forwarded_for;
      proxy_next_upstream error timeout;
      proxy_connect_timeout 1s;
      add_header X-Quotaquake-Replica $upstream_addr always;
    }}
  }}
}}
"""


class DockerProvider:
    """Kong 3.9 + Postgres 15 + Redis 7 + stub API + nginx LB + Prometheus in Docker; state ``model="kong"``."""

    name = "docker"

    def __init__(
        self,
        *,
        state_path: Path,
        work_root: Path | None = None,
        policy_path: Path = DEFAULT_POLICY_PATH,
        replicas: int = 3,
        consumers_per_tier: int = 2,
        images: Images | None = None,
        bind_host: str = "127.0.0.1",
        ping_timeout_s: float = DOCKER_PING_TIMEOUT_S,
        ready_timeout_s: float = 180.0,
        package_dir: Path = PACKAGE_DIR,
    ) -> None:
        if replicas < 1:
            raise UsageError(f"--replicas must be at least 1, got {replicas}")
        self.state_path = state_path
        self.work_root = work_root if work_root is not None else state_path.parent
        self.policy_path = policy_path
        self.replicas = replicas
        self.consumers_per_tier = consumers_per_tier
        self.images = images or Images()
        self.bind_host = bind_host
        self.ping_timeout_s = ping_timeout_s
        self.ready_timeout_s = ready_timeout_s
        self.package_dir = package_dir

    @classmethod
    def from_options(cls, options: ProviderOptions) -> DockerProvider:
        if options.defect:
            raise UsageError("--defect: seeded defects live in the embedded limiter; the docker provider runs Kong")
        return cls(state_path=options.state_path, policy_path=options.policy_path, replicas=options.replicas)

    # -- Provider -----------------------------------------------------------------------------------

    def up(self) -> StackState:
        """Check for a Docker engine first (nothing is created without one), then start and provision."""
        require_docker(self.ping_timeout_s)
        policy = load_policy(self.policy_path)
        testcontainers_config.ryuk_disabled = True  # the stack outlives this process; down() cleans up
        stack_id = "qq-" + uuid.uuid4().hex[:8]
        work_dir = self.work_root / stack_id
        work_dir.mkdir(parents=True, exist_ok=True)
        state = StackState(
            provider=self.name,
            stack_id=stack_id,
            work_dir=str(work_dir),
            state_file=str(self.state_path),
            replicas=self.replicas,
            model="kong",
            kong=kong.spec_for(policy, self.replicas, clock_skew_ms=CLOCK_SKEW_MS),
            policy_file=str(self.policy_path),
        )
        write_state(state, self.state_path)
        try:
            _StackBuilder(self, state, self._spec(state)).build()
        except BaseException:
            with contextlib.suppress(Exception):  # keep the original error; `stack down` can retry
                self.down(state)
            raise
        state.ready = True
        write_state(state, self.state_path)
        return state

    def down(self, state: StackState) -> None:
        """Remove every container and the network of the stack (by id and by label); idempotent."""
        problem = docker_problem(self.ping_timeout_s)
        if problem is not None:
            raise UsageError(f"cannot stop docker stack {state.stack_id}: no Docker engine answered ({problem})")
        remove_stack(docker.from_env(), state)

    def status(self, state: StackState) -> list[ServiceHealth]:
        return stack_health(state)

    def handle(self, state: StackState, service: str) -> ServiceHandle:
        return container_handle(state, service)

    def add_consumer(self, state: StackState, tier: str) -> Consumer:
        """Provision a consumer with an untouched quota through gateway-1's Admin API, and return it once
        every replica enforces its limits (``kong.limits_shown``, at most ``CONSUMER_READY_TIMEOUT_S``): the
        readiness probes' counts are deleted again. While Redis is down no replica can show the limits: a
        ``StackError`` says so (the consumer exists, its limits are not proven active)."""
        endpoints = state.require_endpoints()
        if not endpoints.replica_admin:
            raise StackError("kong", f"stack {state.stack_id} has no Admin API URL in its state file")
        spec = self._spec(state)
        consumer = fresh_consumer(tier)
        kong.execute_plan(endpoints.replica_admin[0], kong.consumer_calls(spec, consumer, REDIS_ALIAS, REDIS_PORT))
        limits = spec.limits_of(tier) or {}
        for proxy in endpoints.replicas:
            probe = partial(kong.limits_shown, proxy, consumer.key, limits)
            wait_until(probe, CONSUMER_READY_TIMEOUT_S, f"limits of consumer {consumer.id} on {proxy}")
        if limits and endpoints.redis:
            delete_kong_counters(endpoints.redis, [kong_identifier(consumer)])
        return consumer

    def reset_consumers(self, state: StackState, consumers: Sequence[Consumer]) -> None:
        """Delete Kong's rate-limiting counters of ``consumers`` in the stack's Redis (policy ``redis``).

        Kong counts a consumer under its entity id (deterministic: ``kong.entity_id``) and a keyless
        client under its IP (``limit_by: ip``; given as consumer ``anon:<ip>`` of tier anonymous)."""
        redis_url = state.require_endpoints().redis
        if not redis_url:
            raise StackError("redis", f"stack {state.stack_id} has no Redis endpoint to reset")
        delete_kong_counters(redis_url, [kong_identifier(c) for c in consumers])

    def _spec(self, state: StackState) -> KongSpec:
        if state.kong is not None:
            return state.kong
        policy = load_policy(Path(state.policy_file) if state.policy_file else DEFAULT_POLICY_PATH)
        return kong.spec_for(policy, state.replicas, clock_skew_ms=CLOCK_SKEW_MS)


def kong_identifier(consumer: Consumer) -> str:
    """What Kong's rate-limiting plugin counts ``consumer`` under: its consumer entity id
    (``kong.consumer_identifier``), or the client IP of a keyless client (``anon:<ip>``)."""
    if consumer.tier == ANONYMOUS_TIER:
        return consumer.id.removeprefix("anon:")
    return kong.consumer_identifier(consumer)


def remove_stack(client: docker.DockerClient, state: StackState) -> None:
    """Force-remove the stack's containers (state ids, then anything labelled with its id) and network."""
    label = {"label": f"{STACK_LABEL}={state.stack_id}"}
    ids = {r.container_id for r in state.services.values() if r.container_id}
    ids.update(c.id for c in client.containers.list(all=True, filters=label) if c.id)
    for container_id in ids:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(container_id).remove(force=True, v=True)
    for network in client.networks.list(filters=label):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
    client.close()


class _StackBuilder:
    """Starts the containers of one stack in dependency order, recording each in the state file."""

    def __init__(self, provider: DockerProvider, state: StackState, spec: KongSpec) -> None:
        self.p = provider
        self.state = state
        self.spec = spec
        self.labels = {STACK_LABEL: state.stack_id}
        self.network = Network(docker_network_kw={"labels": self.labels})
        # where clients reach the published ports: the bind address, or the engine's host for a wildcard
        wildcard = provider.bind_host in ("0.0.0.0", "::")
        self.host = DockerClient().host() if wildcard else provider.bind_host

    def build(self) -> None:
        self.network.create()
        redis_url = self._start_redis()
        postgres_url = self._start_postgres()
        stub_url = self._start_stub()
        self._bootstrap_kong()
        replicas = [self._start_kong(i) for i in range(1, self.p.replicas + 1)]
        consumers = plan_consumers(self.spec.tiers, self.p.consumers_per_tier)
        admin = replicas[0][1]
        kong.execute_plan(
            admin, kong.provisioning_plan(self.spec, consumers, REDIS_ALIAS, REDIS_PORT, _stub_upstream())
        )
        gateway = self._start_lb()
        prometheus = self._start_prometheus()
        self.state.consumers = consumers
        self.state.endpoints = Endpoints(
            gateway=gateway,
            replicas=[proxy for proxy, _ in replicas],
            replica_admin=[admin_url for _, admin_url in replicas],
            redis=redis_url,
            postgres=postgres_url,
            prometheus=prometheus,
            stub_api=stub_url,
            calibration_path=kong.CALIBRATION_PATH,
        )
        self._save()
        self._await_provisioned([gateway, *[proxy for proxy, _ in replicas]], consumers)
        delete_kong_counters(redis_url, [kong_identifier(c) for c in consumers])  # what the readiness probes counted

    # -- containers ---------------------------------------------------------------------------------

    def _container(self, image: str, alias: str) -> DockerContainer:
        return DockerContainer(
            image,
            network=self.network,
            network_aliases=[alias],
            labels=self.labels,
            name=f"{self.state.stack_id}-{alias}",
        )

    def _publish(self, container: DockerContainer, port: int) -> int:
        """Publish ``port`` on ``bind_host`` at a host port chosen now (stable across restarts).

        docker-py accepts ``(host_ip, host_port)`` as a port binding; testcontainers types it as an int.
        """
        host_port = free_port()
        container.ports[f"{port}/tcp"] = (self.p.bind_host, host_port)  # type: ignore[assignment]
        return host_port

    def _run(
        self, name: str, kind: str, container: DockerContainer, url: str | None, ready_url: str | None = None
    ) -> DockerContainer:
        """Start ``container`` (testcontainers waits with its strategy) and record it in the state file."""
        try:
            container.start()
        except Exception as exc:
            raise StackError(name, f"container did not start: {type(exc).__name__}: {exc}") from None
        record = ServiceRecord(
            name=name, kind=kind, container_id=container.get_container_id(), url=url, ready_url=ready_url or url
        )
        self.state.services[name] = record
        self._save()
        return container

    def _start_redis(self) -> str:
        container = self._container(self.p.images.redis, REDIS_ALIAS)
        port = self._publish(container, REDIS_PORT)
        container.waiting_for(LogMessageWaitStrategy("Ready to accept connections").with_startup_timeout(60))
        url = f"redis://{self.host}:{port}/0"
        self._run("redis", "redis", container, url)
        return url

    def _start_postgres(self) -> str:
        container = self._container(self.p.images.postgres, POSTGRES_ALIAS)
        port = self._publish(container, POSTGRES_PORT)
        container.with_envs(
            POSTGRES_USER=KONG_DB["user"], POSTGRES_PASSWORD=KONG_DB["password"], POSTGRES_DB=KONG_DB["database"]
        )
        # pg_isready over TCP: the init-time server listens on the unix socket only, so this waits
        # for the real server, not the temporary one the entrypoint runs initdb scripts against.
        ready = ExecWaitStrategy(["pg_isready", "-h", "127.0.0.1", "-U", KONG_DB["user"]])
        container.waiting_for(ready.with_startup_timeout(90))
        url = f"postgresql://{KONG_DB['user']}:{KONG_DB['password']}@{self.host}:{port}/{KONG_DB['database']}"
        self._run("postgres", "postgres", container, url)
        return url

    def _start_stub(self) -> str:
        context = stage_stub_context(Path(self.state.work_dir) / "stub-image", package=self.p.package_dir)
        try:
            DockerImage(path=context, tag=self.p.images.stub_api_tag, clean_up=False).build()
        except docker.errors.BuildError as exc:
            raise StackError("stub-api", f"image build failed: {exc.msg}") from None
        container = self._container(self.p.images.stub_api_tag, STUB_ALIAS)
        port = self._publish(container, STUB_PORT)
        container.waiting_for(HttpWaitStrategy(STUB_PORT, "/health").with_startup_timeout(60))
        url = f"http://{self.host}:{port}"
        self._run("stub-api", "stub-api", container, url, f"{url}/health")
        return url

    def _bootstrap_kong(self) -> None:
        container = self._container(self.p.images.kong, "kong-migrations")
        container.with_envs(**kong_env()).with_command("kong migrations bootstrap")
        self._run("kong-migrations", "container", container, None)
        try:
            exit_code = container.get_wrapped_container().wait(timeout=self.p.ready_timeout_s)["StatusCode"]
        except Exception as exc:
            raise StackError("kong-migrations", f"did not finish: {type(exc).__name__}: {exc}") from None
        if exit_code != 0:
            tail = container.get_wrapped_container().logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
            raise StackError("kong-migrations", f"`kong migrations bootstrap` exited {exit_code}: {tail}")
        container.get_wrapped_container().remove(v=True)  # a finished one-shot is not a service of the stack
        del self.state.services["kong-migrations"]
        self._save()

    def _start_kong(self, index: int) -> tuple[str, str]:
        name = f"gateway-{index}"
        container = self._container(self.p.images.kong, name)
        container.with_envs(**kong_env())
        proxy = self._publish(container, KONG_PROXY_PORT)
        admin = self._publish(container, KONG_ADMIN_PORT)
        status = self._publish(container, KONG_STATUS_PORT)
        container.waiting_for(HttpWaitStrategy(KONG_STATUS_PORT, "/status/ready").with_startup_timeout(120))
        host = self.host
        self._run(name, "kong", container, f"http://{host}:{proxy}", f"http://{host}:{status}/status/ready")
        return f"http://{host}:{proxy}", f"http://{host}:{admin}"

    def _start_prometheus(self) -> str:
        container = self._container(self.p.images.prometheus, "prometheus")
        config = prometheus_config(self.p.replicas).encode()
        container.with_copy_into_container(config, "/etc/prometheus/prometheus.yml")
        port = self._publish(container, PROMETHEUS_PORT)
        container.waiting_for(HttpWaitStrategy(PROMETHEUS_PORT, "/-/ready").with_startup_timeout(60))
        url = f"http://{self.host}:{port}"
        self._run("prometheus", "prometheus", container, url, f"{url}/-/ready")
        return url

    def _start_lb(self) -> str:
        container = self._container(self.p.images.lb, "lb")
        container.with_copy_into_container(nginx_config(self.p.replicas).encode(), "/etc/nginx/nginx.conf")
        port = self._publish(container, LB_PORT)
        container.waiting_for(HttpWaitStrategy(LB_PORT, "/lb-health").with_startup_timeout(60))
        url = f"http://{self.host}:{port}"
        self._run("lb", "lb", container, url, f"{url}/lb-health")
        return url

    # -- readiness ----------------------------------------------------------------------------------

    def _await_provisioned(self, proxies: list[str], consumers: list[Consumer]) -> None:
        """Every proxy (LB and each replica) answers /calibrate, and enforces the limits of the last limited
        consumer the plan provisioned (``kong.limits_shown``).

        Replicas other than ``gateway-1`` learn the provisioned entities from the database within
        ``KONG_DB_UPDATE_FREQUENCY`` seconds; until then they answer 404 (no route) or miss plugins. The
        last consumer's plugin came last but for prometheus, so a replica that applies it rebuilt its
        plugins from a database holding every earlier one. Its probes are counted: ``build`` deletes them.
        """
        limited = [c for c in consumers if self.spec.limits_of(c.tier)]
        probe = limited[-1] if limited else (consumers[-1] if consumers else None)
        for proxy in proxies:
            wait_until(partial(_provisioned, proxy, self.spec, probe), self.p.ready_timeout_s, f"kong at {proxy}")

    def _save(self) -> None:
        write_state(self.state, self.p.state_path)


def _stub_upstream() -> str:
    return f"http://{STUB_ALIAS}:{STUB_PORT}"


def _provisioned(proxy: str, spec: KongSpec, probe: Consumer | None) -> bool:
    check_target(proxy, what="Kong proxy")
    with httpx.Client(base_url=proxy, timeout=2.0) as client:
        if client.get(kong.CALIBRATION_PATH).status_code != 200:
            return False
    return probe is None or kong.limits_shown(proxy, probe.key, spec.limits_of(probe.tier) or {})
