"""The stack state file: the one source of truth about a running stack.

``quotaquake stack up`` writes it (default ``.quotaquake/stack.json``, or the path in the environment
variable ``QUOTAQUAKE_STATE``); scenarios, chaos experiments and ``stack down`` read it. It is written
incrementally while the stack starts, so a harness killed mid-start still leaves a file that names every
process it spawned.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quotaquake.config import validation_problem
from quotaquake.errors import ConfigError, UsageError
from quotaquake.kongspec import KongSpec
from quotaquake.policy import QuotaModel

STATE_ENV_VAR = "QUOTAQUAKE_STATE"
DEFAULT_STATE_PATH = Path(".quotaquake/stack.json")


RedisTopology = Literal["single", "proxied", "sentinel"]
"""How the embedded stack runs Redis: ``single`` (one node), ``proxied`` (one node behind an Envoy
``redis_proxy``, where latency faults are injected), ``sentinel`` (a primary, a replica and three Sentinels;
each data node behind its own proxy listener)."""
REDIS_TOPOLOGIES: tuple[RedisTopology, ...] = ("single", "proxied", "sentinel")


def redis_topology(value: str, option: str = "--redis") -> RedisTopology:
    """``value`` as a ``RedisTopology``; a one-line ``UsageError`` naming ``option`` otherwise."""
    for topology in REDIS_TOPOLOGIES:
        if value == topology:
            return topology
    raise UsageError(f"{option}: '{value}' is not one of {', '.join(REDIS_TOPOLOGIES)}")


STATE_FILE_MODE = 0o600
"""The state file holds every raw API key and the services' passwords: readable by its owner only."""


def state_path(explicit: Path | None = None) -> Path:
    """The state file path: ``explicit``, else ``$QUOTAQUAKE_STATE``, else ``.quotaquake/stack.json``."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(STATE_ENV_VAR)
    return Path(from_env) if from_env else DEFAULT_STATE_PATH


def checked_state_path(explicit: Path | None = None) -> Path:
    """``state_path(explicit)``, refusing (one-line ``UsageError`` naming where it came from) a path that is
    an existing folder or lies under a file: the state file is a file."""
    chosen = state_path(explicit)
    source = "--state" if explicit is not None else (STATE_ENV_VAR if os.environ.get(STATE_ENV_VAR) else "state file")
    if chosen.is_dir():
        raise UsageError(f"{source}: {chosen} is a folder; give a file path (e.g. {chosen / 'stack.json'})")
    for parent in chosen.parents:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{source}: {chosen} lies under {parent}, which is a file, not a folder")
        if parent.is_dir():
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"{source}: cannot write {chosen}: {parent} is not writable")
            break
    return chosen


class Consumer(BaseModel):
    """A provisioned API consumer: registry id, quota tier and API key."""

    model_config = ConfigDict(frozen=True)

    id: str
    tier: str
    key: str


class ServiceRecord(BaseModel):
    """One process (local provider) or container (docker provider) of the stack.

    ``argv``/``env``/``cwd`` let chaos restart a local process exactly as it was started;
    ``start_time`` (clock ticks since boot, from /proc) guards against killing a reused pid.
    """

    name: str
    kind: str  # redis | postgres | gateway | lb | limiter | stub-api | prometheus | kong | container
    pid: int | None = None
    start_time: int | None = None
    argv: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    log: str | None = None
    url: str | None = None
    ready_url: str | None = None  # what readiness polls: http(s)://..., redis://..., postgresql://...
    run_as: str | None = None  # system user the process runs as (postgres refuses root)
    data_dir: str | None = None  # throwaway data kept outside work_dir (e.g. Postgres, owned by run_as)
    container_id: str | None = None


class Endpoints(BaseModel):
    """Addresses of the stack. URLs are loopback for the local provider."""

    gateway: str  # the front load balancer: what clients use
    replicas: list[str] = Field(default_factory=list)  # each gateway replica's proxy URL
    replica_admin: list[str] = Field(default_factory=list)  # each replica's admin/metrics URL
    lb_admin: str | None = None
    redis: str | None = None
    postgres: str | None = None
    prometheus: str | None = None
    stub_api: str | None = None
    limiters: list[str] = Field(default_factory=list)
    calibration_path: str = "/calibrate"
    # Redis topologies other than "single" (``RedisTopology``): ``redis`` is then the current primary,
    # rewritten when a failover action sees a promotion
    redis_sentinels: list[str] = Field(default_factory=list)  # redis://:password@host:port of each Sentinel
    redis_master: str | None = None  # the name the Sentinels monitor the primary under
    redis_proxy_admin: str | None = None  # admin URL of the Envoy redis_proxy (latency faults: /runtime_modify)
    redis_proxies: dict[str, str] = Field(default_factory=dict)  # data node host:port -> its proxy host:port


class TargetFacts(TypedDict):
    """``RunInfo``'s fields that describe the target (see ``StackState.target_facts``)."""

    provider: str
    stack_id: str
    prometheus_url: str | None
    replicas: int
    defect: str | None
    model: QuotaModel
    kong: KongSpec | None


class StackState(BaseModel):
    version: int = 1
    provider: str  # local | docker | external
    stack_id: str
    work_dir: str  # where the provider keeps configs, data dirs and logs
    state_file: str  # this file: where handles write back restarted pids
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    ready: bool = False  # False while starting; True once every service answered its readiness check
    replicas: int = 3
    defect: str | None = None
    redis: RedisTopology = "single"
    model: QuotaModel = "token-bucket"
    kong: KongSpec | None = None  # model "kong": the rate-limiting plugin as deployed
    policy_file: str | None = None
    target_file: str | None = None  # the external provider's target file
    allow_hosts: list[str] = Field(default_factory=list)  # non-loopback hosts the user allowed as targets
    endpoints: Endpoints | None = None
    consumers: list[Consumer] = Field(default_factory=list)
    services: dict[str, ServiceRecord] = Field(default_factory=dict)

    def consumers_of(self, tier: str) -> list[Consumer]:
        return [c for c in self.consumers if c.tier == tier]

    def target_facts(self) -> TargetFacts:
        """What ``run.json`` records of the target a run ran against (``RunInfo``'s target fields)."""
        return {
            "provider": self.provider,
            "stack_id": self.stack_id,
            "prometheus_url": self.require_endpoints().prometheus,
            "replicas": self.replicas,
            "defect": self.defect,
            "model": self.model,
            "kong": self.kong,
        }

    def require_endpoints(self) -> Endpoints:
        if self.endpoints is None:
            raise UsageError(f"stack {self.stack_id} has no endpoints yet (still starting?)")
        return self.endpoints


def write_state(state: StackState, path: Path) -> None:
    """Write atomically (a unique temp file in the same folder, fsynced, then renamed) so readers never see
    half a file and two writers never share a temp file; the file is created ``0600`` (owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), STATE_FILE_MODE)
            handle.write(state.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def read_state(path: Path) -> StackState:
    """Read a state file; a missing, unreadable or corrupt file is a one-line ``UsageError``."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no stack state file; start one with `quotaquake stack up`") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a stack state file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(path, None, f"cannot read the state file ({reason})") from None
    try:
        return StackState.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise ConfigError(path, None, f"corrupt state file ({exc.msg})") from None
    except ValidationError as exc:
        raise validation_problem(path, exc) from None
