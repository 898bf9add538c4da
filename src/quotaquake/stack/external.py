"""The ``external`` provider: target a deployment quotaquake does not run (e.g. staging Kong).

A YAML target file describes it (relative paths are relative to that file)::

    gateway: https://kong.staging.example.com      # one URL, or a list of replica URLs
    consumers: consumers.csv                       # CSV with header id,tier,key; or YAML list of {id, tier, key}
    prometheus: https://prometheus.staging.example.com   # optional: Kong's prometheus plugin scraped there
    policy: ../stack/policy.yaml                   # optional (default: --policy): tiers are checked against it
    allow_hosts: [kong.staging.example.com]        # optional, same as --allow-host
    calibration_path: null                         # optional: a path the gateway answers without limits
    kong:                                          # the rate-limiting plugin as deployed (model: kong)
      policy: redis                                # required: redis | local | cluster (Kong's default: local)
      sync_rate_s: -1                              # -1 (synchronous) or >= 0.02 s, redis only
      fault_tolerant: true                         # what Kong does while Redis is down (true: no limit)
      hide_client_headers: false
      error_code: 429
      redis_timeout_ms: 50                         # the plugin's redis.timeout
      replicas: 3                                  # Kong nodes behind the URLs (required for local / sync_rate)
      workers_per_replica: 1                       # nginx workers per node (redis with sync_rate counts per worker)
      clock_skew_ms: 100                           # bound on |Kong node clock - this machine's clock|
      forwarded_ip_trusted: false                  # Kong's trusted_ips cover us: keyless IPs from X-Forwarded-For
      tiers: {free: {minute: 100, month: 50000}}   # optional: default the policy's tiers (minute, month)
      anonymous: {minute: 20}                      # optional: default the policy's; null = no anonymous consumer

``kong`` makes the target a Kong 3.9 one (``model: kong``, ``quotaquake.kongspec.KongSpec`` in the state
and ``run.json``), judged against Kong's own rate-limiting semantics. Without it the target is judged by the
generic ``model`` (``fixed-window`` by default, or ``token-bucket``).

With a list of gateway URLs and no load balancer in front, ``endpoints.gateway`` is the first URL and
``endpoints.replicas`` lists all of them: the load generator round-robins over ``replicas``.

Safety: every host that is not loopback (``localhost``, 127.0.0.0/8, ``::1``) must be allowed
explicitly, by ``--allow-host HOST`` or the file's ``allow_hosts`` (a checked-in target file is the
same deliberate opt-in). No DNS lookups are made to decide this. ``up`` only checks that the targets
answer and writes the state file; ``down`` leaves the deployment alone; chaos is refused because this
provider controls none of the services.
"""

from __future__ import annotations

import csv
import ipaddress
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from quotaquake.config import load_model, read_yaml, validation_problem
from quotaquake.errors import ConfigError, StackError, UsageError
from quotaquake.kongspec import KongLimits, KongSpec
from quotaquake.policy import ANONYMOUS_TIER, DEFAULT_POLICY_PATH, Policy, QuotaModel, load_policy
from quotaquake.stack.provider import ProviderOptions, ServiceHandle
from quotaquake.stack.state import Consumer, Endpoints, StackState, write_state
from quotaquake.stack.status import ServiceHealth

REACHABILITY_TIMEOUT_S = 5.0
CHAOS_REFUSED = (
    "chaos needs a provider that controls the services; the external provider only sends traffic to an "
    "existing deployment (use --provider local or docker for fault injection)"
)

HttpUrl = Annotated[str, Field(pattern=r"^https?://[^/\s]+(/.*)?$")]


