"""The Kong provisioning plan and declarative file, checked against Kong 3.9's documented plugin schemas.

The schema facts below are transcribed from Kong's sources/docs (rate-limiting ``schema.lua`` with the
``redis`` record of ``kong/tools/redis/schema.lua``; key-auth ``schema.lua``; request-termination and
prometheus plugin docs) so that a config key Kong would reject fails here first.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest
import yaml

from quotaquake.errors import StackError
from quotaquake.kongspec import KongSpec
from quotaquake.policy import Policy, load_policy
from quotaquake.stack import kong
from quotaquake.stack.state import Consumer

REPO = Path(__file__).resolve().parents[2]

RATE_LIMITING_FIELDS = {
    "second", "minute", "hour", "day", "month", "year", "limit_by", "header_name", "path", "policy",
    "fault_tolerant", "redis", "hide_client_headers", "error_code", "error_message", "sync_rate",
}  # fmt: skip
REDIS_RECORD_FIELDS = {
    "host",
    "port",
    "timeout",
    "username",
    "password",
    "database",
    "ssl",
    "ssl_verify",
    "server_name",
}
LIMIT_BY = {"consumer", "credential", "ip", "service", "header", "path"}
POLICIES = {"local", "cluster", "redis"}
PERIODS = ("second", "minute", "hour", "day", "month", "year")
KEY_AUTH_FIELDS = {
    "key_names", "hide_credentials", "anonymous", "key_in_header", "key_in_query", "key_in_body",
    "run_on_preflight", "realm",
}  # fmt: skip
REQUEST_TERMINATION_FIELDS = {"status_code", "message", "body", "content_type", "trigger", "echo"}
CORS_FIELDS = {
    "origins",
    "headers",
    "exposed_headers",
    "methods",
    "max_age",
    "credentials",
    "private_network",
    "preflight_continue",
}  # fmt: skip  (kong/plugins/cors/schema.lua at 3.9.3)
PROMETHEUS_FIELDS = {
    "per_consumer", "status_code_metrics", "latency_metrics", "bandwidth_metrics", "upstream_health_metrics",
    "ai_metrics",
}  # fmt: skip


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(REPO / "stack" / "policy.yaml")


@pytest.fixture(scope="module")
def consumers() -> list[Consumer]:
    tiers = ("free", "pro", "enterprise", "partner")
    return [Consumer(id=f"{t}-1", tier=t, key=f"key-{t}") for t in tiers]


@pytest.fixture(scope="module")
def spec(policy: Policy) -> KongSpec:
    return kong.spec_for(policy, replicas=3)


@pytest.fixture(scope="module")
def plan(spec: KongSpec, consumers: list[Consumer]) -> list[kong.AdminCall]:
    return kong.provisioning_plan(spec, consumers, "redis", 6379)


def plugins(plan: list[kong.AdminCall], name: str) -> list[dict[str, object]]:
    return [c.json for c in plan if c.path.startswith("/plugins/") and c.json["name"] == name]


def check_rate_limiting_schema(config: dict[str, object]) -> None:
    """Kong's rate-limiting schema: known fields, at least one period, periods ordered, redis record."""
    assert set(config) <= RATE_LIMITING_FIELDS
    assert config["limit_by"] in LIMIT_BY and config["policy"] in POLICIES
    limits = [(p, config[p]) for p in PERIODS if p in config]
    assert limits, "at_least_one_of second..year"
    for (_, lower), (_, upper) in itertools.pairwise(limits):
        assert isinstance(lower, int | float) and isinstance(upper, int | float) and upper >= lower
    assert all(isinstance(v, int | float) and v > 0 for _, v in limits)
    if config["policy"] == "redis":
        redis = config["redis"]
        assert isinstance(redis, dict) and set(redis) <= REDIS_RECORD_FIELDS
        assert {"host", "port", "timeout"} <= set(redis)  # conditional required fields for policy redis


def consumer_of(plugin: dict[str, object]) -> str:
    scope = plugin["consumer"]
    assert isinstance(scope, dict)
    return str(scope["id"])


