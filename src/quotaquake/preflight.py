"""Every input of ``quotaquake run`` checked before anything starts: one line naming the option or file
and field, exit code 2, nothing started, nothing left behind.

Beyond ``context.validate_request`` (paths, rate, duration, processes, policy) this checks the thresholds
file (also refused when empty: omit ``--thresholds`` for the defaults), the scenario file's syntax, the
experiment file (Chaos Toolkit's validation and the argument types of our activities), the warm-up
against the duration, the run folder, the extra Locust arguments (none may override what ``quotaquake
run`` sets itself), and finally Locust's own parsing of the whole command line with the scenario
imported: ``python -m quotaquake.preflight`` in a subprocess, so that Locust's gevent patching never
touches this process. Its error line (``locust: error: ...``, an import error, a ``--qq-`` option) is
reported as it is.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quotaquake.context import RunRequest, validate_request
from quotaquake.errors import ConfigError, UsageError
from quotaquake.runfolder import RunFolder

LOCUST_CHECK_TIMEOUT_S = 60.0
OWNED_LOCUST_OPTIONS = {
    "-f": "--scenario", "--locustfile": "--scenario", "-t": "--duration", "--run-time": "--duration",
    "--headless": "(always headless)", "--csv": "--out", "--html": "--out", "--processes": "--processes",
    "--worker": "(workers join a master: start them with locust --worker)",
    "--qq-state": "--state", "--qq-out": "--out", "--qq-rate": "--rate", "--qq-orchestrated": "(set by quotaquake)",
    "--qq-allow-host": "--allow-host", "--autostart": "(always headless)", "--autoquit": "(always headless)",
}  # fmt: skip
"""Locust options ``quotaquake run`` sets itself -> the ``quotaquake run`` option to use instead."""


def check_run_request(request: RunRequest) -> None:
    """Refuse any bad input of ``request`` (``UsageError``: one line, exit 2) before anything starts."""
    validate_request(request)
    check_scenario_syntax(request.scenario)
    if request.thresholds is not None:
        check_thresholds_file(request.thresholds)
    if request.chaos is not None:
        check_chaos_request(request)
    check_out_folder((request.out or Path("reports") / "preflight").resolve())
    if request.engine == "locust":  # k6's options were checked by validate_request (check_k6)
        check_extra_locust_args(request.locust_args)
        check_with_locust(preflight_locust_args(request))


def check_out_folder(path: Path) -> None:
    """The run folder can be created and written: tried for real (a read-only mount passes ``os.access``),
    then everything the try created is removed again."""
    RunFolder(path).check_creatable()
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        RunFolder(path).create()
    finally:
        for folder in created:  # deepest first: only what this check made, and only if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()


def check_thresholds_file(path: Path) -> None:
    """Validated thresholds; an empty file is refused (it would silently mean the defaults)."""
    from quotaquake.config import read_yaml
    from quotaquake.verify.thresholds import load_thresholds

    if read_yaml(path) is None:
        raise ConfigError(path, None, "empty thresholds file (omit --thresholds to use the defaults)")
    load_thresholds(path)


def check_scenario_syntax(scenario: Path) -> None:
    """The scenario must be a Python file that compiles; a ``SyntaxError`` names its line."""
    if scenario.suffix != ".py":
        raise UsageError(f"--scenario: {scenario} is not a Python locustfile (*.py)")
    try:
        source = scenario.read_bytes()
    except OSError as exc:
        raise ConfigError(scenario, None, f"cannot read: {exc.strerror}") from None
    try:
        compile(source, str(scenario), "exec")
    except SyntaxError as exc:
        raise ConfigError(scenario, f"line {exc.lineno}", f"{type(exc).__name__}: {exc.msg}") from None
    except ValueError as exc:  # e.g. null bytes
        raise ConfigError(scenario, None, f"not a Python source file: {exc}") from None


def check_chaos_request(request: RunRequest) -> None:
    """The experiment is valid (without the stack) and starts while the load still flows."""
    from quotaquake.chaos.runner import validate_experiment_file

    assert request.chaos is not None
    if request.chaos_delay_s >= request.duration_s:
        raise UsageError(
            f"--chaos-delay: {request.chaos_delay_s:g} s is not shorter than --duration {request.duration_s:g} s "
            "(the experiment would start after the load ended)"
        )
    loaded = validate_experiment_file(request.chaos)
    check_chaos_topology(request, loaded)


def check_chaos_topology(request: RunRequest, experiment: Mapping[str, object]) -> None:
    """An explicit ``--redis`` must give the experiment the Redis it needs (a failover needs Sentinel, a
    latency fault the Redis proxy): refused in one line naming the option, before anything starts; so is
    such an experiment against a Kong target (``--provider docker|external``), saying why it does not apply."""
    from quotaquake.chaos.preflight import needed_redis, not_applicable_experiment

    if (why := not_applicable_experiment(experiment, request.provider)) is not None:
        raise UsageError(f"{request.chaos}: {why}")
    fitting = needed_redis(experiment)
    if request.redis is None or fitting is None or request.redis in fitting:
        return
    assert request.chaos is not None
    raise UsageError(
        f"--redis {request.redis}: {request.chaos} needs --redis {' or '.join(fitting)} "
        "(omit --redis and the run starts the stack it needs)"
    )


def check_extra_locust_args(args: tuple[str, ...]) -> None:
    """Refuse extra Locust arguments that would override what ``quotaquake run`` sets itself."""
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in OWNED_LOCUST_OPTIONS:
            instead = OWNED_LOCUST_OPTIONS[name]
            hint = f"use {instead}" if instead.startswith("--") else instead
            raise UsageError(f"Locust argument {name}: quotaquake run sets it itself ({hint})")


def preflight_locust_args(request: RunRequest) -> list[str]:
    """The Locust command line of the run, minus what only exists once the stack and folder do."""
    args = ["-f", str(request.scenario), "--headless", "--run-time", f"{max(1, round(request.duration_s))}s",
            "--qq-rate", f"{request.rate:g}", "--qq-orchestrated"]  # fmt: skip
    if request.allow_hosts:
        args += ["--qq-allow-host", ",".join(request.allow_hosts)]
    return [*args, *request.locust_args]


def check_with_locust(args: list[str]) -> None:
    """Let Locust import the scenario and parse ``args`` in a subprocess; its error line as ``UsageError``."""
    command = [sys.executable, "-m", "quotaquake.preflight", *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=LOCUST_CHECK_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise UsageError(f"--scenario: importing it with Locust took over {LOCUST_CHECK_TIMEOUT_S:.0f} s") from None
    if result.returncode != 0:
        raise UsageError(f"Locust refused the run: {error_line(result.stderr or result.stdout)}")


def error_line(output: str) -> str:
    """The line that says what went wrong: the last ``error:`` line, else the last non-empty line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if "error:" in line.lower():
            return line
    return lines[-1] if lines else "no output"


