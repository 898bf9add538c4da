"""The embedded local stack: real processes on loopback, no Docker needed.

Redis, Postgres (consumer registry), the stub fingerprint API, one rate-limit service and one Envoy per
gateway replica, an Envoy load balancer in front, and Prometheus. Each binds 127.0.0.1 on an ephemeral
port, is recorded in the state file as soon as it is spawned, and is polled for readiness with a deadline.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from quotaquake.errors import StackError, UsageError
from quotaquake.policy import load_policy
from quotaquake.services.limiter.defects import parse_defect
from quotaquake.stack import processes
from quotaquake.stack.consumers import fresh_consumer, plan_consumers
from quotaquake.stack.local.gateway_config import ReplicaPorts, render_lb, render_prometheus, render_replica
from quotaquake.stack.local.handles import LocalHandle
from quotaquake.stack.local.postgres import create_schema, insert_consumers
from quotaquake.stack.provider import ProviderOptions
from quotaquake.stack.quota_reset import delete_limiter_state
from quotaquake.stack.readiness import is_ready
from quotaquake.stack.state import Consumer, Endpoints, ServiceRecord, StackState, read_state, write_state
from quotaquake.stack.status import ServiceHealth, stack_health

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "quotaquake"
AUTHZ_TIMEOUT_S = 0.5
HC_INTERVAL_S = 0.5
TEARDOWN_GRACE_S = 3.0
CALIBRATION_PATH = "/calibrate"


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
    redis: int
    postgres: int
    stub: int
    prometheus: int
    lb: int
    lb_admin: int
    replicas: list[ReplicaPorts] = field(default_factory=list)

    @classmethod
    def allocate(cls, replicas: int) -> _Ports:
        free = processes.free_port
        ports = cls(free(), free(), free(), free(), free(), free())
        ports.replicas = [ReplicaPorts(f"gateway-{n}", free(), free(), free()) for n in range(1, replicas + 1)]
        return ports


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


def _fresh_pg_data(stack_id: str) -> Path:
    data = Path(tempfile.gettempdir()) / f"quotaquake-pg-{stack_id}"
    template = _pg_template()
    subprocess.run(["cp", "-a", str(template), str(data)], check=True)
    return data


@dataclass
class LocalProvider:
    """Starts and stops the embedded stack. ``up()`` is all-or-nothing: on any failure or Ctrl-C it
    stops what it started before raising."""

    state_path: Path
    work_root: Path
    policy_path: Path
    replicas: int = 3
    defect: str | None = None
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
        )

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 16:
            raise UsageError(f"--replicas: {self.replicas} is out of range (1..16)")
        try:
            parse_defect(self.defect)
        except ValueError as exc:
            raise UsageError(f"--defect: {exc}") from None
        self.policy = load_policy(self.policy_path)
        self.templates = (self.stack_dir or self.policy_path.parent) / "gateway"

    # -- up ---------------------------------------------------------------------------------------
    def up(self) -> StackState:
        self._refuse_or_reap_existing()
        stack_id = secrets.token_hex(4)
        work_dir = (self.work_root / f"stack-{stack_id}").resolve()
        work_dir.mkdir(parents=True)
        ports = _Ports.allocate(self.replicas)
        state = StackState(
            provider=self.name,
            stack_id=stack_id,
            work_dir=str(work_dir),
            state_file=str(self.state_path.resolve()),
            replicas=self.replicas,
            defect=self.defect,
            policy_file=str(self.policy_path.resolve()),
            endpoints=self._endpoints(ports),
        )
        write_state(state, self.state_path)
        try:
            self._start(state, ports)
        except BaseException:
            with processes.ignoring_sigint():
                self.down(state)
            raise
        return state

    def _refuse_or_reap_existing(self) -> None:
        if not self.state_path.exists():
            return
        try:
            old = read_state(self.state_path)
        except UsageError:
            self.state_path.unlink()
            return
        if any(processes.is_alive(s) for s in old.services.values()):
            raise UsageError(
                f"a stack is already up ({old.stack_id}, state file {self.state_path}); "
                "use it, or run `quotaquake stack down` first"
            )
        self.down(old)  # stale: the harness died; reap strays and leftovers

    def _endpoints(self, ports: _Ports) -> Endpoints:
        return Endpoints(
            gateway=_url(ports.lb),
            replicas=[_url(r.port) for r in ports.replicas],
            replica_admin=[_url(r.admin_port) for r in ports.replicas],
            lb_admin=_url(ports.lb_admin),
            redis=f"redis://127.0.0.1:{ports.redis}/0",
            postgres=f"postgresql://{PG_USER}@127.0.0.1:{ports.postgres}/postgres",
            prometheus=_url(ports.prometheus),
            stub_api=_url(ports.stub),
            limiters=[_url(r.limiter_port) for r in ports.replicas],
            calibration_path=CALIBRATION_PATH,
        )

    def _start(self, state: StackState, ports: _Ports) -> None:
        endpoints = state.require_endpoints()
        first = [
            self._redis(state, ports),
            self._postgres(state, ports),
            self._stub(state, ports),
            self._prometheus(state, ports),
            *self._envoys(state, ports),
        ]
        self._spawn_all(state, first)
        self._await(state, [r.name for r in first if r.kind in ("redis", "postgres")])
        assert endpoints.postgres is not None
        create_schema(endpoints.postgres)
        state.consumers = plan_consumers(self.policy.tiers, self.consumers_per_tier)
        insert_consumers(endpoints.postgres, state.consumers)
        write_state(state, self.state_path)
        self._spawn_all(state, [self._limiter(state, ports, r) for r in ports.replicas])
        self._await(state, list(state.services))
        self._await_lb_healthy(state)
        state.ready = True
        write_state(state, self.state_path)

    def _spawn_all(self, state: StackState, records: list[ServiceRecord]) -> None:
        for record in records:
            state.services[record.name] = processes.spawn(record, state.stack_id, user=record.run_as)
            write_state(state, self.state_path)

    def _await(self, state: StackState, names: list[str]) -> None:
        for name in names:
            record = state.services[name]
            if record.ready_url:
                url = record.ready_url
                processes.wait_ready(record, lambda url=url: is_ready(url), self.ready_timeout_s)  # type: ignore[misc]

    def _await_lb_healthy(self, state: StackState) -> None:
        """Wait until the LB's active health checks see every replica healthy."""
        endpoints = state.require_endpoints()
        lb = state.services["lb"]

        def all_healthy() -> bool:
            text = httpx.get(f"{endpoints.lb_admin}/clusters", timeout=0.5).text
            flags = [line for line in text.splitlines() if line.startswith("replicas::") and "::health_flags::" in line]
            return len(flags) == self.replicas and all(line.endswith("::healthy") for line in flags)

        processes.wait_ready(lb, all_healthy, self.ready_timeout_s)

    # -- service plans -----------------------------------------------------------------------------
    def _record(self, state: StackState, name: str, kind: str, argv: list[str], **extra: object) -> ServiceRecord:
        log = str(Path(state.work_dir) / f"{name}.log")
        fields = {"name": name, "kind": kind, "argv": argv, "cwd": state.work_dir, "log": log, **extra}
        return ServiceRecord.model_validate(fields)

    def _redis(self, state: StackState, ports: _Ports) -> ServiceRecord:
        argv = [
            binary("redis-server"),
            "--port",
            str(ports.redis),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        url = f"redis://127.0.0.1:{ports.redis}/0"
        return self._record(state, "redis", "redis", argv, url=url, ready_url=url)

    def _postgres(self, state: StackState, ports: _Ports) -> ServiceRecord:
        data = _fresh_pg_data(state.stack_id)
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
        dsn = state.require_endpoints().postgres
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

    def _limiter(self, state: StackState, ports: _Ports, replica: ReplicaPorts) -> ServiceRecord:
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
            "--redis",
            str(endpoints.redis),
            "--postgres",
            str(endpoints.postgres),
            "--policy",
            str(self.policy_path.resolve()),
            "--name",
            name,
        ]
        if self.defect:
            argv += ["--defect", self.defect]
        return self._record(
            state,
            name,
            "limiter",
            argv,
            url=_url(replica.limiter_port),
            ready_url=_url(replica.limiter_port, "/ready"),
        )

    # -- down --------------------------------------------------------------------------------------
    def down(self, state: StackState) -> None:
        """Stop every process of ``state`` (and strays carrying its stack id), remove its files.

        The state file is re-read first: a chaos restart since ``up`` wrote the new pid there, and some
        servers (Redis, Postgres) overwrite their environment with their process title, so only the
        recorded pid finds them.
        """
        state = _freshest(state)
        with processes.ignoring_sigint():
            stop_stack_processes(state)
            for record in state.services.values():
                if record.data_dir:
                    shutil.rmtree(record.data_dir, ignore_errors=True)
            leftover_pg = Path(tempfile.gettempdir()) / f"quotaquake-pg-{state.stack_id}"
            shutil.rmtree(leftover_pg, ignore_errors=True)
            shutil.rmtree(state.work_dir, ignore_errors=True)
            state_file = Path(state.state_file)
            if state_file.exists() and _same_stack(state_file, state.stack_id):
                state_file.unlink()

    def status(self, state: StackState) -> list[ServiceHealth]:
        return stack_health(state)

    def handle(self, state: StackState, service: str) -> LocalHandle:
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


def _freshest(state: StackState) -> StackState:
    """The state file's version of ``state`` when it still describes the same stack, else ``state``."""
    try:
        on_disk = read_state(Path(state.state_file))
    except UsageError:
        return state
    return on_disk if on_disk.stack_id == state.stack_id else state


def _same_stack(state_file: Path, stack_id: str) -> bool:
    try:
        return read_state(state_file).stack_id == stack_id
    except UsageError:
        return True