def test_free_tier_gets_minute_and_month_limits_in_redis(plan: list[kong.AdminCall], policy: Policy) -> None:
    free = [p for p in plugins(plan, "rate-limiting") if consumer_of(p) == kong.entity_id("consumer", "free-1")]
    assert len(free) == 1
    config = free[0]["config"]
    assert isinstance(config, dict)
    assert config["minute"] == 100 and config["month"] == 50000
    assert config["policy"] == "redis" and config["sync_rate"] == -1 and config["limit_by"] == "consumer"
    assert config["fault_tolerant"] is True  # fail-open-local: Kong's nearest is an unlimited pass-through
    # the policy's Redis timeout, not Kong's 2000 ms default (kong/tools/redis/schema.lua:2,11)
    assert config["redis"] == {"host": "redis", "port": 6379, "timeout": 50}
    assert policy.degradation.redis_timeout_ms == 50


def test_the_plan_and_the_declared_spec_agree(plan: list[kong.AdminCall], spec: KongSpec) -> None:
    # what the state file declares (KongSpec) is what the plugins are configured with
    for plugin in plugins(plan, "rate-limiting"):
        config = plugin["config"]
        assert isinstance(config, dict)
        assert (
            config["fault_tolerant"] is spec.fault_tolerant
            and config["hide_client_headers"] is spec.hide_client_headers
        )
        assert config["error_code"] == spec.error_code and config["redis"]["timeout"] == spec.redis_timeout_ms  # type: ignore[index]
    assert spec.tiers["free"].as_mapping() == {"minute": 100, "month": 50000}
    assert spec.anonymous is not None and spec.anonymous.as_mapping() == {"minute": 20}
    assert spec.cors_preflight and spec.forwarded_ip_trusted and spec.workers_per_replica == 1


def test_fail_closed_policy_provisions_kong_without_fault_tolerance(policy: Policy) -> None:
    closed = Policy.model_validate({**policy.model_dump(), "degradation": {"on_redis_unavailable": "fail-closed"}})
    spec = kong.spec_for(closed, replicas=1)
    assert spec.fault_tolerant is False  # Kong then answers 500, not the policy's 503 (kong/init.lua:393-410)
    [plugin, *_] = plugins(kong.provisioning_plan(spec, [], "redis", 6379), "rate-limiting")
    assert plugin["config"]["fault_tolerant"] is False  # type: ignore[index]


def test_cors_answers_preflights_on_the_api_service(plan: list[kong.AdminCall]) -> None:
    # cors (PRIORITY 2000) answers a preflight before key-auth (1250) and rate-limiting (910)
    [cors] = plugins(plan, "cors")
    config = cors["config"]
    assert isinstance(config, dict) and set(config) <= CORS_FIELDS and config["preflight_continue"] is False
    assert cors["service"] == {"id": kong.entity_id("service", kong.SERVICE_NAME)}


def test_every_rate_limiting_plugin_matches_kong_schema(plan: list[kong.AdminCall]) -> None:
    found = plugins(plan, "rate-limiting")
    assert found
    for plugin in found:
        config = plugin["config"]
        assert isinstance(config, dict)
        check_rate_limiting_schema(config)


def test_unlimited_tiers_get_no_rate_limiting_plugin(plan: list[kong.AdminCall]) -> None:
    limited = {consumer_of(p) for p in plugins(plan, "rate-limiting")}
    for name in ("enterprise-1", "partner-1"):
        assert kong.entity_id("consumer", name) not in limited
    assert kong.entity_id("consumer", "pro-1") in limited


def test_anonymous_consumer_is_limited_per_ip(plan: list[kong.AdminCall], policy: Policy) -> None:
    anon_id = kong.entity_id("consumer", kong.ANONYMOUS_USERNAME)
    [anon] = [p for p in plugins(plan, "rate-limiting") if consumer_of(p) == anon_id]
    config = anon["config"]
    assert isinstance(config, dict)
    assert config["limit_by"] == "ip" and config["minute"] == policy.anonymous.per_minute
    assert "month" not in config  # the policy leaves anonymous monthly usage unlimited


