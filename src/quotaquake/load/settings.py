"""Where each option value of a Locust run came from: command line, environment, config files, defaults.

Locust reads ``~/.locust.conf``, ``./locust.conf`` and ``./pyproject.toml`` (``[tool.locust]``) of the
working directory by itself, plus ``--config`` files and ``LOCUST_*`` environment variables, all without a
word; any of them can change a run. configargparse records, for the parser that parsed the options, which
values each of these sources supplied (``get_source_to_settings_dict``); ``applied_settings`` turns that and
the final option values into ``EngineSetting`` entries for ``engine.json``: every option, its value, and
its source, so a run says what it ran with.

Sources, by precedence (configargparse): command line > environment variables > ``--config`` files >
``pyproject.toml`` > ``locust.conf`` > ``~/.locust.conf`` > defaults. Values changed later are marked too:
by the web UI form (``changed_by_form``) or by the scenario itself (``set_by_quotaquake``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from configargparse import already_on_command_line
from pydantic import JsonValue

from quotaquake.runfolder.models import EngineSetting

SECRET_DESTS = frozenset({"web_auth", "web_login"})
MASKED = "***"
SKIPPED_ACTIONS = (argparse._HelpAction, argparse._VersionAction)
FORM = "web UI form"
QUOTAQUAKE = "quotaquake"


ORCHESTRATED_FLAG = "--qq-orchestrated"


def drop_default_config_files(parser: Any, argv: Iterable[str]) -> bool:
    """Under ``quotaquake run`` (``--qq-orchestrated`` in ``argv``), make Locust's parser read none of its
    default config files (``~/.locust.conf``, ``./locust.conf``, ``./pyproject.toml``): the run's command
    line is the whole story (``quotaquake.load.runner``). Call before the parser parses; True if it did.

    configargparse keeps them in ``_default_config_files``, which Locust itself empties the same way when
    it needs a parser free of them (``locust.argument_parser.default_args_dict``).
    """
    if ORCHESTRATED_FLAG not in argv or not hasattr(parser, "_default_config_files"):
        return False
    parser._default_config_files = []
    return True


def option_name(action: argparse.Action) -> str:
    """The option as typed: its long form (``--run-time``), else its first form, else its dest."""
    strings = list(action.option_strings)
    longs = [s for s in strings if s.startswith("--")]
    return (longs or strings or [action.dest])[0]


def json_value(value: Any) -> JsonValue:
    """A value as JSON: numbers, strings, booleans, lists as they are; anything else as its ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def sources_by_dest(sources: Mapping[str, Mapping[str, tuple[Any, Any]]]) -> dict[str, str]:
    """``dest -> source`` for the values that environment variables and config files supplied."""
    found: dict[str, str] = {}
    for source, settings in sources.items():
        kind, _, where = source.partition("|")
        for key, (action, _value) in settings.items():
            if action is None:
                continue
            if kind == "environment_variables":
                found.setdefault(action.dest, f"environment variable {key}")
            elif kind == "config_file":
                found.setdefault(action.dest, f"config file {Path(where).expanduser().absolute()}")
    return found


def config_files(sources: Mapping[str, Any]) -> list[str]:
    """The configuration files that supplied at least one value (absolute paths)."""
    return [
        str(Path(source.partition("|")[2]).expanduser().absolute())
        for source, settings in sources.items()
        if source.startswith("config_file|") and settings
    ]


def command_line(sources: Mapping[str, Mapping[str, tuple[Any, Any]]]) -> list[str]:
    entry = sources.get("command_line", {}).get("")
    return list(entry[1]) if entry else []


def applied_settings(
    parser: Any,
    values: Mapping[str, Any],
    *,
    changed_by_form: Iterable[str] = (),
    set_by_quotaquake: Iterable[str] = (),
) -> list[EngineSetting]:
    """Every option of ``parser`` with its value in ``values`` (the parsed options now) and its source.

    ``parser`` must have parsed the run's options (configargparse keeps what each source supplied).
    """
    sources = parser.get_source_to_settings_dict()
    from_sources = sources_by_dest(sources)
    argv = command_line(sources)
    form, ours = set(changed_by_form), set(set_by_quotaquake)
    settings = []
    for action in parser._actions:
        if isinstance(action, SKIPPED_ACTIONS) or action.dest == argparse.SUPPRESS or action.dest not in values:
            continue
        dest = action.dest
        if dest in form:
            source = FORM
        elif dest in ours:
            source = QUOTAQUAKE
        elif action.option_strings and already_on_command_line(argv, action.option_strings, parser.prefix_chars):
            source = "command line"
        else:
            source = from_sources.get(dest, "default")
        secret = dest in SECRET_DESTS or getattr(action, "is_secret", False)
        value = MASKED if secret and values[dest] else json_value(values[dest])
        settings.append(EngineSetting(option=option_name(action), value=value, source=source))
    return sorted(settings, key=lambda s: s.option)


def changed_values(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """Dests whose value differs between two snapshots of the parsed options."""
    return {dest for dest, value in after.items() if dest in before and before[dest] != value}
