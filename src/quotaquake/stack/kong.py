"""Kong 3.9 (OSS) configuration derived from the quota policy: an Admin API plan and a DB-less file.

Both describe the same gateway:

* service ``fingerprint-api`` (the stub API) with routes ``/identify``, ``/compare``, ``/batch``,
  ``/health`` and the ``key-auth`` plugin (``key_names``: ``apikey`` and ``x-api-key``,
  ``hide_credentials``, ``anonymous`` = the ``anonymous`` consumer);
* service ``calibrate`` with route ``/calibrate`` answered by ``request-termination`` (200, no upstream,
  no auth, no limit): the load generator's ceiling probe, like the local stack's direct response;
* one consumer per registered consumer (``username`` = consumer id, tier as tag ``tier-<tier>``: Kong's
  ``custom_id`` is unique per consumer, so it cannot hold the tier) with its
  key-auth credential, and one ``rate-limiting`` plugin per consumer of a limited tier (OSS Kong has
  no consumer-group limits): ``minute`` / ``month`` from the tier, ``limit_by: consumer``,
  ``policy: redis``, ``fault_tolerant: true``, ``redis: {host, port, timeout}``;
* the ``anonymous`` consumer (keyless clients) with a ``rate-limiting`` plugin ``limit_by: ip``;
* the global ``prometheus`` plugin.

What Kong OSS rate-limiting actually does (the ``fixed-window`` verification model):

* **Fixed windows aligned to UTC**: the minute counter covers ``[hh:mm:00, hh:mm+1:00)`` UTC and the
  month counter the UTC calendar month (``kong.tools.timestamp.get_timestamps``). No burst: at most
  ``minute`` requests per window, hence up to ``2 x minute`` in a 60 s span that straddles a boundary.
* **No per-endpoint costs**: every request counts 1 (``/compare`` with cost 2 and ``/health`` with
  cost 0 alike). The policy's endpoint costs cannot be expressed with the OSS plugin, so the
  fixed-window model ignores costs.
* **Rejected requests are not counted**: in ``kong/plugins/rate-limiting/handler.lua`` the access
  phase reads the usage of every period, and ``if stop then ... return kong.response.error(429)``
  returns *before* the increment is scheduled; only requests that go through reach
  ``increment(...)`` (Kong/kong ``handler.lua`` at commit 9dd7d469: "Increment metrics for all periods
  if the request goes through"; the Kong 3.9.1 handler keeps the same order, as the 3.9.1-based
  fork in the search corpus shows). The issue text said the opposite; the source says otherwise.
* **Check-then-increment is not atomic**: usage is read (Redis GET per period) before the increment
  (INCRBY + EXPIRE pipeline, synchronous with the default ``sync_rate: -1``), so requests in flight at
  the same time on several replicas can read the same count: a small over-admission at the limit,
  bounded by the number of concurrent requests of one consumer.
* **Headers** (limited consumers only): ``X-RateLimit-Limit-Minute``, ``X-RateLimit-Remaining-Minute``
  (and ``-Month``), ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds to the
  end of the most constrained window); ``Retry-After`` on 429 with body
  ``{"message": "API rate limit exceeded"}``.
* **Redis down, fault_tolerant**: the usage lookup fails, the plugin logs it and proxies the request
  *without any rate-limit header* (no limit is enforced; increments are lost).
* **Keyless and unknown keys**: with ``anonymous`` set, key-auth falls back to the anonymous consumer
  both when the key is missing and when it is unknown (Kong/kong ``key-auth/handler.lua``), so unknown
  keys get the anonymous limit instead of the local stack's 401. The anonymous limit counts per client
  IP; the Kong containers trust ``X-Forwarded-For`` (``trusted_ips`` 0.0.0.0/0, ``real_ip_header``
  X-Forwarded-For, recursive) so one generator can stand in for many client IPs, like the local LB.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from quotaquake.errors import StackError
from quotaquake.load.safety import check_target
from quotaquake.policy import ANONYMOUS_TIER, Limits, Policy
from quotaquake.stack.state import Consumer

JsonObject = dict[str, Any]

SERVICE_NAME = "fingerprint-api"
CALIBRATE_SERVICE = "calibrate"
API_PATHS: tuple[str, ...] = ("/identify", "/compare", "/batch", "/health")
CALIBRATION_PATH = "/calibrate"
KEY_NAMES: tuple[str, ...] = ("apikey", "x-api-key")
ANONYMOUS_USERNAME = "anonymous"
REDIS_TIMEOUT_MS = 2000  # Kong's default redis.timeout: the plugin waits this long before failing open
DEFAULT_UPSTREAM = "http://stub-api:3000"
UNREACHABLE_UPSTREAM = "http://127.0.0.1:9"  # never contacted: request-termination answers first
FORMAT_VERSION = "3.0"
_ID_NAMESPACE = uuid.UUID("6f1c2a52-5d1e-4c55-9a51-7b3a8e0f0c11")


@dataclass(frozen=True)
class AdminCall:
    """One Kong Admin API request: ``method`` on ``path`` (relative to the admin URL) with a JSON body."""

    method: str
    path: str
    json: JsonObject = field(default_factory=dict)


def entity_id(kind: str, name: str) -> str:
    """A deterministic UUID for a Kong entity, so the plan can reference entities it has not created yet."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{name}"))