def test_key_auth_on_the_api_service_with_both_headers_and_anonymous_fallback(plan: list[kong.AdminCall]) -> None:
    [key_auth] = plugins(plan, "key-auth")
    config = key_auth["config"]
    assert isinstance(config, dict) and set(config) <= KEY_AUTH_FIELDS
    assert config["key_names"] == ["apikey", "x-api-key"]
    assert config["hide_credentials"] is True
    assert config["anonymous"] == kong.entity_id("consumer", kong.ANONYMOUS_USERNAME)
    assert key_auth["service"] == {"id": kong.entity_id("service", kong.SERVICE_NAME)}


def test_consumers_created_before_their_plugins_and_credentials(plan: list[kong.AdminCall]) -> None:
    created: set[str] = set()
    for call in plan:
        if call.path.startswith("/consumers/") and call.path.count("/") == 2:
            created.add(call.path.split("/")[2])
        elif "/key-auth/" in call.path:
            assert call.path.split("/")[2] in created
        elif call.path.startswith("/plugins/") and "consumer" in call.json:
            assert consumer_of(call.json) in created
    assert kong.entity_id("consumer", kong.ANONYMOUS_USERNAME) in created


def test_key_auth_credentials_carry_the_consumers_keys(plan: list[kong.AdminCall], consumers: list[Consumer]) -> None:
    keys = {c.json["key"] for c in plan if "/key-auth/" in c.path}
    assert keys == {c.key for c in consumers}


def test_routes_cover_the_api_paths_and_calibration(plan: list[kong.AdminCall]) -> None:
    routes = [c.json for c in plan if "/routes/" in c.path and c.path.startswith("/services/")]
    paths = sorted(p for r in routes for p in r["paths"])
    assert paths == sorted([*kong.API_PATHS, kong.CALIBRATION_PATH, kong.GATEWAY_HEALTH_PATH])
    assert all(r["strip_path"] is False for r in routes)
    [termination] = plugins(plan, "request-termination")
    config = termination["config"]
    assert isinstance(config, dict) and set(config) <= REQUEST_TERMINATION_FIELDS and config["status_code"] == 200


def test_prometheus_is_a_global_plugin(plan: list[kong.AdminCall]) -> None:
    [prometheus] = plugins(plan, "prometheus")
    assert not {"consumer", "service", "route"} & set(prometheus)
    config = prometheus["config"]
    assert isinstance(config, dict) and set(config) <= PROMETHEUS_FIELDS


def test_plan_uses_idempotent_puts_with_stable_ids(spec: KongSpec, consumers: list[Consumer]) -> None:
    first = kong.provisioning_plan(spec, consumers, "redis", 6379)
    assert first == kong.provisioning_plan(spec, consumers, "redis", 6379)
    assert {c.method for c in first} == {"PUT"}
    ids = [c.path for c in first]
    assert len(ids) == len(set(ids)), "two calls write the same entity"


def test_unknown_tier_is_a_stack_error(spec: KongSpec) -> None:
    with pytest.raises(StackError, match="gold"):
        kong.provisioning_plan(spec, [Consumer(id="x", tier="gold", key="k")], "redis", 6379)


def test_declarative_file_matches_the_plan(
    tmp_path: Path, spec: KongSpec, consumers: list[Consumer], plan: list[kong.AdminCall]
) -> None:
    path = kong.write_declarative(tmp_path / "kong.yaml", spec, consumers, "redis", 6379)
    config = yaml.safe_load(path.read_text())
    assert config["_format_version"] == "3.0"
    by_name = {c["username"]: c for c in config["consumers"]}
    assert set(by_name) == {c.id for c in consumers} | {kong.ANONYMOUS_USERNAME}
    assert by_name["free-1"]["keyauth_credentials"] == [{"key": "key-free"}]
    assert by_name["enterprise-1"]["plugins"] == []
    plan_configs = {consumer_of(p): p["config"] for p in plugins(plan, "rate-limiting")}
    for consumer in config["consumers"]:
        for plugin in consumer["plugins"]:
            check_rate_limiting_schema(plugin["config"])
            assert plugin["config"] == plan_configs[consumer["id"]]
    api = next(s for s in config["services"] if s["name"] == kong.SERVICE_NAME)
    assert sorted(p for r in api["routes"] for p in r["paths"]) == sorted(kong.API_PATHS)
    assert [p["name"] for p in api["plugins"]] == ["key-auth", "cors"]
    assert [p["name"] for p in config["plugins"]] == ["prometheus"]


