"""Render the embedded stack's configuration files (Envoy replicas, Envoy LB, Prometheus) from the
Jinja2 templates in ``stack/gateway/``. Pure functions: same inputs, same text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from quotaquake.policy import Policy


@dataclass(frozen=True)
class ReplicaPorts:
    name: str  # gateway-N
    port: int
    admin_port: int
    limiter_port: int


def _environment(template_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def api_paths(policy: Policy) -> list[str]:
    """Paths the gateway proxies to the fingerprint API: the policy's endpoints, in declared order."""
    return list(policy.endpoints)


def render_replica(
    template_dir: Path,
    replica: ReplicaPorts,
    *,
    policy: Policy,
    stub_port: int,
    calibration_path: str,
    authz_timeout_s: float,
) -> str:
    return (
        _environment(template_dir)
        .get_template("replica.yaml.j2")
        .render(
            name=replica.name,
            port=replica.port,
            admin_port=replica.admin_port,
            limiter_port=replica.limiter_port,
            stub_port=stub_port,
            api_paths=api_paths(policy),
            calibration_path=calibration_path,
            authz_timeout_s=authz_timeout_s,
        )
    )


def render_lb(template_dir: Path, *, port: int, admin_port: int, replica_ports: list[int], hc_interval_s: float) -> str:
    return (
        _environment(template_dir)
        .get_template("lb.yaml.j2")
        .render(port=port, admin_port=admin_port, replica_ports=replica_ports, hc_interval_s=hc_interval_s)
    )


def render_prometheus(template_dir: Path, *, replicas: list[ReplicaPorts], lb_admin_port: int, stub_port: int) -> str:
    return (
        _environment(template_dir)
        .get_template("prometheus.yml.j2")
        .render(replicas=replicas, lb_admin_port=lb_admin_port, stub_port=stub_port)
    )


def render_redis_proxy(
    template_dir: Path,
    *,
    nodes: Sequence[object],
    admin_port: int,
    password: str,
    delays_ms: Sequence[int],
    runtime_prefix: str,
) -> str:
    """The Envoy ``redis_proxy`` in front of the data nodes (``nodes``: ``name``, ``proxy_port``, ``port``)."""
    return (
        _environment(template_dir)
        .get_template("redis-proxy.yaml.j2")
        .render(
            nodes=nodes, admin_port=admin_port, password=password, delays_ms=delays_ms, runtime_prefix=runtime_prefix
        )
    )