def _number(value: float) -> int | float:
    """Kong's schema fields are ``number``; integral limits are written as ints for readable configs."""
    return int(value) if float(value).is_integer() else value


def rate_limiting_config(limits: Limits, redis_host: str, redis_port: int, *, limit_by: str) -> JsonObject | None:
    """The ``config`` of a rate-limiting plugin for ``limits``; ``None`` for an unlimited tier.

    Only the periods the tier limits are set (Kong requires at least one; ``month`` must not be below
    ``minute``, which the policy's tiers satisfy). Costs are not expressible: each request counts 1.
    """
    if limits.unlimited:
        return None
    config: JsonObject = {}
    if limits.per_minute is not None:
        config["minute"] = _number(limits.per_minute)
    if limits.per_month is not None:
        config["month"] = limits.per_month
    config.update(
        {
            "limit_by": limit_by,
            "policy": "redis",
            "fault_tolerant": True,
            "hide_client_headers": False,
            "redis": {"host": redis_host, "port": redis_port, "timeout": REDIS_TIMEOUT_MS},
        }
    )
    return config


def key_auth_config() -> JsonObject:
    return {
        "key_names": list(KEY_NAMES),
        "hide_credentials": True,
        "anonymous": entity_id("consumer", ANONYMOUS_USERNAME),
    }


def consumer_entity(consumer: Consumer) -> JsonObject:
    return {
        "id": entity_id("consumer", consumer.id),
        "username": consumer.id,
        "tags": ["quotaquake", f"tier-{consumer.tier}"],
    }


def anonymous_entity() -> JsonObject:
    return {
        "id": entity_id("consumer", ANONYMOUS_USERNAME),
        "username": ANONYMOUS_USERNAME,
        "tags": ["quotaquake", f"tier-{ANONYMOUS_TIER}"],
    }


def _route(path: str) -> JsonObject:
    name = path.strip("/") or "root"
    return {"id": entity_id("route", name), "name": name, "paths": [path], "strip_path": False}


def _service(upstream_url: str) -> JsonObject:
    return {"id": entity_id("service", SERVICE_NAME), "name": SERVICE_NAME, "url": upstream_url}


def _calibrate_service() -> JsonObject:
    return {"id": entity_id("service", CALIBRATE_SERVICE), "name": CALIBRATE_SERVICE, "url": UNREACHABLE_UPSTREAM}


def _plugin_call(name: str, config: JsonObject, scope: str | None = None, scope_id: str | None = None) -> AdminCall:
    """``PUT /plugins/<id>`` of a plugin, global or scoped to one entity (``scope`` = ``consumer``,
    ``service`` or ``route``); the id is derived from name and scope, so re-running converges."""
    plugin: JsonObject = {"id": entity_id("plugin", f"{name}:{scope}:{scope_id}"), "name": name, "config": config}
    if scope is not None and scope_id is not None:
        plugin[scope] = {"id": scope_id}
    return AdminCall("PUT", f"/plugins/{plugin['id']}", plugin)


