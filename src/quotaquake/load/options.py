"""Scenario options, added to Locust's own parser (``events.init_command_line_parser``) with a ``--qq-`` prefix.

Locust hands custom options to every worker (``--processes N`` forks after parsing; remote ``--worker``
processes receive the master's values with the first spawn message), so users read them from
``environment.parsed_options`` when they start. ``ScenarioOptions.from_namespace`` validates them; a bad
value is a one-line ``UsageError`` naming the option.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from quotaquake.errors import UsageError
from quotaquake.load.schedule import DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_USER_RATE, RatePlan
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


@functools.cache
def default_out_dir() -> str:
    """``reports/locust-YYYYmmdd-HHMMSS`` (UTC, this process's start): where a plain ``locust -f`` run records.

    Computed once per process: Locust's web UI re-parses the options at every page load, and the folder
    must not change between two loads of the form.
    """
    return out_dir_at(datetime.now(UTC))


def out_dir_at(now: datetime) -> str:
    return str(Path("reports") / f"locust-{now.strftime('%Y%m%d-%H%M%S')}")


USERS_NOTE = "the shape sets the user count from this rate, so the 'Number of users' and 'Ramp up' fields are ignored"


def add_options(parser: Any, defaults: ScenarioDefaults) -> None:
    """Register the ``--qq-*`` options on Locust's parser (a configargparse/argparse parser).

    They form their own group in ``--help``; every one but ``--qq-orchestrated`` is also a field of Locust's
    web UI form (``show_in_web_ui``), where its help text is the label.
    """
    group = parser.add_argument_group("quotaquake", "open-model load and request history (quotaquake)")

    def option(*names: str, web: bool = True, **kwargs: Any) -> None:
        action = group.add_argument(*names, **kwargs)
        if web:
            show_in_web_ui(action)

    option("--qq-state", default=str(state_path()), help="stack state file ($QUOTAQUAKE_STATE)")
    option(
        "--qq-out",
        default=default_out_dir(),
        help="run folder: history, run.json, engine.json (web UI: one swarm-N folder inside per swarm)",
    )
    option("--qq-rate", type=float, default=defaults.rate, help=f"peak arrival rate, req/s, whole run; {USERS_NOTE}")
    option("--qq-user-rate", type=float, default=DEFAULT_MAX_USER_RATE, help="max req/s of one user")
    option(
        "--qq-max-in-flight",
        type=int,
        default=DEFAULT_MAX_IN_FLIGHT,
        help="max requests in flight at once, whole run (split over the users, at least 1 each); "
        "when reached, the next send waits (recorded as lag)",
    )
    option("--qq-shape", default=defaults.shape, help=f"load shape: {', '.join(SHAPES)}")
    option("--qq-tiers", default=defaults.tiers, help="tier weights, e.g. free=4,pro=1,anonymous=1")
    option("--qq-endpoints", default=defaults.endpoints, help="endpoint weights, e.g. /identify=6")
    option(
        "--qq-target",
        default="api",
        help="api (the mix) or calibrate (gateway direct response)",
    )
    option(
        "--qq-consumers",
        type=int,
        default=defaults.consumers_per_tier,
        help="consumers used per tier (0 = all in the state file)",
    )
    option("--qq-anon-ips", type=int, default=8, help="simulated client IPs of keyless clients")
    option("--qq-key-header", default="x-api-key", help="header that carries the API key")
    option("--qq-timeout", type=float, default=10.0, help="request timeout, seconds")
    option("--qq-allow-host", default="", help="comma-separated non-loopback hosts allowed as target")
    option("--qq-seed", type=int, default=0, help="seed of the per-user random choices")
    option(
        "--qq-orchestrated",
        web=False,
        action="store_true",
        help="set by `quotaquake run`: it writes run.json; the scenario writes only its own files",
    )
    option(
        "--qq-initial-state",
        default="reset",
        help="reset: the master resets the scenario's consumers' quota state at test start (recorded in "
        "run.json); keep: leave it (the initial state is then unknown). Ignored with --qq-orchestrated",
    )
    option(
        "--qq-month-headroom",
        type=float,
        default=50.0,
        help="quota-month: cost units left in each seeded consumer's monthly quota",
    )


def show_in_web_ui(action: Any) -> None:
    """Make an option added through an argument group a field of Locust's web UI form.

    Locust shows only actions carrying its ``include_in_web_ui`` attribute, which only
    ``LocustArgumentParser.add_argument`` sets; actions of an argument group lack it.
    """
    action.include_in_web_ui = True
    action.is_secret = False
    action.is_required = False
    action.is_multiple = False


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
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    initial_state: str = "reset"  # reset | keep

    @property
    def plan(self) -> RatePlan:
        return RatePlan(self.rate, self.user_rate)

    @property
    def in_flight_per_user(self) -> int:
        """Requests one user may have in flight (``RatePlan.in_flight_per_user``)."""
        return self.plan.in_flight_per_user(self.max_in_flight)

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
        max_in_flight = getattr(ns, "qq_max_in_flight", DEFAULT_MAX_IN_FLIGHT)
        _require(max_in_flight >= 1, f"--qq-max-in-flight: {max_in_flight} must be at least 1")
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
            max_in_flight=int(max_in_flight),
            initial_state=initial_state,
        )
