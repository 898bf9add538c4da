"""Kong 3.9 (OSS) configuration derived from the quota policy: an Admin API plan and a DB-less file.

Both describe the same gateway, the seed's as far as Kong can express it (``KongSpec``, the declaration the
state file and ``run.json`` carry, is derived from the same policy by ``spec_for``):

* service ``fingerprint-api`` (the stub API) with routes ``/identify``, ``/compare``, ``/batch``, ``/health``,
  the ``key-auth`` plugin (``key_names``: ``apikey`` and ``x-api-key``, ``hide_credentials``, ``anonymous`` =
  the ``anonymous`` consumer) and ``cors`` (origins ``*``): the seed lists CORS, and it changes what the
  limiter sees: a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered
  by cors (PRIORITY 2000, ``kong/plugins/cors/handler.lua:193-241``) before key-auth (1250) and
  rate-limiting (910), so it is never counted;
* service ``calibrate`` with routes ``/calibrate`` and ``/gateway-health`` answered by
  ``request-termination`` (200, no upstream, no auth, no limit): the generator's ceiling probe and the
  health check chaos rollbacks poll through the load balancer, like the local stack's direct responses;
* one consumer per registered consumer (``username`` = consumer id, tier as tag ``tier-<tier>``: Kong's
  ``custom_id`` is unique per consumer, so it cannot hold the tier) with its key-auth credential, and one
  ``rate-limiting`` plugin per consumer of a limited tier (OSS Kong has no consumer-group limits):
  ``minute``/``month`` from the tier, ``limit_by: consumer``, ``policy: redis``, ``sync_rate: -1``,
  ``fault_tolerant`` from the policy's degradation (fail-open-local -> true: Kong's nearest, an unlimited
  pass-through), ``redis.timeout`` = the policy's ``redis_timeout_ms`` (Kong's default is 2000 ms,
  ``kong/tools/redis/schema.lua:2,11``);
* the ``anonymous`` consumer (keyless clients and unknown keys) with a ``rate-limiting`` plugin
  ``limit_by: ip``; the global ``prometheus`` plugin (per consumer, status codes, latencies).

Not provisioned: JWT (a second way to identify the same consumers: with ``limit_by: consumer`` a JWT client
is counted under its consumer exactly like a key-auth client, so the limiter sees nothing new; the load
generator sends API keys only) and request-transformer (PRIORITY 801, after rate-limiting's 910: it changes
nothing the limiter sees).

What Kong 3.9 rate limiting does (facts with source lines: ``docs/kong-3.9.md``; model:
``quotaquake.verify.models.kong``):

* fixed windows aligned to the UTC calendar (``kong/tools/timestamp.lua:46-69``), picked by the node's
  cached clock ``ngx.time()`` when the access phase starts (``handler.lua:127``); no burst, no costs (every
  request counts 1, ``handler.lua:209,212``);
* ``policy: redis``, ``sync_rate: -1``: per period one ``EVAL`` that ``INCR``s the window's key and returns
  the count *before* it (``policies/init.lua:407-415``), run before the check; admitted iff that count is
  below the limit in every period (``handler.lua:100-110``). **Rejected requests are counted** (since 3.4.0,
  PR #10559), and Redis linearizes the INCRs: the limit is exact across any number of replicas;
* counters are ``ratelimit:<route id>:<service id>:<identifier>:<window start ms>:<period>`` with zero UUIDs
  for a consumer-scoped plugin (``policies/init.lua:16,50-73``); the TTL (30 days for a month,
  ``expiration.lua``) is set by the key's first INCR, so a month key outlives a run;
* headers (limited consumers only): ``X-RateLimit-Limit-<Period>``, ``X-RateLimit-Remaining-<Period>``
  (``limit - count_before - 1``, clamped at 0; on a 429 only the stopping period is decremented),
  ``RateLimit-Limit``/``-Remaining``/``-Reset`` of the tightest window (a month's reset is days), and on a
  429 ``Retry-After``; the 429 body is Kong's error template ``{"message": "API rate limit exceeded",
  "request_id": ...}``;
* Redis unavailable: with ``fault_tolerant`` the request is proxied without rate-limit headers and without
  any limit (``handler.lua:144-152``), else HTTP 500; periods already INCRed stay counted;
* keyless requests and unknown keys: with ``anonymous`` set, key-auth falls back to the anonymous consumer
  (``key-auth/handler.lua:233-243``), so unknown keys get the anonymous limit instead of 401, counted per
  client IP; the Kong containers trust ``X-Forwarded-For`` (``trusted_ips`` 0.0.0.0/0, ``real_ip_header``
  X-Forwarded-For, recursive) so one generator can stand in for many client IPs, like the local LB.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from quotaquake.errors import StackError
from quotaquake.kongspec import KongLimits, KongSpec
from quotaquake.policy import ANONYMOUS_TIER, Policy
from quotaquake.stack.state import Consumer

JsonObject = dict[str, Any]

SERVICE_NAME = "fingerprint-api"
CALIBRATE_SERVICE = "calibrate"
API_PATHS: tuple[str, ...] = ("/identify", "/compare", "/batch", "/health")
CALIBRATION_PATH = "/calibrate"
GATEWAY_HEALTH_PATH = "/gateway-health"  # what chaos rollbacks and probes poll through the LB
KEY_NAMES: tuple[str, ...] = ("apikey", "x-api-key")
ANONYMOUS_USERNAME = "anonymous"
EMPTY_UUID = "00000000-0000-0000-0000-000000000000"  # route/service of an unscoped plugin (policies/init.lua:16)
COUNTER_TTL_S: dict[str, int] = {"minute": 60, "month": 2_592_000}  # expiration.lua:2,6
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


def spec_for(policy: Policy, replicas: int, **settings: object) -> KongSpec:
    """What the gateway this module provisions declares: the policy's tiers and timeout, ``policy: redis``
    with ``sync_rate: -1``, one nginx worker per replica (``KONG_NGINX_WORKER_PROCESSES``), the anonymous
    consumer counted per forwarded IP, CORS preflights answered before rate-limiting."""
    values: dict[str, object] = {
        "policy": "redis",
        "replicas": replicas,
        "workers_per_replica": 1,
        "forwarded_ip_trusted": True,
        "cors_preflight": True,
        **settings,
    }
    return KongSpec.from_policy(policy, **values)


def rate_limiting_config(
    limits: KongLimits | None, spec: KongSpec, redis_host: str, redis_port: int, *, limit_by: str
) -> JsonObject | None:
    """The ``config`` of a rate-limiting plugin for ``limits``; ``None`` for an unlimited tier.

    Only the periods the tier limits are set (Kong requires at least one; a longer period may not have a
    lower limit, schema.lua:10-23). Costs are not expressible: each request counts 1.
    """
    periods = {} if limits is None else limits.as_mapping()
    if not periods:
        return None
    config: JsonObject = dict(periods)
    config.update(
        {
            "limit_by": limit_by,
            "policy": spec.policy,
            "sync_rate": _number(spec.sync_rate_s),
            "fault_tolerant": spec.fault_tolerant,
            "hide_client_headers": spec.hide_client_headers,
            "error_code": spec.error_code,
            "redis": {"host": redis_host, "port": redis_port, "timeout": spec.redis_timeout_ms},
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


def _consumer_limits(spec: KongSpec, consumer: Consumer) -> KongLimits | None:
    if consumer.tier == ANONYMOUS_TIER:
        return spec.anonymous
    try:
        return spec.tiers[consumer.tier]
    except KeyError:
        raise StackError("kong", f"consumer {consumer.id} has tier {consumer.tier!r}, not in the policy") from None


def consumer_calls(spec: KongSpec, consumer: Consumer, redis_host: str, redis_port: int) -> list[AdminCall]:
    """Create one consumer, its key-auth credential and (limited tiers only) its rate-limiting plugin."""
    entity = consumer_entity(consumer)
    credential_id = entity_id("key-auth", consumer.id)
    calls = [
        AdminCall("PUT", f"/consumers/{entity['id']}", entity),
        AdminCall(
            "PUT", f"/consumers/{entity['id']}/key-auth/{credential_id}", {"id": credential_id, "key": consumer.key}
        ),
    ]
    config = rate_limiting_config(_consumer_limits(spec, consumer), spec, redis_host, redis_port, limit_by="consumer")
    if config is not None:
        calls.append(_plugin_call("rate-limiting", config, "consumer", entity["id"]))
    return calls


def provisioning_plan(
    spec: KongSpec,
    consumers: Sequence[Consumer],
    redis_host: str,
    redis_port: int,
    upstream_url: str = DEFAULT_UPSTREAM,
) -> list[AdminCall]:
    """Every Admin API call, in order, that turns an empty Kong database into the quotaquake gateway.

    Entities get deterministic ids (``entity_id``) and are created with ``PUT /<entities>/<id>``
    (create-or-replace), so running the plan twice converges instead of failing on duplicates. ``redis_host``
    and ``redis_port`` are the address Kong's containers reach Redis on (the network alias, not the
    host-mapped port). The consumers' rate-limiting plugins come last but for prometheus, so a replica
    that shows the last consumer's limit built its plugins from a database holding every earlier one.
    """
    service = _service(upstream_url)
    calls = [AdminCall("PUT", f"/services/{service['id']}", service)]
    for path in API_PATHS:
        route = _route(path)
        calls.append(AdminCall("PUT", f"/services/{service['id']}/routes/{route['id']}", route))
    calls.extend(_calibrate_calls())
    anonymous = anonymous_entity()
    calls.append(AdminCall("PUT", f"/consumers/{anonymous['id']}", anonymous))
    anon_config = rate_limiting_config(spec.anonymous, spec, redis_host, redis_port, limit_by="ip")
    if anon_config is not None:
        calls.append(_plugin_call("rate-limiting", anon_config, "consumer", anonymous["id"]))
    calls.append(_plugin_call("key-auth", key_auth_config(), "service", service["id"]))
    calls.append(_plugin_call("cors", cors_config(), "service", service["id"]))
    for consumer in consumers:
        calls.extend(consumer_calls(spec, consumer, redis_host, redis_port))
    calls.append(_plugin_call("prometheus", prometheus_config()))
    return calls


def _calibrate_calls() -> list[AdminCall]:
    service = _calibrate_service()
    calls = [AdminCall("PUT", f"/services/{service['id']}", service)]
    for path in (CALIBRATION_PATH, GATEWAY_HEALTH_PATH):
        route = _route(path)
        calls.append(AdminCall("PUT", f"/services/{service['id']}/routes/{route['id']}", route))
    calls.append(_plugin_call("request-termination", calibrate_config(), "service", service["id"]))
    return calls


def calibrate_config() -> JsonObject:
    return {"status_code": 200, "message": "calibrate"}


def cors_config() -> JsonObject:
    """CORS as the seed lists it: any origin; preflights answered by Kong (``preflight_continue`` false)."""
    return {"origins": ["*"], "preflight_continue": False}


def prometheus_config() -> JsonObject:
    """Per-status and latency metrics; per-consumer series so 429s can be split by tier."""
    return {"per_consumer": True, "status_code_metrics": True, "latency_metrics": True}


def declarative_config(
    spec: KongSpec,
    consumers: Sequence[Consumer],
    redis_host: str,
    redis_port: int,
    upstream_url: str = DEFAULT_UPSTREAM,
) -> JsonObject:
    """The same gateway as ``provisioning_plan`` for DB-less Kong (``KONG_DATABASE=off``,
    ``KONG_DECLARATIVE_CONFIG=<file>``), format ``_format_version: "3.0"``."""
    service = _service(upstream_url)
    service["routes"] = [_route(path) for path in API_PATHS]
    service["plugins"] = [
        {"name": "key-auth", "config": key_auth_config()},
        {"name": "cors", "config": cors_config()},
    ]
    calibrate = _calibrate_service()
    calibrate["routes"] = [_route(CALIBRATION_PATH), _route(GATEWAY_HEALTH_PATH)]
    calibrate["plugins"] = [{"name": "request-termination", "config": calibrate_config()}]
    return {
        "_format_version": FORMAT_VERSION,
        "_transform": True,
        "services": [service, calibrate],
        "consumers": [_anonymous_declarative(spec, redis_host, redis_port)]
        + [_consumer_declarative(spec, c, redis_host, redis_port) for c in consumers],
        "plugins": [{"name": "prometheus", "config": prometheus_config()}],
    }


def _anonymous_declarative(spec: KongSpec, redis_host: str, redis_port: int) -> JsonObject:
    entity = anonymous_entity()
    config = rate_limiting_config(spec.anonymous, spec, redis_host, redis_port, limit_by="ip")
    entity["plugins"] = [] if config is None else [{"name": "rate-limiting", "config": config}]
    return entity


def _consumer_declarative(spec: KongSpec, consumer: Consumer, redis_host: str, redis_port: int) -> JsonObject:
    entity = consumer_entity(consumer)
    entity["keyauth_credentials"] = [{"key": consumer.key}]
    config = rate_limiting_config(_consumer_limits(spec, consumer), spec, redis_host, redis_port, limit_by="consumer")
    entity["plugins"] = [] if config is None else [{"name": "rate-limiting", "config": config}]
    return entity


def write_declarative(
    path: Path,
    spec: KongSpec,
    consumers: Sequence[Consumer],
    redis_host: str,
    redis_port: int,
    upstream_url: str = DEFAULT_UPSTREAM,
) -> Path:
    """Write the DB-less declarative file (YAML) to ``path`` and return it."""
    config = declarative_config(spec, consumers, redis_host, redis_port, upstream_url)
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


# ------------------------------------------------------------------------------ counters (Kong's Redis keys)


def consumer_identifier(consumer: Consumer) -> str:
    """What Kong counts a consumer's requests under with ``limit_by: consumer`` (handler.lua:60-86): its
    Kong consumer id, which the plan derives from the consumer's registry id."""
    return entity_id("consumer", consumer.id)


