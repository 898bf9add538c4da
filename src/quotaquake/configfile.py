"""``quotaquake.toml``: option values from a file, so a project need not repeat them on every command line.

Lookup: ``--config FILE`` (or ``$QUOTAQUAKE_CONFIG``) names the file. Otherwise the working directory and
then each of its parents, up to the filesystem root, is searched for a ``quotaquake.toml``, or a
``pyproject.toml`` with a ``[tool.quotaquake]`` table (``quotaquake.toml`` wins in the same folder); the
first found is used, and nothing else is merged. The folder of that file is the *project*; without a
file the working directory is.

Layout: a key is an option as spelled on the command line without its dashes (``chaos-delay``;
``chaos_delay`` is accepted too). Keys in a table named after a command apply to it (``[run]``,
``[verify]``, ``[stack.up]``, ``[gate]``); keys outside any table apply to every command of a run's life
(``SHARED_COMMANDS``: stack, run, verify) that has the option (e.g. ``state``, ``policy``). ``[run]``
also takes ``locust-args``, a list of arguments passed to Locust before those given after the options
(``$QUOTAQUAKE_LOCUST_ARGS``, split as a shell would, instead of it). In ``pyproject.toml`` the same
lives under ``[tool.quotaquake]``.

Values are TOML strings, numbers, booleans or (for options given several times, and ``locust-args``)
lists. A relative path is relative to the file's folder. ``scenario`` and ``chaos`` also take a name
(``tiered``, ``redis-kill``): see ``quotaquake.context.resolve_named``.

Precedence, for every option: command line > environment variable ``QUOTAQUAKE_<OPTION>`` (options of
the ``SHARED_COMMANDS``) > this file > the packaged default. A bad file (TOML syntax, a key that is no
option, a value of the wrong type) is one ``ConfigError`` naming the file and the key: exit 2.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer._click as click  # typer vendors click: its command tree and contexts
from pydantic import JsonValue

from quotaquake.errors import ConfigError, UsageError
from quotaquake.runfolder.models import CommandSetting
from quotaquake.stack.urls import masked

CONFIG_NAME = "quotaquake.toml"
PYPROJECT_NAME = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "quotaquake")
CONFIG_ENV_VAR = "QUOTAQUAKE_CONFIG"
ENV_PREFIX = "QUOTAQUAKE_"
LOCUST_ARGS_KEY = "locust_args"
"""The one key that is no option: extra arguments for Locust (``[run]`` only)."""
LOCUST_ARGS_COMMAND = ("run",)
SHARED_COMMANDS = frozenset({("stack", "up"), ("stack", "status"), ("stack", "down"), ("stack", "restore"), ("run",),
                             ("verify",)})  # fmt: skip
"""The commands of a run's life, whose options mean one thing whichever of them has it: they read
``$QUOTAQUAKE_<OPTION>`` and the keys outside any table. Other commands (``gate``, ``baseline ...``) take
only their own table (``[gate]``): their ``--out`` is not a run folder."""
NAMED_OPTIONS = frozenset({"scenario", "chaos"})
"""Options that take a packaged name as well as a path: a value that is no file beside the config file is
kept as written (a name), not made a path."""


@dataclass(frozen=True)
class ConfigFile:
    """One configuration file: its path, where quotaquake's table is in it, and that table."""

    path: Path
    prefix: tuple[str, ...]  # ("tool", "quotaquake") in a pyproject.toml, () in a quotaquake.toml
    table: Mapping[str, Any]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def key(self, *parts: str) -> str:
        """The dotted key of ``parts`` as written in the file (``tool.quotaquake.run.rate``)."""
        return ".".join((*self.prefix, *parts))


@dataclass(frozen=True)
class Project:
    """Where the command runs: the project folder, its configuration file (if any) and the option values
    that file gives each command (``values[("stack", "up")]["replicas"]``, keys as parameter names)."""

    root: Path
    config: ConfigFile | None = None
    values: Mapping[tuple[str, ...], Mapping[str, Any]] = field(default_factory=dict)
    keys: Mapping[tuple[str, ...], Mapping[str, str]] = field(default_factory=dict)  # parameter -> file key

    def default_map(self) -> dict[str, Any]:
        """The values as click's nested ``default_map`` (``{"stack": {"up": {...}}, "run": {...}}``)."""
        nested: dict[str, Any] = {}
        for path, values in self.values.items():
            level = nested
            for part in path:
                level = level.setdefault(part, {})
            level.update(values)
        return nested

    def key_of(self, command: tuple[str, ...], name: str) -> str | None:
        """The file key that set parameter ``name`` of ``command`` (``run.rate`` or, shared, ``state``)."""
        return self.keys.get(command, {}).get(name)

    def locust_args(self) -> tuple[str, ...]:
        return tuple(self.values.get(LOCUST_ARGS_COMMAND, {}).get(LOCUST_ARGS_KEY, ()))


