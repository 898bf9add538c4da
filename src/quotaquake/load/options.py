"""Scenario options, added to Locust's own parser (``events.init_command_line_parser``) with a ``--qq-`` prefix.

Locust hands custom options to every worker (``--processes N`` forks after parsing; remote ``--worker``
processes receive the master's values with the first spawn message), so users read them from
``environment.parsed_options`` when they start. ``ScenarioOptions.from_namespace`` validates them; a bad
value is a one-line ``UsageError`` naming the option.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from quotaquake.errors import UsageError
from quotaquake.load.schedule import DEFAULT_MAX_USER_RATE, RatePlan
from quotaquake.stack.state import state_path

SHAPES = ("steady", "ramp", "step", "spike")
INITIAL_STATES = ("reset", "keep")
TARGETS = ("api", "calibrate")
Target = Literal["api", "calibrate"]

DEFAULT_TIERS = "free=4,pro=3,enterprise=1,partner=1,anonymous=1,invalid=0.2"
DEFAULT_ENDPOINTS = "/identify=6,/compare=2,/batch=1,/health=1"


@dataclass(frozen=True)
class ScenarioDefaults:
    """Per-scenario defaults of the ``--qq-`` options (a scenario file passes its own)."""

    rate: float = 100.0
    shape: str = "steady"
    tiers: str = DEFAULT_TIERS
    endpoints: str = DEFAULT_ENDPOINTS
    consumers_per_tier: int = 0  # 0 = every consumer of the state file


def default_out_dir(now: datetime | None = None) -> str:
    """``reports/locust-YYYYmmdd-HHMMSS`` (UTC): where a plain ``locust -f`` run records."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return str(Path("reports") / f"locust-{stamp}")


def add_options(parser: Any, defaults: ScenarioDefaults) -> None:
    """Register the ``--qq-*`` options on Locust's parser (a configargparse/argparse parser)."""
    group = parser.add_argument_group("quotaquake", "open-model load and request history (quotaquake)")
    group.add_argument("--qq-state", default=str(state_path()), help="stack state file ($QUOTAQUAKE_STATE)")
    group.add_argument("--qq-out", default=default_out_dir(), help="run folder; history goes to <out>/history/")
    group.add_argument("--qq-rate", type=float, default=defaults.rate, help="peak arrival rate, req/s, whole run")
    group.add_argument("--qq-user-rate", type=float, default=DEFAULT_MAX_USER_RATE, help="max req/s of one user")
    group.add_argument("--qq-shape", default=defaults.shape, help=f"load shape: {', '.join(SHAPES)}")
    group.add_argument("--qq-tiers", default=defaults.tiers, help="tier weights, e.g. free=4,pro=1,anonymous=1")
    group.add_argument("--qq-endpoints", default=defaults.endpoints, help="endpoint weights, e.g. /identify=6")
    group.add_argument("--qq-target", default="api", help="api (the mix) or calibrate (gateway direct response)")
    group.add_argument(
        "--qq-consumers",
        type=int,
        default=defaults.consumers_per_tier,
        help="consumers used per tier (0 = all in the state file)",
    )
    group.add_argument("--qq-anon-ips", type=int, default=8, help="simulated client IPs of keyless clients")
    group.add_argument("--qq-key-header", default="x-api-key", help="header that carries the API key")
    group.add_argument("--qq-timeout", type=float, default=10.0, help="request timeout, seconds")
    group.add_argument("--qq-allow-host", default="", help="comma-separated non-loopback hosts allowed as target")
    group.add_argument("--qq-seed", type=int, default=0, help="seed of the per-user random choices")
    group.add_argument(
        "--qq-orchestrated",
        action="store_true",
        help="set by `quotaquake run`: it writes run.json; the scenario writes only its own files",
    )
    group.add_argument(
        "--qq-initial-state",
        default="reset",
        help="reset: the master resets the scenario's consumers' quota state at test start (recorded in "
        "run.json); keep: leave it (the initial state is then unknown). Ignored with --qq-orchestrated",
    )
    group.add_argument(
        "--qq-month-headroom",
        type=float,
        default=50.0,
        help="quota-month: cost units left in each seeded consumer's monthly quota",
    )