# -- the Locust side (runs in the subprocess) -------------------------------------------------------------


def _locust_side(argv: list[str]) -> int:
    """Import the locustfile and parse the full command line as ``locust`` would; 0 when both work."""
    from locust.argument_parser import get_locustfiles_locally, get_parser, parse_locustfile_option
    from locust.main import merge_locustfiles_content

    sys.argv = ["locust", *argv]
    located: Any = parse_locustfile_option()
    try:
        users, _, _, _ = merge_locustfiles_content(get_locustfiles_locally(located))  # type: ignore[no-untyped-call]
    except Exception as exc:  # whatever the locustfile raises on import is the error to report
        print(f"{located.locustfile}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if not users:
        print(f"error: {located.locustfile}: no User class in the locustfile", file=sys.stderr)
        return 2
    options = get_parser().parse_args()  # an unknown or malformed option: argparse's "error:" line, exit 2
    if missing := set(options.user_classes or ()) - set(users):
        print(f"error: unknown User class(es): {', '.join(sorted(missing))}", file=sys.stderr)
        return 2
    try:
        if hasattr(options, "qq_rate"):
            from quotaquake.load.options import ScenarioOptions

            ScenarioOptions.from_namespace(options)
    except (ValueError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_locust_side(sys.argv[1:]))