def window_start_ms(period: str, now_s: float) -> int:
    """Start (ms, UTC) of the ``minute`` or ``month`` window holding ``now_s`` (kong/tools/timestamp.lua:46-69)."""
    moment = datetime.fromtimestamp(now_s, tz=UTC)
    if period == "minute":
        start = moment.replace(second=0, microsecond=0)
    elif period == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        raise ValueError(f"period {period!r}: only minute and month are provisioned")
    return int(start.timestamp()) * 1000


def counter_key(identifier: str, period: str, start_ms: int) -> str:
    """Kong's counter of a consumer-scoped (or global) plugin: route and service are zero UUIDs
    (``ratelimit:<route>:<service>:<identifier>:<window start ms>:<period>``, policies/init.lua:16,50-73)."""
    return f"ratelimit:{EMPTY_UUID}:{EMPTY_UUID}:{identifier}:{start_ms}:{period}"


def seed_month_count(redis_url: str, identifier: str, count: int, now_s: float) -> str:
    """Set the current month's counter of ``identifier`` to ``count`` requests, as Kong would have left it
    after ``count`` INCRs: the TTL is the one Kong's first INCR sets (30 days, policies/init.lua:410-412,
    expiration.lua:6). Returns the key."""
    key = counter_key(identifier, "month", window_start_ms("month", now_s))
    client = redis.Redis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        client.set(key, int(count), ex=COUNTER_TTL_S["month"])
    finally:
        client.close()
    return key


