"""Run a Chaos Toolkit experiment against a running stack while load flows (for ``quotaquake run --chaos``).

``ChaosRun.start`` checks the experiment first (Chaos Toolkit's validation, then its targets against
the stack: ``UsageError``, exit code 2), then starts ``chaos run`` as a subprocess after the warm-up
delay. The experiment's journal, log, console output and probe traffic land in the run folder
(``RunFolder.journal_file``, ``chaos_log``, ``chaos_output``, ``probe_ledger``). Rollbacks are forced
to run in every case (``--rollback-strategy always``), also when the run is interrupted; ``terminate``
additionally restores the stack itself and checks that it is healthy, in case the interruption cut the rollbacks short.

Interrupting uses SIGINT, not SIGTERM: chaoslib turns SIGTERM into an ``Exception`` that its Python
provider wraps into ``ActivityFailed`` when it lands inside an activity, so the experiment carries on
(the whole pause, the rest of the method). ``KeyboardInterrupt`` is not an ``Exception``: wherever it
lands, chaoslib marks the run interrupted and plays the rollbacks.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from quotaquake.chaos.health import wait_until_healthy
from quotaquake.chaos.ledger import LEDGER_ENV_VAR
from quotaquake.chaos.preflight import check_experiment
from quotaquake.errors import ConfigError, UsageError
from quotaquake.faults.restore import restore_stack
from quotaquake.runfolder import RunFolder
from quotaquake.stack.lock import record_process
from quotaquake.stack.processes import marker_env
from quotaquake.stack.state import STATE_ENV_VAR, read_state

logger = logging.getLogger(__name__)

REINTERRUPT_S = 2.0
INTERRUPT_GRACE_S = 90.0  # SIGINT -> rollbacks (restarts wait for readiness) -> exit
RESTORE_TIMEOUT_S = 60.0


def chaos_executable() -> str:
    """The ``chaos`` CLI next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "chaos"
    found = str(beside) if beside.exists() else shutil.which("chaos")
    if not found:
        raise UsageError("chaos: the Chaos Toolkit CLI is not installed (pip install chaostoolkit)")
    return found


def validate_experiment_file(experiment: Path) -> Mapping[str, object]:
    """Chaos Toolkit's validation and the argument types of our activities, without a stack: a file that
    is not JSON/YAML, an invalid experiment or ``count: "one"`` is a one-line ``ConfigError``."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    if not experiment.is_file():
        raise ConfigError(experiment, None, "no such experiment file")
    _check_parsable(experiment)
    try:
        loaded: Mapping[str, object] = load_experiment(str(experiment))
        ensure_experiment_is_valid(loaded)
    except ChaosException as exc:
        raise ConfigError(experiment, None, _one_line(str(exc))) from None
    except Exception as exc:  # chaoslib raises plain errors for some malformed shapes
        raise ConfigError(
            experiment, None, f"not a valid experiment ({type(exc).__name__}: {_one_line(str(exc))})"
        ) from None
    check_argument_types(experiment, loaded)
    return loaded


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_parsable(experiment: Path) -> None:
    """Parse the file as chaoslib will (JSON, or YAML for .yaml/.yml) to name the line of a syntax error."""
    import json

    import yaml

    try:
        text = experiment.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(experiment, None, f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text) if experiment.suffix in (".yaml", ".yml") else json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(experiment, f"line {exc.lineno}", f"not valid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(experiment, None, f"not valid YAML: {_one_line(str(exc))}") from None
    if not isinstance(data, dict):
        raise ConfigError(experiment, None, "an experiment is a JSON object")


def check_argument_types(experiment: Path, loaded: Mapping[str, object]) -> None:
    """Each argument of our activities has the type its function declares (int, float, str, bool)."""
    import importlib
    import typing

    for activity in _our_activities(loaded):
        provider = activity["provider"]
        assert isinstance(provider, Mapping)
        func = getattr(importlib.import_module(str(provider["module"])), str(provider["func"]), None)
        if func is None:
            continue
        hints = typing.get_type_hints(func)
        arguments = provider.get("arguments")
        for name, value in arguments.items() if isinstance(arguments, Mapping) else []:
            expected = hints.get(name)
            if expected in (int, float, str, bool) and not _fits(value, expected):
                field = f"activity '{activity.get('name', '?')}': argument {name}"
                raise ConfigError(experiment, field, f"{value!r} is not a {expected.__name__}")


def _our_activities(loaded: Mapping[str, object]) -> list[Mapping[str, object]]:
    from quotaquake.chaos.preflight import OUR_MODULES, activities

    found = []
    for activity in activities(loaded):
        provider = activity.get("provider")
        if isinstance(provider, Mapping) and provider.get("module") in OUR_MODULES and provider.get("func"):
            found.append(activity)
    return found


def _fits(value: object, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def load_checked_experiment(experiment: Path, state_path: Path) -> None:
    """Chaos Toolkit's validation plus the stack-aware checks; one-line ``UsageError`` on failure."""
    loaded = validate_experiment_file(experiment)
    try:
        check_experiment(loaded, read_state(state_path))
    except UsageError as exc:
        raise ConfigError(experiment, None, str(exc)) from None