def _consumer_limits(policy: Policy, consumer: Consumer) -> Limits:
    try:
        return policy.limits_for(consumer.tier)
    except KeyError:
        raise StackError("kong", f"consumer {consumer.id} has tier {consumer.tier!r}, not in the policy") from None


def consumer_calls(policy: Policy, consumer: Consumer, redis_host: str, redis_port: int) -> list[AdminCall]:
    """Create one consumer, its key-auth credential and (limited tiers only) its rate-limiting plugin."""
    entity = consumer_entity(consumer)
    credential_id = entity_id("key-auth", consumer.id)
    calls = [
        AdminCall("PUT", f"/consumers/{entity['id']}", entity),
        AdminCall(
            "PUT", f"/consumers/{entity['id']}/key-auth/{credential_id}", {"id": credential_id, "key": consumer.key}
        ),
    ]
    config = rate_limiting_config(_consumer_limits(policy, consumer), redis_host, redis_port, limit_by="consumer")
    if config is not None:
        calls.append(_plugin_call("rate-limiting", config, "consumer", entity["id"]))
    return calls


def provisioning_plan(
    policy: Policy,
    consumers: Sequence[Consumer],
    redis_host: str,
    redis_port: int,
    upstream_url: str = DEFAULT_UPSTREAM,
) -> list[AdminCall]:
    """Every Admin API call, in order, that turns an empty Kong database into the quotaquake gateway.

    Entities get deterministic ids (``entity_id``) and are created with ``PUT /<entities>/<id>``
    (create-or-replace), so running the plan twice converges instead of failing on duplicates. ``redis_host``
    and ``redis_port`` are the address Kong's containers reach Redis on (the network alias, not the
    host-mapped port).
    """
    service = _service(upstream_url)
    calls = [AdminCall("PUT", f"/services/{service['id']}", service)]
    for path in API_PATHS:
        route = _route(path)
        calls.append(AdminCall("PUT", f"/services/{service['id']}/routes/{route['id']}", route))
    calls.extend(_calibrate_calls())
    anonymous = anonymous_entity()
    calls.append(AdminCall("PUT", f"/consumers/{anonymous['id']}", anonymous))
    anon_config = rate_limiting_config(policy.anonymous, redis_host, redis_port, limit_by="ip")
    if anon_config is not None:
        calls.append(_plugin_call("rate-limiting", anon_config, "consumer", anonymous["id"]))
    calls.append(_plugin_call("key-auth", key_auth_config(), "service", service["id"]))
    for consumer in consumers:
        calls.extend(consumer_calls(policy, consumer, redis_host, redis_port))
    calls.append(_plugin_call("prometheus", prometheus_config()))
    return calls


def _calibrate_calls() -> list[AdminCall]:
    service = _calibrate_service()
    route = _route(CALIBRATION_PATH)
    return [
        AdminCall("PUT", f"/services/{service['id']}", service),
        AdminCall("PUT", f"/services/{service['id']}/routes/{route['id']}", route),
        _plugin_call("request-termination", calibrate_config(), "route", route["id"]),
    ]


def calibrate_config() -> JsonObject:
    return {"status_code": 200, "message": "calibrate"}


def prometheus_config() -> JsonObject:
    """Per-status and latency metrics; per-consumer series so 429s can be split by tier."""
    return {"per_consumer": True, "status_code_metrics": True, "latency_metrics": True}


