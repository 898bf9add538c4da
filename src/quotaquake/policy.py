"""The quota policy (``stack/policy.yaml``): tiers, endpoint costs, anonymous limits, degradation.

Everything the limiter and the verification model know about quotas comes from here; nothing about
tiers is hard-coded elsewhere.

Units: ``per_minute`` is requests (cost units) per minute; the token bucket of a limited tier holds
``capacity = burst_factor * per_minute`` tokens and refills at ``per_minute / 60`` tokens per second.
``per_month`` is cost units per UTC calendar month. ``None`` means unlimited.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from quotaquake import defaults
from quotaquake.config import load_model

DEFAULT_POLICY_PATH = defaults.POLICY
"""The packaged ``stack/policy.yaml`` (``quotaquake.defaults``): found from any directory."""
ANONYMOUS_TIER = "anonymous"

QuotaModel = Literal["token-bucket", "fixed-window", "kong"]
"""How the target implements the policy: the embedded limiter's token bucket; ``kong``: Kong 3.9's
rate-limiting plugin as its ``KongSpec`` declares (``quotaquake.kongspec``); ``fixed-window``: a generic
fixed UTC window per minute and month (run folders recorded before the Kong model existed)."""


def _not_a_bool(value: object) -> object:
    """YAML ``true`` would otherwise be taken as the number 1."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


NotBool = BeforeValidator(_not_a_bool)
PositiveRate = Annotated[float, NotBool, Field(gt=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limits(_Frozen):
    """Per-minute and per-month limits; ``None`` means unlimited."""

    per_minute: PositiveRate | None = None
    per_month: Annotated[int, NotBool, Field(gt=0)] | None = None

    @property
    def unlimited(self) -> bool:
        return self.per_minute is None and self.per_month is None


class Bucket(_Frozen):
    """Token bucket shape shared by all limited tiers."""

    burst_factor: Annotated[float, NotBool, Field(ge=1.0, le=100.0)] = 1.5


class EndpointCost(_Frozen):
    cost: Annotated[float, NotBool, Field(ge=0.0)]


class ClientIpSource(StrEnum):
    """Where the limiter reads a keyless client's address from.

    ``x-forwarded-for``: the leftmost address of X-Forwarded-For (the lab's load balancer trusts it, so
    one load generator on loopback can stand in for many client IPs); ``peer``: the TCP peer.
    """

    XFF = "x-forwarded-for"
    PEER = "peer"


class Anonymous(Limits):
    """Limits for requests without an API key, counted per client IP."""

    client_ip: ClientIpSource = ClientIpSource.XFF


class DegradationMode(StrEnum):
    FAIL_OPEN_LOCAL = "fail-open-local"
    FAIL_CLOSED = "fail-closed"


class Degradation(_Frozen):
    """What the limiter does when Redis is unreachable or too slow.

    ``fail-open-local``: decide with per-replica in-process buckets at the same rates (so with N replicas
    up to N times the quota can be admitted while degraded); ``fail-closed``: reject with 503.
    """

    on_redis_unavailable: DegradationMode = DegradationMode.FAIL_OPEN_LOCAL
    redis_timeout_ms: Annotated[float, NotBool, Field(gt=0, le=10_000)] = 50.0
    redis_retry_seconds: Annotated[float, NotBool, Field(gt=0, le=600)] = 1.0


class Registry(_Frozen):
    """Consumer registry (Postgres) cache behaviour."""

    refresh_seconds: Annotated[float, NotBool, Field(gt=0, le=3600)] = 5.0


class Policy(_Frozen):
    version: int = 1
    bucket: Bucket = Bucket()
    tiers: dict[str, Limits]
    endpoints: dict[str, EndpointCost]
    default_cost: Annotated[float, NotBool, Field(ge=0.0)] = 1.0
    anonymous: Anonymous = Anonymous(per_minute=20)
    degradation: Degradation = Degradation()
    registry: Registry = Registry()

    @field_validator("tiers")
    @classmethod
    def _tier_names(cls, tiers: dict[str, Limits]) -> dict[str, Limits]:
        if not tiers:
            raise ValueError("at least one tier is required")
        if ANONYMOUS_TIER in tiers:
            raise ValueError(f"'{ANONYMOUS_TIER}' is reserved for keyless clients; use the 'anonymous' section")
        return tiers

    @field_validator("endpoints")
    @classmethod
    def _endpoint_paths(cls, endpoints: dict[str, EndpointCost]) -> dict[str, EndpointCost]:
        for path in endpoints:
            if not path.startswith("/"):
                raise ValueError(f"endpoint '{path}' must start with '/'")
        return endpoints

    def limits_for(self, tier: str) -> Limits:
        """Limits of a tier name, ``anonymous`` included. Raises ``KeyError`` for an unknown tier."""
        if tier == ANONYMOUS_TIER:
            return self.anonymous
        return self.tiers[tier]

    def cost_of(self, path: str) -> float:
        """Cost units of a request path (query string ignored); unknown paths cost ``default_cost``."""
        endpoint = self.endpoints.get(path.split("?", 1)[0])
        return self.default_cost if endpoint is None else endpoint.cost

    def capacity(self, limits: Limits) -> float | None:
        """Token bucket capacity in cost units, or ``None`` when the minute limit is unlimited."""
        if limits.per_minute is None:
            return None
        return self.bucket.burst_factor * limits.per_minute


def refill_per_second(limits: Limits) -> float | None:
    """Tokens added per second (``per_minute / 60``), or ``None`` when unlimited."""
    return None if limits.per_minute is None else limits.per_minute / 60.0


def load_policy(path: Path = DEFAULT_POLICY_PATH) -> Policy:
    """Read and validate a policy file; errors name the file and field (exit code 2 at the CLI)."""
    return load_model(path, Policy)