def parse_weights(text: str, option: str) -> dict[str, float]:
    """``"a=1,b=2.5"`` -> ``{"a": 1.0, "b": 2.5}``; zero weights are dropped; at least one must be positive."""
    weights: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        try:
            weight = float(value) if sep else float("nan")
        except ValueError:
            weight = float("nan")
        if not name.strip() or not weight >= 0:
            raise UsageError(f"{option}: {item!r} is not NAME=WEIGHT with a weight >= 0")
        if weight > 0:
            weights[name.strip()] = weight
    if not weights:
        raise UsageError(f"{option}: {text!r} has no positive weight")
    return weights


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


@dataclass(frozen=True)
class ScenarioOptions:
    """Validated ``--qq-*`` options."""

    state: Path
    out: Path
    rate: float
    user_rate: float
    shape: str
    tiers: dict[str, float]
    endpoints: dict[str, float]
    target: Target
    consumers_per_tier: int
    anon_ips: int
    key_header: str
    timeout_s: float
    allow_hosts: tuple[str, ...] = field(default=())
    seed: int = 0
    month_headroom: float = 50.0
    orchestrated: bool = False
    initial_state: str = "reset"  # reset | keep

    @property
    def plan(self) -> RatePlan:
        return RatePlan(self.rate, self.user_rate)

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> ScenarioOptions:
        _require(ns.qq_rate > 0, f"--qq-rate: {ns.qq_rate:g} must be greater than 0")
        _require(ns.qq_user_rate > 0, f"--qq-user-rate: {ns.qq_user_rate:g} must be greater than 0")
        _require(ns.qq_shape in SHAPES, f"--qq-shape: {ns.qq_shape!r} is not one of {', '.join(SHAPES)}")
        _require(ns.qq_target in TARGETS, f"--qq-target: {ns.qq_target!r} is not one of {', '.join(TARGETS)}")
        _require(ns.qq_consumers >= 0, f"--qq-consumers: {ns.qq_consumers} must be >= 0")
        _require(1 <= ns.qq_anon_ips <= 254, f"--qq-anon-ips: {ns.qq_anon_ips} must be in 1..254")
        _require(ns.qq_timeout > 0, f"--qq-timeout: {ns.qq_timeout:g} must be greater than 0")
        _require(ns.qq_month_headroom >= 0, f"--qq-month-headroom: {ns.qq_month_headroom:g} must be >= 0")
        initial_state = getattr(ns, "qq_initial_state", "reset")
        _require(
            initial_state in INITIAL_STATES,
            f"--qq-initial-state: {initial_state!r} is not one of {', '.join(INITIAL_STATES)}",
        )
        endpoints = parse_weights(ns.qq_endpoints, "--qq-endpoints")
        for path in endpoints:
            _require(path.startswith("/"), f"--qq-endpoints: endpoint {path!r} must start with '/'")
        return cls(
            state=Path(ns.qq_state),
            out=Path(ns.qq_out),
            rate=float(ns.qq_rate),
            user_rate=float(ns.qq_user_rate),
            shape=ns.qq_shape,
            tiers=parse_weights(ns.qq_tiers, "--qq-tiers"),
            endpoints=endpoints,
            target=ns.qq_target,
            consumers_per_tier=int(ns.qq_consumers),
            anon_ips=int(ns.qq_anon_ips),
            key_header=str(ns.qq_key_header).lower(),
            timeout_s=float(ns.qq_timeout),
            allow_hosts=tuple(h.strip() for h in str(ns.qq_allow_host).split(",") if h.strip()),
            seed=int(ns.qq_seed),
            month_headroom=float(ns.qq_month_headroom),
            orchestrated=bool(getattr(ns, "qq_orchestrated", False)),
            initial_state=initial_state,
        )
