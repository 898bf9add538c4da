"""The embedded local stack: real processes on loopback, no Docker needed.

Redis, Postgres (consumer registry), the stub fingerprint API, one rate-limit service and one Envoy per
gateway replica, an Envoy load balancer in front, and Prometheus. Each binds 127.0.0.1 on a port held
for it until it listens (``processes.reserve_port``), is recorded in the state file as soon as it is
spawned, and is polled for readiness with a deadline.

Ownership: the work folder and the Postgres data folder carry a marker (``quotaquake.stack.ownership``)
written when they are created; ``down`` removes only marked folders of the same stack.

Secrets: Redis requires a password (``requirepass`` in a 0600 config file, not on the command line) and
Postgres a scram-sha-256 password; both are generated per stack, kept in the 0600 state file and handed
to the limiters through their environment (readable by the owner only), never through argv.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from quotaquake import defaults
from quotaquake.errors import StackError, UsageError
from quotaquake.policy import Policy, load_policy
from quotaquake.services.limiter.defects import parse_defect
from quotaquake.stack import ownership, processes, reaper
from quotaquake.stack.consumers import fresh_consumer, plan_consumers
from quotaquake.stack.local.gateway_config import (
    ReplicaPorts,
    render_lb,
    render_prometheus,
    render_redis_proxy,
    render_replica,
)
from quotaquake.stack.local.handles import LocalHandle, ReplicatedNodeHandle
from quotaquake.stack.local.postgres import create_schema, insert_consumers
from quotaquake.stack.local.redis_set import (
    DELAYS_MS,
    MASTER_NAME,
    PROXY_SERVICE,
    RUNTIME_PREFIX,
    RedisPlan,
    RedisPorts,
    reserve_port,
    write_private,
)
from quotaquake.stack.provider import ProviderOptions
from quotaquake.stack.quota_reset import delete_limiter_state
from quotaquake.stack.readiness import is_ready
from quotaquake.stack.state import (
    REDIS_TOPOLOGIES,
    Consumer,
    Endpoints,
    RedisTopology,
    ServiceRecord,
    StackState,
    read_state,
    write_state,
)
from quotaquake.stack.status import ServiceHealth, stack_health
from quotaquake.stack.urls import with_password

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "quotaquake"
AUTHZ_TIMEOUT_S = 0.5
HC_INTERVAL_S = 0.5
TEARDOWN_GRACE_S = 3.0
CALIBRATION_PATH = "/calibrate"
START_ATTEMPTS = 3  # a port taken by someone binding it explicitly: start again on fresh ports
REDIS_URL_ENV = "QUOTAQUAKE_REDIS_URL"
POSTGRES_URL_ENV = "QUOTAQUAKE_POSTGRES_URL"
REDIS_ENV = {
    "url": REDIS_URL_ENV,
    "sentinels": "QUOTAQUAKE_REDIS_SENTINELS",
    "master": "QUOTAQUAKE_REDIS_MASTER",
    "routes": "QUOTAQUAKE_REDIS_ROUTES",
}
"""The limiter's environment variables for its Redis (``services/limiter/__main__.py`` reads them)."""
SET_READY_TIMEOUT_S = 30.0  # Sentinels find each other through the primary every 2 s
BUNDLED_TEMPLATES = defaults.GATEWAY_TEMPLATES
"""The packaged ``stack/gateway`` (Envoy and Prometheus templates), used when the policy's folder has none."""


def binary(name: str, *candidates: Path) -> str:
    """Absolute path of a binary: the venv's, then PATH, then ``candidates``; StackError if none."""
    beside_python = Path(sys.executable).parent / name
    for path in (beside_python, *candidates):
        if path.is_file():
            return str(path)
    found = shutil.which(name)
    if found:
        return found
    raise StackError(name, "binary not found", "run the README's setup command (installs Debian packages and .venv)")