class KongTarget(BaseModel):
    """The ``kong`` section: ``KongSpec``'s fields; ``policy`` is required (Kong's own default is ``local``,
    so nothing can be assumed), ``tiers`` and ``anonymous`` default to the quota policy's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["redis", "local", "cluster"]
    sync_rate_s: float = -1.0
    fault_tolerant: bool = True
    hide_client_headers: bool = False
    error_code: Annotated[int, Field(gt=0)] = 429
    redis_timeout_ms: Annotated[int, Field(ge=0)] = 2000
    replicas: Annotated[int, Field(ge=1)] | None = None
    workers_per_replica: Annotated[int, Field(ge=1)] = 1
    increment_lag_ms: Annotated[float, Field(ge=0)] = 1000.0
    clock_skew_ms: Annotated[float, Field(ge=0)] = 100.0
    forwarded_ip_trusted: bool = False
    cors_preflight: bool = False
    tiers: dict[str, KongLimits] | None = None
    anonymous: KongLimits | None = None

    def spec(self, policy: Policy, gateways: int, path: Path) -> KongSpec:
        """The ``KongSpec`` this section declares; a one-line ``ConfigError`` naming ``kong.<field>``."""
        lagged = self.policy == "local" or (self.policy == "redis" and self.sync_rate_s != -1)
        if lagged and self.replicas is None:
            raise ConfigError(path, "kong.replicas", "required with this policy: the Kong nodes behind the gateway")
        settings = self.model_dump(exclude={"tiers", "anonymous", "replicas"}, exclude_unset=True)
        settings["policy"] = self.policy
        settings["replicas"] = self.replicas or gateways
        if self.tiers is not None:
            settings["tiers"] = self.tiers
        if "anonymous" in self.model_fields_set:
            settings["anonymous"] = self.anonymous
        try:
            return KongSpec.from_policy(policy, **settings)
        except ValidationError as exc:
            problem = validation_problem(path, exc)
            raise ConfigError(path, f"kong.{problem.field}" if problem.field else "kong", problem.problem) from None


class TargetConfig(BaseModel):
    """The external target file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gateway: list[HttpUrl]
    consumers: Path
    prometheus: HttpUrl | None = None
    model: QuotaModel | None = None  # default: kong with a kong section, else fixed-window
    kong: KongTarget | None = None
    policy: Path | None = None
    allow_hosts: list[str] = Field(default_factory=list)
    calibration_path: str | None = None

    @field_validator("gateway", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("gateway")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one gateway URL is required")
        return [url.rstrip("/") for url in value]

    @property
    def quota_model(self) -> QuotaModel:
        return self.model or ("kong" if self.kong is not None else "fixed-window")


class ConsumerRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1)]
    tier: Annotated[str, Field(min_length=1)]
    key: Annotated[str, Field(min_length=1)]


def host_of(url: str) -> str:
    host = httpx.URL(url).host
    return host.lower()


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal; any other name counts as remote (no DNS lookup)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_hosts(urls: Iterable[str], allowed: Iterable[str], config_path: Path) -> None:
    """Raise ``UsageError`` for the first URL whose host is neither loopback nor allowed."""
    allowed_set = {h.lower() for h in allowed}
    for url in urls:
        host = host_of(url)
        if not is_loopback(host) and host not in allowed_set:
            raise UsageError(
                f"{config_path}: {url} is not on this machine; pass --allow-host {host} "
                f"(or list it under allow_hosts) to send load to it"
            )


def read_consumers(path: Path) -> list[Consumer]:
    """Consumers from a CSV (header ``id,tier,key``) or YAML (list of mappings) file."""
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _yaml_rows(path)
    consumers: list[Consumer] = []
    for index, row in enumerate(rows, start=1):
        try:
            parsed = ConsumerRow.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(row)"
            raise ConfigError(path, f"row {index}.{field}", first["msg"]) from None
        consumers.append(Consumer(id=parsed.id, tier=parsed.tier, key=parsed.key))
    _check_unique(path, consumers)
    return consumers


def _csv_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"id", "tier", "key"} <= set(reader.fieldnames):
                raise ConfigError(path, "header", f"must name the columns id,tier,key (got {reader.fieldnames})")
            return [{k: (v or "").strip() for k, v in row.items() if k in {"id", "tier", "key"}} for row in reader]
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None


def _yaml_rows(path: Path) -> list[object]:
    data = read_yaml(path)
    if not isinstance(data, list):
        raise ConfigError(path, None, "must be a list of {id, tier, key} mappings")
    return data


def _check_unique(path: Path, consumers: Sequence[Consumer]) -> None:
    for attribute in ("id", "key"):
        seen: set[str] = set()
        for index, consumer in enumerate(consumers, start=1):
            value = getattr(consumer, attribute)
            if value in seen:
                raise ConfigError(path, f"row {index}.{attribute}", f"duplicate {attribute} {value!r}")
            seen.add(value)


def _check_tiers(consumers_path: Path, consumers: Sequence[Consumer], tiers: Iterable[str]) -> None:
    known = set(tiers) | {ANONYMOUS_TIER}
    for index, consumer in enumerate(consumers, start=1):
        if consumer.tier not in known:
            raise ConfigError(consumers_path, f"row {index}.tier", f"tier {consumer.tier!r} is not in the policy")


def load_target(config_path: Path) -> TargetConfig:
    """Read and validate the target file; relative ``consumers``/``policy`` paths become absolute."""
    config = load_model(config_path, TargetConfig)
    base = config_path.parent
    updates: dict[str, object] = {"consumers": base / config.consumers}
    if config.policy is not None:
        updates["policy"] = base / config.policy
    return config.model_copy(update=updates)


