"""The run context: one frozen object with everything a ``quotaquake run`` knows, built once and passed down.

``RunRequest`` is what the user asked for, validated once where it enters (``validate_request``), with
where each option came from (``settings``: command line, environment, ``quotaquake.toml``, defaults; see
``quotaquake.configfile``); ``RunContext`` adds what the run established: its id and folder, the stack it
runs against, the policy that stack enforces, how many Locust processes drive the load, and where to
report progress.

Scenarios and experiments may be given by name (``resolve_named``): ``--scenario tiered`` is the
project's ``scenarios/tiered.py`` if it has one, else the packaged one (``quotaquake.defaults``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from quotaquake import defaults
from quotaquake.errors import UsageError
from quotaquake.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import CommandSetting
from quotaquake.stack.state import DEFAULT_STATE_PATH, RedisTopology, StackState

ENGINES = ("locust", "k6")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str, option: str = "--duration") -> float:
    """``90``, ``90s``, ``2m``, ``1h30m`` -> seconds; a ``UsageError`` naming ``option`` otherwise."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise UsageError(f"{option}: '{text}' is not a duration (examples: 30s, 2m, 1h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class RunRequest:
    """The options of ``quotaquake run`` (see ``quotaquake run --help`` for each)."""

    scenario: Path
    rate: float
    duration_s: float
    provider: str = "local"
    target: Path | None = None  # the external provider's target file
    replicas: int | None = None  # None: whatever is up, else 3
    defect: str | None = None
    out: Path | None = None
    chaos: Path | None = None
    chaos_delay_s: float = 5.0
    state_path: Path = DEFAULT_STATE_PATH
    policy_path: Path = DEFAULT_POLICY_PATH
    thresholds: Path | None = None
    processes: int | None = None  # None: chosen by rate
    allow_hosts: tuple[str, ...] = ()
    locust_args: tuple[str, ...] = ()  # the extra arguments: Locust's, or the --qq-* options for k6
    engine: str = "locust"  # the load engine: ENGINES
    settings: tuple[CommandSetting, ...] = ()  # every option, its value and source (run.json ``settings``)
    config_file: Path | None = None  # the configuration file that applied, if any
    redis: RedisTopology | None = None  # Redis of a local stack started for the run; None: what the experiment needs


@dataclass(frozen=True)
class NamedKind:
    """A kind of file that may be given by name: the option, the project's and the package's folder."""

    option: str
    folder: str  # under the project: "scenarios", "chaos"
    packaged: Path
    suffix: str
    label: str  # "scenario", "experiment"


SCENARIO = NamedKind("--scenario", "scenarios", defaults.SCENARIOS_DIR, defaults.SCENARIO_SUFFIX, "scenario")
EXPERIMENT = NamedKind("--chaos", "chaos", defaults.CHAOS_DIR, defaults.EXPERIMENT_SUFFIX, "experiment")


def resolve_named(value: Path, kind: NamedKind, project: Path) -> tuple[Path, str | None]:
    """The file ``value`` names, and how it was found (``None``: as given).

    ``value`` itself when it is a file; otherwise, for a relative value, ``<project>/<kind.folder>/<value>``
    (the suffix may be left out: ``tiered``, ``k8s/redis-kill``), then the packaged one. A value found
    nowhere is returned as given (``validate_request`` names it and the packaged names)."""
    if value.is_file() or value.is_absolute():
        return value, None
    own = defaults.named(project / kind.folder, str(value), kind.suffix)
    if own is not None:
        return own, f"project {kind.label} {value}"
    packaged = defaults.named(kind.packaged, str(value), kind.suffix)
    if packaged is not None:
        return packaged, f"packaged {kind.label} {value}"
    return value, None


def missing_named(value: Path, kind: NamedKind) -> UsageError:
    """The error for a scenario or experiment found nowhere, listing the packaged names."""
    problem = "is not a file" if value.is_dir() else "does not exist"
    names = ", ".join(defaults.names(kind.packaged, kind.suffix))
    return UsageError(f"{kind.option}: {value} {problem} (packaged {kind.label}s by name: {names})")


def validate_request(request: RunRequest) -> None:
    """Check every input of the recording before anything starts (the thresholds, which only verification
    reads, are checked by the caller). Raises a one-line ``UsageError`` naming the option or file and field.
    """
    from quotaquake.load.safety import check_duration, check_rate

    if not request.scenario.is_file():
        raise missing_named(request.scenario, SCENARIO)
    if request.chaos is not None and not request.chaos.is_file():
        raise missing_named(request.chaos, EXPERIMENT)
    if request.processes is not None and request.processes < 1:
        raise UsageError(f"--processes: {request.processes} must be at least 1")
    check_rate(request.rate)
    check_duration(request.duration_s)
    load_policy(request.policy_path)
    if request.engine not in ENGINES:
        raise UsageError(f"--engine: {request.engine!r} is not one of {', '.join(ENGINES)}")
    if request.engine == "k6":
        check_k6(request)


def check_k6(request: RunRequest) -> None:
    """The k6 engine runs one process and reads the scenario file without running it: refuse what it cannot."""
    from quotaquake.load.k6 import check_k6_request

    if request.processes is not None:
        raise UsageError("--processes: Locust's; --engine k6 runs one k6 process")
    check_k6_request(request.scenario, request.locust_args)


@dataclass(frozen=True)
class RunContext:
    """One run, as every layer below the command sees it."""

    request: RunRequest
    run_id: str
    folder: RunFolder
    state: StackState
    policy: Policy  # the policy the stack enforces (its state file's, else the request's)
    processes: int  # Locust processes (1 for k6)
    console: Console

    @property
    def state_path(self) -> Path:
        return Path(self.state.state_file)