def declarative_config(
    policy: Policy,
    consumers: Sequence[Consumer],
    redis_host: str,
    redis_port: int,
    upstream_url: str = DEFAULT_UPSTREAM,
) -> JsonObject:
    """The same gateway as ``provisioning_plan`` for DB-less Kong (``KONG_DATABASE=off``,
    ``KONG_DECLARATIVE_CONFIG=<file>``), format ``_format_version: "3.0"``."""
    service = _service(upstream_url)
    service["routes"] = [_route(path) for path in API_PATHS]
    service["plugins"] = [{"name": "key-auth", "config": key_auth_config()}]
    calibrate = _calibrate_service()
    calibrate["routes"] = [_route(CALIBRATION_PATH)]
    calibrate["routes"][0]["plugins"] = [{"name": "request-termination", "config": calibrate_config()}]
    return {
        "_format_version": FORMAT_VERSION,
        "_transform": True,
        "services": [service, calibrate],
        "consumers": [_anonymous_declarative(policy, redis_host, redis_port)]
        + [_consumer_declarative(policy, c, redis_host, redis_port) for c in consumers],
        "plugins": [{"name": "prometheus", "config": prometheus_config()}],
    }


def _anonymous_declarative(policy: Policy, redis_host: str, redis_port: int) -> JsonObject:
    entity = anonymous_entity()
    config = rate_limiting_config(policy.anonymous, redis_host, redis_port, limit_by="ip")
    entity["plugins"] = [] if config is None else [{"name": "rate-limiting", "config": config}]
    return entity


def _consumer_declarative(policy: Policy, consumer: Consumer, redis_host: str, redis_port: int) -> JsonObject:
    entity = consumer_entity(consumer)
    entity["keyauth_credentials"] = [{"key": consumer.key}]
    config = rate_limiting_config(_consumer_limits(policy, consumer), redis_host, redis_port, limit_by="consumer")
    entity["plugins"] = [] if config is None else [{"name": "rate-limiting", "config": config}]
    return entity


def write_declarative(
    path: Path,
    policy: Policy,
    consumers: Sequence[Consumer],
    redis_host: str,
    redis_port: int,
    upstream_url: str = DEFAULT_UPSTREAM,
) -> Path:
    """Write the DB-less declarative file (YAML) to ``path`` and return it."""
    config = declarative_config(policy, consumers, redis_host, redis_port, upstream_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated by quotaquake.stack.kong.write_declarative from the quota policy; do not edit.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def execute_plan(
    admin_url: str,
    calls: Iterable[AdminCall],
    *,
    client_factory: Callable[[], httpx.Client] | None = None,
) -> int:
    """Send ``calls`` to the Admin API in order; the first non-2xx answer is a ``StackError``.

    ``client_factory`` lets tests inject ``httpx.Client(transport=MockTransport(...))``. Returns the
    number of calls sent.
    """
    if client_factory is None:  # a real connection: the loopback guard first (an injected client is a test's)
        check_target(admin_url, what="Kong Admin API")
    factory = client_factory or (lambda: httpx.Client(timeout=10.0))
    sent = 0
    with factory() as client:
        for call in calls:
            _send(client, admin_url, call)
            sent += 1
    return sent


def _send(client: httpx.Client, admin_url: str, call: AdminCall) -> None:
    url = admin_url.rstrip("/") + call.path
    try:
        response = client.request(call.method, url, json=call.json)
    except httpx.HTTPError as exc:
        raise StackError("kong", f"Admin API {call.method} {call.path} failed: {exc}") from None
    if not response.is_success:
        detail = response.text.strip().replace("\n", " ")[:300]
        raise StackError("kong", f"Admin API {call.method} {call.path} -> {response.status_code}: {detail}")


EXAMPLE_CONSUMERS: tuple[Consumer, ...] = tuple(
    Consumer(id=f"{tier}-1", tier=tier, key=f"example-{tier}-key") for tier in ("free", "pro", "enterprise", "partner")
)
EXAMPLE_PATH = Path("stack/kong/kong.yaml")


def main() -> None:
    """``python -m quotaquake.stack.kong``: regenerate the checked-in DB-less example from stack/policy.yaml."""
    from quotaquake.policy import load_policy

    write_declarative(EXAMPLE_PATH, load_policy(), EXAMPLE_CONSUMERS, "redis", 6379)
    print(EXAMPLE_PATH)


if __name__ == "__main__":
    main()