def test_checked_in_declarative_example_is_current(policy: Policy, tmp_path: Path) -> None:
    example = REPO / "stack" / "kong" / "kong.yaml"
    spec = kong.spec_for(policy, replicas=3)
    fresh = kong.write_declarative(tmp_path / "kong.yaml", spec, kong.EXAMPLE_CONSUMERS, "redis", 6379)
    assert example.read_text() == fresh.read_text(), "regenerate with `python -m quotaquake.stack.kong`"


def test_execute_plan_sends_calls_in_order_and_stops_at_the_first_error() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.url.path.endswith("/bad"):
            return httpx.Response(400, json={"message": "schema violation (config.minute: expected a number)"})
        return httpx.Response(200, json={})

    calls = [kong.AdminCall("PUT", "/a", {}), kong.AdminCall("PUT", "/bad", {}), kong.AdminCall("PUT", "/c", {})]
    factory = lambda: httpx.Client(transport=httpx.MockTransport(handler))  # noqa: E731
    with pytest.raises(StackError, match=r"PUT /bad -> 400: .*config.minute"):
        kong.execute_plan("http://admin:8001", calls, client_factory=factory)
    assert seen == [("PUT", "/a"), ("PUT", "/bad")]
    assert kong.execute_plan("http://admin:8001", calls[:1], client_factory=factory) == 1


def test_consumer_unique_fields_stay_unique_with_many_consumers_per_tier(spec: KongSpec) -> None:
    many = [Consumer(id=f"free-{n}", tier="free", key=f"k{n}") for n in range(3)]
    entities = [c.json for c in kong.provisioning_plan(spec, many, "redis", 6379) if c.path.count("/") == 2
                and c.path.startswith("/consumers/")]  # fmt: skip
    for unique in ("id", "username", "custom_id"):
        values = [e[unique] for e in entities if unique in e]
        assert len(values) == len(set(values)), f"Kong rejects duplicate consumer {unique}"
    assert all("tier-free" in e["tags"] for e in entities if e["username"] != kong.ANONYMOUS_USERNAME)


# ------------------------------------------------------------------------------------------ counters


def test_counter_keys_are_kongs():
    # policies/init.lua:16,50-73; the same key the verification model derives (verify.models.kong.redis_key)
    from quotaquake.verify.models.kong import redis_key

    consumer = Consumer(id="free-1", tier="free", key="k")
    identifier = kong.consumer_identifier(consumer)
    assert identifier == kong.entity_id("consumer", "free-1")
    now_s = 1_768_212_072  # 2026-01-12T10:01:12Z
    for period in ("minute", "month"):
        start = kong.window_start_ms(period, now_s)
        assert kong.counter_key(identifier, period, start) == redis_key(identifier, period, now_s)
    assert kong.window_start_ms("month", now_s) == 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_limits_shown_reads_kongs_per_period_headers():
    def answer(headers: dict[str, str], status: int = 200):  # type: ignore[no-untyped-def]
        def handler(request: httpx.Request) -> httpx.Response:
            assert request.headers["apikey"] == "k" and request.url.path == "/health"
            return httpx.Response(status, headers=headers)

        return handler

    limits = {"minute": 100, "month": 50000}
    kong_headers = {"X-RateLimit-Limit-Minute": "100", "X-RateLimit-Limit-Month": "50000"}
    cases = [
        (answer(kong_headers), limits, True),
        (answer(kong_headers, 429), limits, True),
        (answer({"X-RateLimit-Limit-Minute": "20"}), limits, False),  # the anonymous consumer's plugin
        (answer({}), limits, False),  # plugin not yet loaded, or Redis down (fault_tolerant pass-through)
        (answer({}), {}, True),  # an unlimited consumer known to key-auth
        (answer({"X-RateLimit-Limit-Minute": "20"}), {}, False),  # unknown key -> anonymous
    ]
    for handler, expected_limits, expected in cases:
        factory = lambda h=handler: httpx.Client(transport=httpx.MockTransport(h))  # noqa: E731
        assert kong.limits_shown("http://kong", "k", expected_limits, client_factory=factory) is expected
