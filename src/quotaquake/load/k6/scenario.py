"""A scenario file, as the k6 engine reads it: its ``ScenarioDefaults``, its before-start hook, its options.

A scenario file is a locustfile (``scenarios/*.py``): importing it would import Locust, which patches the
standard library for gevent. So the k6 engine reads it without running it: the one
``install_scenario(events, ScenarioDefaults(...), before_start=...)`` call, whose defaults must be
literals, and whose hook must be a name imported with ``from <module> import <name>`` (imported when the
run starts, e.g. ``quotaquake.load.month.seed_month_quota``).

The ``--qq-*`` options after ``quotaquake run``'s own are parsed exactly as Locust parses them
(``quotaquake.load.options.add_options`` with the file's defaults), plus the k6-only ``--qq-max-vus``;
anything else is refused, since Locust's own options mean nothing to k6.
"""

from __future__ import annotations

import argparse
import ast
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

from quotaquake.errors import UsageError
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.runtime import ScenarioRuntime
from quotaquake.runfolder.models import MonthlySeed

INSTALL = "install_scenario"
DEFAULTS = "ScenarioDefaults"
_DEFAULT_FIELDS = frozenset(f.name for f in fields(ScenarioDefaults))

BeforeStart = Callable[[ScenarioRuntime], list[MonthlySeed]]
"""A scenario's hook before the first request (``quotaquake.load.hooks.BeforeStart``, without Locust)."""


@dataclass(frozen=True)
class ScenarioFile:
    """What a scenario file declares: its option defaults and, if any, its before-start hook's import path."""

    path: Path
    defaults: ScenarioDefaults
    before_start: str | None = None  # "module:name"

    def hook(self) -> BeforeStart | None:
        """The before-start hook, imported now; a ``UsageError`` naming the file when it cannot be."""
        if self.before_start is None:
            return None
        module, _, name = self.before_start.partition(":")
        try:
            hook: BeforeStart = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise UsageError(
                f"--scenario {self.path}: before_start {module}.{name} cannot be imported ({exc})"
            ) from None
        return hook


@dataclass(frozen=True)
class K6Options:
    """The validated scenario options of a k6 run, and the k6-only ones."""

    scenario: ScenarioOptions
    max_vus: int | None = None  # None: sized from the rate (``quotaquake.load.k6.plan``)


def read_scenario(path: Path) -> ScenarioFile:
    """Read ``path``'s ``install_scenario`` call without running the file."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise UsageError(f"--scenario {path}: cannot be read as Python ({exc})") from None
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _called(node) == INSTALL]
    if len(calls) != 1:
        raise UsageError(
            f"--scenario {path}: --engine k6 needs exactly one {INSTALL}(events, {DEFAULTS}(...)) call "
            f"(found {len(calls)}); it runs quotaquake scenarios only"
        )
    call = calls[0]
    defaults_node = _argument(call, 1, "defaults")
    hook_node = _argument(call, 2, "before_start")
    defaults = _defaults(path, defaults_node) if defaults_node is not None else ScenarioDefaults()
    hook = _hook_path(path, tree, hook_node) if hook_node is not None else None
    return ScenarioFile(path, defaults, hook)


def _called(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _argument(call: ast.Call, position: int, name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return call.args[position] if len(call.args) > position else None


def _defaults(path: Path, node: ast.expr) -> ScenarioDefaults:
    if not isinstance(node, ast.Call) or _called(node) != DEFAULTS or node.args:
        raise UsageError(f"--scenario {path}: the defaults must be written {DEFAULTS}(name=literal, ...)")
    values: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg not in _DEFAULT_FIELDS:
            raise UsageError(f"--scenario {path}: {DEFAULTS} has no field {keyword.arg!r}")
        try:
            values[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise UsageError(f"--scenario {path}: {DEFAULTS}({keyword.arg}=...) must be a literal") from None
    return ScenarioDefaults(**values)


def _hook_path(path: Path, tree: ast.Module, node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        for statement in tree.body:
            if isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
                for alias in statement.names:
                    if (alias.asname or alias.name) == node.id:
                        return f"{statement.module}:{alias.name}"
    raise UsageError(f"--scenario {path}: before_start must be a function imported with `from <module> import <name>`")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one-line ``UsageError``s (never ``sys.exit``)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"--engine k6: {message}")


def parse_options(scenario: ScenarioFile, args: Sequence[str], *, state: Path, out: Path, rate: float) -> K6Options:
    """The ``--qq-*`` options in ``args`` with ``scenario``'s defaults; the run's state file, folder and rate
    are the command's own (``--qq-state``/``--qq-out``/``--qq-rate`` are overridden)."""
    parser = _Parser(prog="quotaquake run --engine k6", add_help=False, allow_abbrev=False)
    add_options(parser, scenario.defaults)
    parser.add_argument("--qq-max-vus", type=int, default=None, help="k6: most VUs (default: by rate)")
    namespace, unknown = parser.parse_known_args(list(args))
    if unknown:
        raise UsageError(
            f"--engine k6: {' '.join(unknown)}: not a --qq- scenario option (Locust's options do not apply)"
        )
    namespace.qq_state, namespace.qq_out, namespace.qq_rate = str(state), str(out), rate
    options = ScenarioOptions.from_namespace(namespace)
    if namespace.qq_max_vus is not None and namespace.qq_max_vus < 1:
        raise UsageError(f"--qq-max-vus: {namespace.qq_max_vus} must be at least 1")
    return K6Options(options, namespace.qq_max_vus)