def find_config(start: Path) -> Path | None:
    """The first ``quotaquake.toml`` or ``pyproject.toml`` with ``[tool.quotaquake]`` from ``start`` up."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
        pyproject = folder / PYPROJECT_NAME
        if pyproject.is_file() and _has_quotaquake_table(pyproject):
            return pyproject
    return None


def _has_quotaquake_table(pyproject: Path) -> bool:
    """Whether ``pyproject`` has ``[tool.quotaquake]``; one that cannot be parsed counts when it mentions
    it (so the parse error is reported instead of silently using another file)."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        return isinstance(tomllib.loads(text).get("tool", {}).get("quotaquake"), dict)
    except tomllib.TOMLDecodeError:
        return "tool.quotaquake" in text


def read_config(path: Path) -> ConfigFile:
    """Parse a configuration file; unreadable, not TOML or (a pyproject.toml) without the table: ``ConfigError``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML: {exc}") from None
    if path.name != PYPROJECT_NAME:
        return ConfigFile(path.resolve(), (), data)
    table = data.get("tool", {}).get("quotaquake")
    if not isinstance(table, dict):
        raise ConfigError(path, "tool.quotaquake", "no such table (quotaquake's options go there)")
    return ConfigFile(path.resolve(), PYPROJECT_TABLE, table)


def load_project(root_command: click.Command, explicit: Path | None, cwd: Path) -> Project:
    """The project of a command run in ``cwd``: the configuration file named (``--config``) or found, its
    values checked against ``root_command``'s options (``ConfigError`` naming file and key)."""
    path = explicit if explicit is not None else find_config(cwd)
    if path is None:
        return Project(cwd)
    config = read_config(path)
    values, keys = _command_values(config, root_command)
    return Project(config.folder, config, values, keys)