@dataclass
class _Ports:
    """The stack's ports, each held (``processes.reserve_port``) until ``release`` after the start."""

    redis: RedisPorts
    postgres: int
    stub: int
    prometheus: int
    lb: int
    lb_admin: int
    replicas: list[ReplicaPorts] = field(default_factory=list)
    held: list[socket.socket] = field(default_factory=list)

    @classmethod
    def allocate(cls, replicas: int, topology: RedisTopology = "single") -> _Ports:
        held: list[socket.socket] = []

        def reserve() -> int:
            return reserve_port(held)

        ports = cls(RedisPorts.allocate(topology, reserve), reserve(), reserve(), reserve(), reserve(), reserve())
        ports.replicas = [ReplicaPorts(f"gateway-{n}", reserve(), reserve(), reserve()) for n in range(1, replicas + 1)]
        ports.held = held
        return ports

    def release(self) -> None:
        for sock in self.held:
            sock.close()
        self.held = []


def _url(port: int, path: str = "") -> str:
    return f"http://127.0.0.1:{port}{path}"


def _pg_template() -> Path:
    """A cached, freshly initdb'ed Postgres data directory; copying it is ~10x faster than initdb."""
    owner = "postgres" if os.geteuid() == 0 else str(os.geteuid())
    template = Path(tempfile.gettempdir()) / f"quotaquake-pg15-template-{owner}"
    if (template / "PG_VERSION").is_file():
        return template
    staging = Path(tempfile.mkdtemp(prefix="quotaquake-pg-init-"))
    _chown_for_postgres(staging)
    argv = [
        str(PG_BIN / "initdb"),
        "-D",
        str(staging / "data"),
        "-U",
        PG_USER,
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-sync",
        "--no-instructions",
    ]
    ids = processes.run_as("postgres")
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        user=ids[0] if ids else None,
        group=ids[1] if ids else None,
        extra_groups=[] if ids else None,
    )
    if result.returncode != 0:
        raise StackError("postgres", "initdb failed", (result.stderr or result.stdout).strip().splitlines()[-1])
    try:
        os.rename(staging / "data", template)
    except OSError:  # another stack created it meanwhile
        shutil.rmtree(staging / "data", ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return template


def _chown_for_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")


def _pg_data_path(stack_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"quotaquake-pg-{stack_id}"


PG_HBA = """# written by quotaquake: password (scram-sha-256) over loopback TCP only, nothing else
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


def _fresh_pg_data(stack_id: str, state_file: str, password: str) -> Path:
    """A copy of the template data folder, marked as ours, that only accepts ``password`` (scram)."""
    data = _pg_data_path(stack_id)
    template = _pg_template()
    if data.exists():
        raise StackError("postgres", f"{data} already exists", "another stack with the same id? start again")
    subprocess.run(["cp", "-a", str(template), str(data)], check=True)
    ownership.claim(data, stack_id, state_file)
    (data / "pg_hba.conf").write_text(PG_HBA)
    _chown_for_postgres(data / "pg_hba.conf")
    _set_pg_password(data, password)
    return data


def _set_pg_password(data: Path, password: str) -> None:
    """Set the superuser's password in single-user mode (no listener, password on stdin, not argv)."""
    ids = processes.run_as("postgres")
    sql = f"ALTER ROLE {PG_USER} PASSWORD '{password}';\n"
    result = subprocess.run(
        [str(PG_BIN / "postgres"), "--single", "-D", str(data), "-c", "password_encryption=scram-sha-256", "postgres"],
        input=sql,
        capture_output=True,
        text=True,
        check=False,
        user=ids[0] if ids else None,
        group=ids[1] if ids else None,
        extra_groups=[] if ids else None,
    )
    if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise StackError("postgres", "could not set the registry's password", lines[-1])


@dataclass
class LocalProvider:
    """Starts and stops the embedded stack. ``up()`` is all-or-nothing: on any failure or Ctrl-C it
    stops what it started before raising."""

    state_path: Path
    work_root: Path
    policy_path: Path
    replicas: int = 3
    defect: str | None = None
    redis: RedisTopology = "single"
    consumers_per_tier: int = 5
    stack_dir: Path | None = None  # holds gateway/ templates; default: the policy file's folder
    ready_timeout_s: float = 30.0
    name: str = "local"

    @classmethod
    def from_options(cls, options: ProviderOptions) -> LocalProvider:
        return cls(
            state_path=options.state_path,
            work_root=options.state_path.parent,
            policy_path=options.policy_path,
            replicas=options.replicas,
            defect=options.defect,
            redis=options.redis,
        )

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 16:
            raise UsageError(f"--replicas: {self.replicas} is out of range (1..16)")
        if self.redis not in REDIS_TOPOLOGIES:
            raise UsageError(f"--redis: '{self.redis}' is not one of {', '.join(REDIS_TOPOLOGIES)}")
        if self.defect == "no-failover" and self.redis != "sentinel":
            raise UsageError("--defect no-failover: a limiter that ignores promotions needs --redis sentinel")
        try:
            parse_defect(self.defect)
        except ValueError as exc:
            raise UsageError(f"--defect: {exc}") from None

    @cached_property
    def policy(self) -> Policy:
        """The policy the stack enforces: read only to start one (``down`` never depends on it)."""
        return load_policy(self.policy_path)

    @cached_property
    def templates(self) -> Path:
        return gateway_templates(self.stack_dir or self.policy_path.parent)

    # -- up ---------------------------------------------------------------------------------------
    def up(self) -> StackState:
        """Start the stack; on a port someone else bound meanwhile, start again on fresh ports."""
        _ = self.policy, self.templates  # a bad policy or missing templates: refused before anything starts
        self._refuse_or_reap_existing()
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return self._up_once()
            except StackError as exc:
                if attempt == START_ATTEMPTS or "in use" not in str(exc).lower():
                    raise
        raise AssertionError("unreachable")

    def _up_once(self) -> StackState:
        stack_id = secrets.token_hex(4)
        work_dir = (self.work_root / f"stack-{stack_id}").resolve()
        state_file = self.state_path.resolve()
        work_dir.parent.mkdir(parents=True, exist_ok=True)
        work_dir.mkdir(mode=0o700)
        ownership.claim(work_dir, stack_id, state_file)
        ports = _Ports.allocate(self.replicas, self.redis)
        redis = RedisPlan(self.redis, ports.redis, secrets.token_hex(16), work_dir)
        state = StackState(
            provider=self.name,
            stack_id=stack_id,
            work_dir=str(work_dir),
            state_file=str(state_file),
            replicas=self.replicas,
            defect=self.defect,
            redis=self.redis,
            policy_file=str(self.policy_path.resolve()),
            endpoints=self._endpoints(ports, redis, pg_password=secrets.token_hex(16)),
        )
        try:
            write_state(state, self.state_path)
            self._start(state, ports, redis)
            processes.check_interrupt()  # an interrupt a finalizer swallowed meanwhile still stops the start
        except BaseException:
            with processes.ignoring_sigint():
                ports.release()
                self.down(state)
            raise
        finally:
            ports.release()
        return state

    def _refuse_or_reap_existing(self) -> None:
        """Refuse while a stack of this state file lives (whether or not the file is readable); reap a
        stale local one (the harness died); never touch what another provider's state file names."""
        live = processes.stacks_of_state_file(self.state_path)
        if not self.state_path.exists():
            if live:
                raise UsageError(_unrecorded_stack_message(self.state_path, live))
            return
        try:
            old = read_state(self.state_path)
        except UsageError as exc:
            if live:
                raise UsageError(_unrecorded_stack_message(self.state_path, live)) from None
            raise UsageError(
                f"{exc}; it is not a state file quotaquake can use: remove it or choose another --state"
            ) from None
        if old.provider != self.name:
            raise UsageError(
                f"{self.state_path}: a {old.provider} stack ({old.stack_id}) is recorded there; "
                "run `quotaquake stack down` first, or choose another --state"
            )
        if Path(old.state_file).resolve() != self.state_path.resolve():
            raise UsageError(
                f"{self.state_path}: a copy of {old.state_file} (stack {old.stack_id}); "
                "use that state file, or remove this copy"
            )
        alive = live or any(processes.is_alive(s) for s in old.services.values())
        if alive and not old.ready:
            raise UsageError(
                f"a half-started stack ({old.stack_id}, state file {self.state_path}) is still running, "
                "its starter gone; run `quotaquake stack down` first"
            )
        if alive:
            raise UsageError(
                f"a stack is already up ({old.stack_id}, state file {self.state_path}); "
                "use it, or run `quotaquake stack down` first"
            )
        self.down(old)  # stale: the harness died; reap strays and leftovers

    def _endpoints(self, ports: _Ports, redis: RedisPlan, *, pg_password: str) -> Endpoints:
        proxied = self.redis != "single"
        return Endpoints(
            gateway=_url(ports.lb),
            replicas=[_url(r.port) for r in ports.replicas],
            replica_admin=[_url(r.admin_port) for r in ports.replicas],
            lb_admin=_url(ports.lb_admin),
            redis=redis.primary_url(),
            postgres=with_password(f"postgresql://127.0.0.1:{ports.postgres}/postgres", PG_USER, pg_password),
            prometheus=_url(ports.prometheus),
            stub_api=_url(ports.stub),
            limiters=[_url(r.limiter_port) for r in ports.replicas],
            calibration_path=CALIBRATION_PATH,
            redis_sentinels=redis.sentinel_urls(),
            redis_master=MASTER_NAME if self.redis == "sentinel" else None,
            redis_proxy_admin=_url(ports.redis.proxy_admin) if proxied and ports.redis.proxy_admin else None,
            redis_proxies=redis.proxy_routes() if proxied else {},
        )

    def _start(self, state: StackState, ports: _Ports, redis: RedisPlan) -> None:
        endpoints = state.require_endpoints()
        first = [
            *self._redis(state, redis),
            self._postgres(state, ports),
            self._stub(state, ports),
            self._prometheus(state, ports),
            *self._envoys(state, ports),
        ]
        self._spawn_all(state, first)
        self._await(state, [r.name for r in first if r.kind in ("redis", "sentinel", "redis-proxy", "postgres")])
        if self.redis == "sentinel":
            self._await_replicated_set(state)
        assert endpoints.postgres is not None
        create_schema(endpoints.postgres)
        state.consumers = plan_consumers(self.policy.tiers, self.consumers_per_tier)
        insert_consumers(endpoints.postgres, state.consumers)
        write_state(state, self.state_path)
        self._spawn_all(state, [self._limiter(state, ports, r, redis) for r in ports.replicas])
        self._await(state, list(state.services))
        self._await_lb_healthy(state)
        state.ready = True
        write_state(state, self.state_path)

    def _spawn_all(self, state: StackState, records: list[ServiceRecord]) -> None:
        for record in records:
            processes.check_interrupt()
            state.services[record.name] = processes.spawn(
                record, state.stack_id, user=record.run_as, state_file=state.state_file
            )
            write_state(state, self.state_path)

    def _await(self, state: StackState, names: list[str]) -> None:
        for name in names:
            record = state.services[name]
            if record.ready_url:
                url = record.ready_url
                processes.wait_ready(record, lambda url=url: _ready_unless_interrupted(url), self.ready_timeout_s)  # type: ignore[misc]

    def _await_lb_healthy(self, state: StackState) -> None:
        """Wait until the LB's active health checks see every replica healthy."""
        endpoints = state.require_endpoints()
        lb = state.services["lb"]

        def all_healthy() -> bool:
            processes.check_interrupt()
            text = httpx.get(f"{endpoints.lb_admin}/clusters", timeout=0.5).text
            flags = [line for line in text.splitlines() if line.startswith("replicas::") and "::health_flags::" in line]
            return len(flags) == self.replicas and all(line.endswith("::healthy") for line in flags)

        processes.wait_ready(lb, all_healthy, self.ready_timeout_s)

    # -- service plans -----------------------------------------------------------------------------
    def _record(self, state: StackState, name: str, kind: str, argv: list[str], **extra: object) -> ServiceRecord:
        log = str(Path(state.work_dir) / f"{name}.log")
        fields = {"name": name, "kind": kind, "argv": argv, "cwd": state.work_dir, "log": log, **extra}
        return ServiceRecord.model_validate(fields)

    def _redis(self, state: StackState, redis: RedisPlan) -> list[ServiceRecord]:
        """The data nodes, the Sentinels and the proxy of the stack's Redis topology (``redis_set``)."""
        server = binary("redis-server")
        records = redis.node_records(state, self._record, server) + redis.sentinel_records(state, self._record, server)
        if self.redis != "single":
            records.append(self._redis_proxy(state, redis))
        return records

    def _redis_proxy(self, state: StackState, redis: RedisPlan) -> ServiceRecord:
        """One Envoy with a ``redis_proxy`` listener per data node (``stack/gateway/redis-proxy.yaml.j2``)."""
        admin = redis.ports.proxy_admin
        assert admin is not None
        config = Path(state.work_dir) / "redis-proxy.yaml"
        text = render_redis_proxy(
            self._template_dir("redis-proxy.yaml.j2"), nodes=redis.proxy_nodes(), admin_port=admin,
            password=redis.password, delays_ms=DELAYS_MS, runtime_prefix=RUNTIME_PREFIX,
        )  # fmt: skip
        write_private(config, text.splitlines())
        argv = [binary("envoy"), "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
                "--log-level", "warn"]  # fmt: skip
        url = _url(admin)
        return self._record(state, PROXY_SERVICE, "redis-proxy", argv, url=url, ready_url=_url(admin, "/ready"))

    def _template_dir(self, template: str) -> Path:
        """The templates folder holding ``template``: the stack's own, else the repository's."""
        return self.templates if (self.templates / template).is_file() else BUNDLED_TEMPLATES

    def _await_replicated_set(self, state: StackState) -> None:
        """Wait until the replica is in sync and every Sentinel sees the others and its quorum."""
        from quotaquake.stack.local.sentinel import set_problems

        last: list[list[str]] = [[]]

        def healthy() -> bool:
            processes.check_interrupt()
            last[0] = set_problems(state)
            return not last[0]

        if not processes.poll_until(healthy, SET_READY_TIMEOUT_S):
            raise StackError("redis", "replicated set not healthy", "; ".join(last[0]))

    def _postgres(self, state: StackState, ports: _Ports) -> ServiceRecord:
        dsn = state.require_endpoints().postgres
        assert dsn is not None
        data = _fresh_pg_data(state.stack_id, state.state_file, urlsplit(dsn).password or "")
        argv = [
            str(PG_BIN / "postgres"),
            "-D",
            str(data),
            "-p",
            str(ports.postgres),
            "-h",
            "127.0.0.1",
            "-k",
            "",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
        user = "postgres" if os.geteuid() == 0 else None
        return self._record(
            state,
            "postgres",
            "postgres",
            argv,
            url=dsn,
            ready_url=dsn,
            run_as=user,
            data_dir=str(data),
            cwd=str(data),
        )

    def _stub(self, state: StackState, ports: _Ports) -> ServiceRecord:
        argv = [
            sys.executable,
            "-m",
            "quotaquake.services.stub_api",
            "--host",
            "127.0.0.1",
            "--port",
            str(ports.stub),
        ]
        return self._record(
            state, "stub-api", "stub-api", argv, url=_url(ports.stub), ready_url=_url(ports.stub, "/health")
        )

    def _prometheus(self, state: StackState, ports: _Ports) -> ServiceRecord:
        config = Path(state.work_dir) / "prometheus.yml"
        config.write_text(
            render_prometheus(
                self.templates, replicas=ports.replicas, lb_admin_port=ports.lb_admin, stub_port=ports.stub
            )
        )
        argv = [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={Path(state.work_dir) / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{ports.prometheus}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        return self._record(
            state,
            "prometheus",
            "prometheus",
            argv,
            url=_url(ports.prometheus),
            ready_url=_url(ports.prometheus, "/-/ready"),
        )

    def _envoys(self, state: StackState, ports: _Ports) -> list[ServiceRecord]:
        envoy = binary("envoy")
        records = []
        for replica in ports.replicas:
            config = Path(state.work_dir) / f"{replica.name}.yaml"
            config.write_text(
                render_replica(
                    self.templates,
                    replica,
                    policy=self.policy,
                    stub_port=ports.stub,
                    calibration_path=CALIBRATION_PATH,
                    authz_timeout_s=AUTHZ_TIMEOUT_S,
                )
            )
            argv = [
                envoy,
                "-c",
                str(config),
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "warn",
            ]
            records.append(
                self._record(
                    state,
                    replica.name,
                    "gateway",
                    argv,
                    url=_url(replica.port),
                    ready_url=_url(replica.admin_port, "/ready"),
                )
            )
        config = Path(state.work_dir) / "lb.yaml"
        config.write_text(
            render_lb(
                self.templates,
                port=ports.lb,
                admin_port=ports.lb_admin,
                replica_ports=[r.port for r in ports.replicas],
                hc_interval_s=HC_INTERVAL_S,
            )
        )
        argv = [
            envoy,
            "-c",
            str(config),
            "--concurrency",
            "2",
            "--disable-hot-restart",
            "--log-level",
            "warn",
        ]
        records.append(
            self._record(state, "lb", "lb", argv, url=_url(ports.lb), ready_url=_url(ports.lb_admin, "/ready"))
        )
        return records

    def _limiter(self, state: StackState, ports: _Ports, replica: ReplicaPorts, redis: RedisPlan) -> ServiceRecord:
        endpoints = state.require_endpoints()
        name = replica.name.replace("gateway", "limiter")
        argv = [
            sys.executable,
            "-m",
            "quotaquake.services.limiter",
            "--host",
            "127.0.0.1",
            "--port",
            str(replica.limiter_port),
            "--policy",
            str(self.policy_path.resolve()),
            "--name",
            name,
        ]
        if self.defect:
            argv += ["--defect", self.defect]
        secrets_env = {**redis.limiter_env(REDIS_ENV), POSTGRES_URL_ENV: str(endpoints.postgres)}
        return self._record(
            state,
            name,
            "limiter",
            argv,
            url=_url(replica.limiter_port),
            ready_url=_url(replica.limiter_port, "/ready"),
            env=secrets_env,  # not argv: /proc/PID/cmdline is readable by every local user, environ is not
        )

    # -- down --------------------------------------------------------------------------------------
    def down(self, state: StackState) -> None:
        """Stop every process of ``state`` and of the runs against it, then remove the folders it created.

        Order matters: the processes a run started (an experiment whose rollback could restart a service,
        Locust) die first; then the services (the state file is re-read: a chaos restart since ``up``
        wrote the new pid there); then a sweep for anything still carrying the stack's marker or running
        in its folders. Only folders carrying this stack's ownership marker are removed.
        """
        with processes.ignoring_sigint():
            reaper.stop_run_processes(_freshest(state))
            state = _freshest(state)
            stop_stack_processes(state)
            folders = _owned_folders(state)
            reaper.sweep(state.stack_id, folders, TEARDOWN_GRACE_S)
            for folder in folders:
                ownership.remove_owned(folder, state.stack_id)
            state_file = Path(state.state_file)
            if state_file.exists() and _same_stack(state_file, state.stack_id):
                state_file.unlink()

    def status(self, state: StackState) -> list[ServiceHealth]:
        return stack_health(state)

    def handle(self, state: StackState, service: str) -> LocalHandle:
        record = state.services.get(service)
        if state.redis == "sentinel" and record is not None and record.kind == "redis":
            return ReplicatedNodeHandle(Path(state.state_file), service)
        return LocalHandle(Path(state.state_file), service)

    def add_consumer(self, state: StackState, tier: str) -> Consumer:
        """Insert a consumer with an untouched quota into the registry; the limiter finds it on its first
        request (cache miss -> registry lookup). Needs Postgres up (``StackError`` otherwise)."""
        dsn = state.require_endpoints().postgres
        if dsn is None:
            raise StackError("postgres", "this stack has no consumer registry to add to")
        consumer = fresh_consumer(tier)
        insert_consumers(dsn, [consumer])
        return consumer

    def reset_consumers(self, state: StackState, consumers: Sequence[Consumer]) -> None:
        """Delete the limiter's keys of ``consumers`` in Redis (bucket and every month counter); the
        limiter reads a missing key as a full bucket and 0 used (``services/limiter/keys.py``)."""
        if state.redis == "sentinel":  # a failover may have moved the primary since the state was read
            from quotaquake.stack.local.sentinel import refresh_primary_endpoint

            state = refresh_primary_endpoint(Path(state.state_file))
        redis_url = state.require_endpoints().redis
        if not redis_url:
            raise StackError("redis", f"stack {state.stack_id} has no Redis endpoint to reset")
        delete_limiter_state(redis_url, [c.id for c in consumers])


def stop_stack_processes(state: StackState) -> None:
    """SIGTERM (then SIGKILL after the grace period) every process of the stack, children included."""
    pids = set(processes.pids_with_stack_id(state.stack_id))
    postgres = state.services.get("postgres")
    if postgres is not None:  # SIGINT is Postgres' fast shutdown; SIGTERM would wait for its clients
        processes.signal_group(postgres, signal.SIGINT)
    for record in state.services.values():
        if processes.is_alive(record) and record.pid is not None:
            pids.update(processes.group_members(record.pid))
    processes.terminate_pids(sorted(pids), TEARDOWN_GRACE_S)


def _ready_unless_interrupted(url: str) -> bool:
    """Readiness while starting; an interrupt a finalizer swallowed is raised again here."""
    processes.check_interrupt()
    return is_ready(url)


def _owned_folders(state: StackState) -> list[Path]:
    """Folders ``state`` says the stack created: its work folder and data folders (removed only if marked)."""
    folders = [Path(state.work_dir), _pg_data_path(state.stack_id)]
    folders += [Path(r.data_dir) for r in state.services.values() if r.data_dir]
    return list(dict.fromkeys(folders))


def _unrecorded_stack_message(state_file: Path, live: dict[str, list[int]]) -> str:
    stacks = ", ".join(f"{stack_id} ({len(pids)} processes)" for stack_id, pids in sorted(live.items()))
    return (
        f"{state_file}: missing or unreadable, but stack {stacks} of this state file is still running; "
        "`quotaquake stack down` stops it"
    )


def gateway_templates(folder: Path) -> Path:
    """``folder/gateway`` when it has the Envoy templates, else the packaged ``stack/gateway``."""
    for candidate in (folder / "gateway", BUNDLED_TEMPLATES):
        if (candidate / "replica.yaml.j2").is_file():
            return candidate
    raise StackError("gateway", f"no Envoy templates in {folder / 'gateway'} or {BUNDLED_TEMPLATES}")


def _freshest(state: StackState) -> StackState:
    """The state file's version of ``state`` when it still describes the same stack, else ``state``."""
    try:
        on_disk = read_state(Path(state.state_file))
    except UsageError:
        return state
    return on_disk if on_disk.stack_id == state.stack_id else state


def _same_stack(state_file: Path, stack_id: str) -> bool:
    """True only for a readable state file of ``stack_id``: anything else at that path is not ours to remove."""
    try:
        return read_state(state_file).stack_id == stack_id
    except UsageError:
        return False