def limits_shown(
    proxy: str,
    key: str,
    limits: Mapping[str, int],
    timeout_s: float = 2.0,
    client_factory: Callable[[], httpx.Client] | None = None,
) -> bool:
    """One ``GET /health`` with ``key``: True once Kong answers with exactly these limits in effect.

    A limited consumer's answer (200 or 429) must carry ``X-RateLimit-Limit-<Period>`` equal to each of
    ``limits`` (handler.lua:160-167): its plugin runs on that node. For an unlimited consumer (``limits``
    empty) a 200 without any rate-limit header proves its credential is known (an unknown key would get the
    anonymous consumer's headers). The request is counted by Kong: delete the counters afterwards.
    ``client_factory`` lets tests inject ``httpx.Client(transport=MockTransport(...))``.
    """
    factory = client_factory or (lambda: httpx.Client(timeout=timeout_s))
    with factory() as client:
        response = client.get(proxy.rstrip("/") + "/health", headers={"apikey": key})
    if not limits:
        return response.status_code == 200 and not any(h.lower().startswith("x-ratelimit") for h in response.headers)
    shown = {p: response.headers.get(f"X-RateLimit-Limit-{p.capitalize()}") for p in limits}
    return response.status_code in (200, 429) and all(shown[p] == str(v) for p, v in limits.items())


EXAMPLE_CONSUMERS: tuple[Consumer, ...] = tuple(
    Consumer(id=f"{tier}-1", tier=tier, key=f"example-{tier}-key") for tier in ("free", "pro", "enterprise", "partner")
)
EXAMPLE_PATH = Path("stack/kong/kong.yaml")


def main() -> None:
    """``python -m quotaquake.stack.kong``: regenerate the checked-in DB-less example from stack/policy.yaml."""
    from quotaquake.policy import load_policy

    write_declarative(EXAMPLE_PATH, spec_for(load_policy(), replicas=3), EXAMPLE_CONSUMERS, "redis", 6379)
    print(EXAMPLE_PATH)


if __name__ == "__main__":
    main()