def chaos_command(experiment: Path, folder: RunFolder) -> list[str]:
    return [
        chaos_executable(), "--no-version-check", "--log-file", str(folder.chaos_log),
        "run", "--rollback-strategy", "always", "--journal-path", str(folder.journal_file), str(experiment),
    ]  # fmt: skip


@dataclass
class ChaosRun:
    """One experiment run in the background. Create it with ``ChaosRun.start``."""

    experiment: Path
    state_path: Path
    folder: RunFolder
    delay_s: float
    command: list[str] = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _process: subprocess.Popen[bytes] | None = None
    _launcher: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, experiment: Path, *, state_path: Path, folder: RunFolder, delay_s: float) -> ChaosRun:
        """Check ``experiment`` now (``ConfigError``: exit code 2), then start it ``delay_s`` seconds later.

        Returns at once; the experiment runs in a subprocess with ``QUOTAQUAKE_STATE=state_path``.
        """
        load_checked_experiment(experiment, state_path)
        command = chaos_command(experiment.resolve(), folder)  # UsageError now if chaos is not installed
        run = cls(experiment.resolve(), state_path.resolve(), folder, max(0.0, delay_s), command)
        folder.chaos_dir.mkdir(parents=True, exist_ok=True)
        run._launcher = threading.Thread(target=run._launch_after_delay, name="chaos-launcher", daemon=True)
        run._launcher.start()
        return run

    def _environment(self) -> dict[str, str]:
        """Ours plus the state file, the probe ledger and the stack's markers (``stack down`` finds the
        experiment, and whatever its rollbacks start, by them)."""
        env = dict(os.environ)
        env[STATE_ENV_VAR] = str(self.state_path)
        env[LEDGER_ENV_VAR] = str(self.folder.probe_ledger)
        state = read_state(self.state_path)
        env.update(marker_env(state.stack_id, state.state_file))
        return env

    def _launch_after_delay(self) -> None:
        if self._cancel.wait(self.delay_s):
            return  # terminated during the warm-up: never started
        with self._lock:
            if self._cancel.is_set():
                return
            output = self.folder.chaos_output.open("wb")
            self._process = subprocess.Popen(
                self.command, env=self._environment(), cwd=self.folder.chaos_dir,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            output.close()
            record_process(self.state_path, "chaos run", "chaos", self._process.pid)

    def started(self) -> bool:
        return self._process is not None

    def wait(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` (warm-up included) for the experiment to finish; its exit code
        (0: steady state held, 1: deviated or failed). Past the deadline it is interrupted (``terminate``).
        Either way the stack is then restored if needed and checked healthy (``StackError`` if not)."""
        assert self._launcher is not None
        deadline = _Deadline(timeout_s)
        self._launcher.join(deadline.left())
        if self._process is None:
            return self.terminate()  # still in the warm-up at the deadline: cancel, never start
        try:
            code = self._process.wait(deadline.left())
        except subprocess.TimeoutExpired:
            logger.warning("chaos experiment %s still running after %.0f s: interrupting", self.experiment, timeout_s)
            return self.terminate()
        self.restore_stack()  # the rollbacks should have done it; check rather than assume
        return code

    def terminate(self) -> int:
        """Interrupt the experiment: SIGINT makes Chaos Toolkit stop and run its rollbacks (SIGKILL after
        ``INTERRUPT_GRACE_S``); then restore the stack ourselves and check it is healthy. Returns the exit
        code (-1 when it never started)."""
        with self._lock:
            self._cancel.set()
            process = self._process
        if process is None:
            return -1
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        while process.poll() is None and time.monotonic() < deadline:
            # Repeated: a SIGINT that lands inside an action is swallowed by chaoslib as that action's
            # failure, and the experiment then sits out its pause; the next one stops it.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(REINTERRUPT_S)
            except subprocess.TimeoutExpired:
                continue
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the group is chaos and its children
            process.wait()
        self.restore_stack()
        return process.returncode

    def restore_stack(self) -> list[str]:
        """Resume/restart whatever is down and wait until the stack is healthy (``StackError`` if not)."""
        state = read_state(self.state_path)
        done = restore_stack(state)
        wait_until_healthy(state, RESTORE_TIMEOUT_S)
        return done


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self._end - time.monotonic())