def commands(group: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every leaf command under ``group`` with its path (``("stack", "up")``)."""
    children: Mapping[str, click.Command] = getattr(group, "commands", {})
    if not children:
        yield path, group
    for name, child in children.items():
        yield from commands(child, (*path, name))


def options(command: click.Command) -> dict[str, click.Parameter]:
    """The options of ``command`` that a file or environment variable may set, by parameter name."""
    return {
        param.name: param
        for param in command.params
        if param.name and param.param_type_name == "option" and not param.is_eager and param.expose_value
    }


def assign_env_vars(root_command: click.Command) -> None:
    """Give every option of the ``SHARED_COMMANDS`` its environment variable, ``QUOTAQUAKE_<OPTION>`` (one
    name per option, whichever command: ``QUOTAQUAKE_RATE``, ``QUOTAQUAKE_ALLOW_HOST``), unless it has one."""
    for path, command in commands(root_command):
        if path not in SHARED_COMMANDS:
            continue
        for name, param in options(command).items():
            if param.envvar is None:
                param.envvar = env_var(name)
                if hasattr(param, "show_envvar"):
                    param.show_envvar = True


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _parameter_name(key: str) -> str:
    return key.replace("-", "_")


def _command_values(
    config: ConfigFile, root: click.Command
) -> tuple[dict[tuple[str, ...], dict[str, Any]], dict[tuple[str, ...], dict[str, str]]]:
    """Each command's values from the file: shared keys first, then the command's own table over them."""
    leaves = dict(commands(root))
    shared, tables = _split_tables(config, root)
    values: dict[tuple[str, ...], dict[str, Any]] = {}
    keys: dict[tuple[str, ...], dict[str, str]] = {}
    for key, value in shared.items():
        name = _parameter_name(key)
        owners = [path for path, command in leaves.items() if path in SHARED_COMMANDS and name in options(command)]
        if not owners:
            known = ", ".join(" ".join(path) for path in sorted(SHARED_COMMANDS))
            raise ConfigError(config.path, config.key(key), f"not an option of {known}")
        for path in owners:
            values.setdefault(path, {})[name] = _checked(config, leaves[path], path, key, value, (key,))
            keys.setdefault(path, {})[name] = config.key(key)
    for path, table in tables.items():
        for key, value in table.items():
            name = _parameter_name(key)
            values.setdefault(path, {})[name] = _checked(config, leaves[path], path, key, value, (*path, key))
            keys.setdefault(path, {})[name] = config.key(*path, key)
    return values, keys


def _split_tables(
    config: ConfigFile, root: click.Command
) -> tuple[dict[str, Any], dict[tuple[str, ...], Mapping[str, Any]]]:
    """The shared keys, and the table of each command, found by walking the command tree."""
    shared: dict[str, Any] = {}
    tables: dict[tuple[str, ...], Mapping[str, Any]] = {}

    def walk(table: Mapping[str, Any], command: click.Command, path: tuple[str, ...]) -> None:
        children: Mapping[str, click.Command] = getattr(command, "commands", {})
        for key, value in table.items():
            if key in children:
                if not isinstance(value, dict):
                    raise ConfigError(
                        config.path, config.key(*path, key), f"must be a table ([{'.'.join((*path, key))}])"
                    )
                if getattr(children[key], "commands", {}):
                    walk(value, children[key], (*path, key))
                else:
                    tables[(*path, key)] = value
            elif not path:
                shared[key] = value
            else:
                known = ", ".join(children)
                raise ConfigError(config.path, config.key(*path, key), f"no such command (commands: {known})")

    walk(config.table, root, ())
    return shared, tables


def _checked(
    config: ConfigFile, command: click.Command, path: tuple[str, ...], key: str, value: Any, where: tuple[str, ...]
) -> Any:
    """The value of ``key`` for ``command``, checked as its option would check it; relative paths made
    relative to the file's folder. ``ConfigError`` naming the file and key otherwise."""
    name = _parameter_name(key)
    if name == LOCUST_ARGS_KEY and path == LOCUST_ARGS_COMMAND:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(config.path, config.key(*where), "must be a list of strings (Locust's arguments)")
        return value
    param = options(command).get(name)
    if param is None:
        names = [*options(command), *([LOCUST_ARGS_KEY] if path == LOCUST_ARGS_COMMAND else [])]
        known = ", ".join(sorted(n.replace("_", "-") for n in names))
        command_name = " ".join(("quotaquake", *path))
        raise ConfigError(config.path, config.key(*where), f"not an option of `{command_name}` (options: {known})")
    value = _shaped(config, param, value, where)
    try:
        param.process_value(click.Context(command, info_name=path[-1]), value)
    except click.exceptions.BadParameter as exc:
        raise ConfigError(config.path, config.key(*where), _problem(exc)) from None
    return _relative_to(config.folder, param, value)


def _shaped(config: ConfigFile, param: click.Parameter, value: Any, where: tuple[str, ...]) -> Any:
    """Refuse what TOML gives but the option cannot mean: a table, a list for a single value, a boolean
    for a number or a text (the option's coercion would take ``true`` as 1)."""
    multiple = bool(getattr(param, "multiple", False))
    if isinstance(value, dict):
        raise ConfigError(config.path, config.key(*where), "must be a value, not a table")
    if multiple:
        items = value if isinstance(value, list) else [value]
        for item in items:
            _scalar(config, param, item, where)
        return items
    if isinstance(value, list):
        raise ConfigError(config.path, config.key(*where), "takes one value, not a list")
    _scalar(config, param, value, where)
    return value


def _scalar(config: ConfigFile, param: click.Parameter, value: Any, where: tuple[str, ...]) -> None:
    is_flag = bool(getattr(param, "is_flag", False))
    if isinstance(value, (dict, list)):
        raise ConfigError(config.path, config.key(*where), "must be a value, not a list or table")
    if isinstance(value, bool) and not is_flag:
        raise ConfigError(config.path, config.key(*where), f"{str(value).lower()} is not a valid value here")
    if not isinstance(value, (str, int, float, bool)):
        raise ConfigError(config.path, config.key(*where), f"{value!r} is not a valid value here")


def _problem(exc: click.exceptions.BadParameter) -> str:
    """The reason of a ``BadParameter`` without click's ``Invalid value for '--x':`` preamble."""
    return str(exc.message)


def _relative_to(folder: Path, param: click.Parameter, value: Any) -> Any:
    """Relative paths of path options made absolute against ``folder``; a named option's value that is no
    file there is kept as written (a name)."""
    is_path = bool(getattr(getattr(param, "type_descriptor", None), "is_path", False))
    if not is_path and param.name not in NAMED_OPTIONS:
        return value
    if isinstance(value, list):
        return [_absolute(folder, str(v), param.name) for v in value]
    return _absolute(folder, str(value), param.name)


def _absolute(folder: Path, value: str, name: str | None) -> str:
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        return os.path.normpath(path)
    beside = os.path.normpath(folder / path)  # "../x" written in the file: the folder's parent's x
    if name in NAMED_OPTIONS and not Path(beside).exists():
        return value
    return beside


# -- where each value came from (run.json ``settings``) ---------------------------------------------------------


def command_path(ctx: click.Context) -> tuple[str, ...]:
    """The command's names below the root: ``("stack", "up")``."""
    names: list[str] = []
    while ctx.parent is not None:
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return tuple(names)


def source_of(ctx: click.Context, project: Project, name: str) -> str:
    """Where the value of parameter ``name`` came from, as ``CommandSetting.source`` says it."""
    source = ctx.get_parameter_source(name)
    param = next(p for p in ctx.command.params if p.name == name)
    if source is click.core.ParameterSource.COMMANDLINE:
        return "command line"
    if source is click.core.ParameterSource.ENVIRONMENT:
        return f"environment variable {param.envvar}"
    if source is click.core.ParameterSource.DEFAULT_MAP and project.config is not None:
        return f"config file {project.config.path} ({project.key_of(command_path(ctx), name)})"
    return "default"


def option_of(ctx: click.Context, name: str) -> str:
    param = next(p for p in ctx.command.params if p.name == name)
    opts = getattr(param, "opts", None) or [name]
    return str(max(opts, key=len))


def jsonable(value: object) -> JsonValue:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, str):
        return masked(value) if "://" in value else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def applied_settings(
    ctx: click.Context, project: Project, resolved: Mapping[str, tuple[object, str]]
) -> tuple[CommandSetting, ...]:
    """Every option of the command with its value and source; ``resolved`` replaces what the command
    resolved itself (a default file found in the project, a scenario given by name)."""
    settings = []
    for param in ctx.command.params:
        name = param.name
        if not name or param.param_type_name != "option" or name not in ctx.params:
            continue
        value, source = ctx.params[name], source_of(ctx, project, name)
        if name in resolved:
            value, note = resolved[name]
            source = note if source == "default" else f"{source} ({note})"
        settings.append(CommandSetting(option=option_of(ctx, name), value=jsonable(value), source=source))
    return tuple(settings)