class ExternalProvider:
    """An existing deployment described by a target file; see the module docstring."""

    name = "external"

    def __init__(
        self,
        config_path: Path | None,
        allow_hosts: Sequence[str] = (),
        *,
        state_path: Path,
        client_factory: Callable[[], httpx.Client] | None = None,
        policy_path: Path = DEFAULT_POLICY_PATH,
    ) -> None:
        self.config_path = config_path
        self.allow_hosts = tuple(allow_hosts)
        self.state_path = state_path
        self._client_factory = client_factory
        self.policy_path = policy_path

    @classmethod
    def from_options(cls, options: ProviderOptions) -> ExternalProvider:
        return cls(options.target, options.allow_hosts, state_path=options.state_path, policy_path=options.policy_path)

    def _target(self) -> Path:
        if self.config_path is None:
            raise UsageError("--target: the external provider needs a target file (gateway URL, consumers)")
        return self.config_path

    def _client(self) -> httpx.Client:
        if self._client_factory is not None:
            return self._client_factory()
        return httpx.Client(timeout=REACHABILITY_TIMEOUT_S)

    def plan(self) -> StackState:
        """Validate the target file and build the state, without any network traffic."""
        target = self._target()
        config = load_target(target)
        urls = [*config.gateway, *([config.prometheus] if config.prometheus else [])]
        check_hosts(urls, [*self.allow_hosts, *config.allow_hosts], target)
        consumers = read_consumers(config.consumers)
        if config.policy is not None:
            _check_tiers(config.consumers, consumers, load_policy(config.policy).tiers)
        if config.quota_model == "kong" and config.kong is None:
            raise ConfigError(target, "kong", "required with model kong: the rate-limiting plugin as deployed")
        spec = None
        if config.kong is not None:
            spec = config.kong.spec(load_policy(config.policy or self.policy_path), len(config.gateway), target)
            _check_tiers(config.consumers, consumers, spec.tiers)
        return StackState(
            provider=self.name,
            stack_id="ext-" + uuid.uuid4().hex[:8],
            work_dir=str(self.state_path.parent),
            state_file=str(self.state_path),
            replicas=spec.replicas if spec is not None else len(config.gateway),
            model=config.quota_model,
            kong=spec,
            policy_file=str(config.policy) if config.policy else None,
            target_file=str(target.resolve()),
            endpoints=Endpoints(
                gateway=config.gateway[0],
                replicas=list(config.gateway),
                prometheus=config.prometheus,
                calibration_path=config.calibration_path or "",  # "" = the target has no calibration route
            ),
            consumers=consumers,
        )

    def up(self) -> StackState:
        """Check that every gateway URL answers HTTP (any status) and Prometheus is ready, then write the state."""
        state = self.plan()
        endpoints = state.require_endpoints()
        with self._client() as client:
            for url in endpoints.replicas:
                _reachable(client, url, "gateway")
            if endpoints.prometheus:
                _reachable(client, endpoints.prometheus.rstrip("/") + "/-/ready", "prometheus", need_ok=True)
        state.ready = True
        write_state(state, self.state_path)
        return state

    def down(self, state: StackState) -> None:
        """Nothing to stop: the deployment is not ours. Only the state file is left for the caller."""
        del state

    def status(self, state: StackState) -> list[ServiceHealth]:
        """One row per gateway URL (and Prometheus): does it answer HTTP at all (Prometheus: 200)?"""
        endpoints = state.require_endpoints()
        rows = []
        with self._client() as client:
            for n, url in enumerate(endpoints.replicas, 1):
                rows.append(ServiceHealth(f"gateway-{n}", "remote", _answers(client, url), url))
            if endpoints.prometheus:
                ready = _answers(client, endpoints.prometheus.rstrip("/") + "/-/ready", need_ok=True)
                rows.append(ServiceHealth("prometheus", "remote", ready, endpoints.prometheus))
        return rows

    def handle(self, state: StackState, service: str) -> ServiceHandle:
        raise UsageError(f"{CHAOS_REFUSED} (asked for {service!r} of stack {state.stack_id})")

    def add_consumer(self, state: StackState, tier: str) -> Consumer:
        raise UsageError(
            f"stack {state.stack_id} is external: its consumers are the ones its target file lists; "
            "quotaquake cannot add one"
        )

    def reset_consumers(self, state: StackState, consumers: Sequence[Consumer]) -> None:
        raise UsageError(
            f"stack {state.stack_id} is external: quotaquake cannot reset the quota state of its "
            f"{len(consumers)} consumer(s); the initial state stays unknown"
        )


def _answers(client: httpx.Client, url: str, *, need_ok: bool = False) -> bool:
    try:
        _reachable(client, url, "target", need_ok=need_ok)
    except StackError:
        return False
    return True


def _reachable(client: httpx.Client, url: str, what: str, *, need_ok: bool = False) -> None:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise StackError(what, f"{url} does not answer: {type(exc).__name__}: {exc}") from None
    if need_ok and response.status_code != 200:
        raise StackError(what, f"{url} answered {response.status_code}, expected 200")


__all__ = [
    "CHAOS_REFUSED",
    "ConsumerRow",
    "ExternalProvider",
    "TargetConfig",
    "check_hosts",
    "is_loopback",
    "load_target",
    "read_consumers",
]