def set_where(ctx: click.Context, project: Project, name: str) -> str | None:
    """``set by environment variable X`` / ``set in <file>: <key>`` for an option not typed, else ``None``."""
    if not any(p.name == name for p in ctx.command.params):
        return None
    source = ctx.get_parameter_source(name)
    if source is click.core.ParameterSource.ENVIRONMENT:
        param = next(p for p in ctx.command.params if p.name == name)
        return f"set by environment variable {param.envvar}"
    if source is click.core.ParameterSource.DEFAULT_MAP and project.config is not None:
        return f"set in {project.config.path}: {project.key_of(command_path(ctx), name)}"
    return None


LOCUST_ARGS_ENV_VAR = env_var(LOCUST_ARGS_KEY)


def locust_arguments(ctx: click.Context, project: Project) -> tuple[tuple[str, ...], CommandSetting]:
    """Locust's arguments: the file's ``locust-args`` (or ``$QUOTAQUAKE_LOCUST_ARGS``, split like a shell
    would) first, then those after the options (later ones win in Locust's parser); and their setting."""
    typed = tuple(ctx.args)
    from_env = os.environ.get(LOCUST_ARGS_ENV_VAR)
    if from_env:
        try:
            earlier, source = tuple(shlex.split(from_env)), f"environment variable {LOCUST_ARGS_ENV_VAR}"
        except ValueError as exc:
            raise UsageError(f"{LOCUST_ARGS_ENV_VAR}: cannot split {from_env!r}: {exc}") from None
    elif project.locust_args() and project.config is not None:
        earlier = project.locust_args()
        source = f"config file {project.config.path} ({project.key_of(('run',), LOCUST_ARGS_KEY)})"
    else:
        earlier, source = (), "default"
    sources = [s for s, given in ((source, earlier), ("command line", typed)) if given] or ["default"]
    setting = CommandSetting(option="locust arguments", value=[*earlier, *typed], source=" + ".join(sources))
    return (*earlier, *typed), setting
