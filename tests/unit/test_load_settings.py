"""Where each option value came from (command line, environment, config files, defaults, web UI form)."""

from __future__ import annotations

import argparse
from pathlib import Path

import configargparse
import pytest

from quotaquake.load.options import ScenarioDefaults, add_options
from quotaquake.load.settings import (
    applied_settings,
    changed_values,
    config_files,
    drop_default_config_files,
    json_value,
    option_name,
)


def parser_with(tmp_path: Path, conf: str) -> configargparse.ArgumentParser:
    """A parser like Locust's: a default config file in ``tmp_path``, an option with an environment variable."""
    (tmp_path / "locust.conf").write_text(conf)
    parser = configargparse.ArgumentParser(default_config_files=[str(tmp_path / "locust.conf")])
    parser.add_argument("-t", "--run-time", type=int, default=None, env_var="LOCUST_RUN_TIME")
    parser.add_argument("--stop-timeout", type=float, default=0.0, env_var="LOCUST_STOP_TIMEOUT")
    parser.add_argument("--web-auth", default=None)
    add_options(parser, ScenarioDefaults())
    return parser


def test_each_value_has_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCUST_RUN_TIME", "30")
    monkeypatch.setenv("LOCUST_STOP_TIMEOUT", "4")
    parser = parser_with(tmp_path, "qq-rate = 150\nqq-seed = 7\nweb-auth = me:secret\n")
    values = vars(parser.parse_args(["--qq-seed", "9", "--stop-timeout", "2"]))
    found = {s.option: (s.value, s.source) for s in applied_settings(parser, values)}
    conf = f"config file {tmp_path / 'locust.conf'}"
    assert found["--qq-rate"] == (150.0, conf)
    assert found["--qq-seed"] == (9, "command line")  # the command line beats the file ...
    assert found["--stop-timeout"] == (2.0, "command line")  # ... and the environment
    assert found["--run-time"] == (30, "environment variable LOCUST_RUN_TIME")
    assert found["--qq-timeout"] == (10.0, "default")
    assert found["--web-auth"] == ("***", conf)  # secrets are not written down
    assert config_files(parser.get_source_to_settings_dict()) == [str(tmp_path / "locust.conf")]


def test_form_and_scenario_changes_are_marked(tmp_path: Path) -> None:
    parser = parser_with(tmp_path, "")
    values = vars(parser.parse_args([]))
    before = dict(values)
    values["qq_rate"], values["stop_timeout"] = 250.0, 11.0
    form = changed_values(before, values) - {"stop_timeout"}
    found = {
        s.option: s.source
        for s in applied_settings(parser, values, changed_by_form=form, set_by_quotaquake={"stop_timeout"})
    }
    assert found["--qq-rate"] == "web UI form"
    assert found["--stop-timeout"] == "quotaquake"
    assert changed_values({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b"}


def test_an_orchestrated_run_reads_no_default_config_file(tmp_path: Path) -> None:
    parser = parser_with(tmp_path, "qq-rate = 150\n")
    assert not drop_default_config_files(parser, ["locust", "-f", "x.py"])
    assert drop_default_config_files(parser, ["locust", "-f", "x.py", "--qq-orchestrated"])
    values = vars(parser.parse_args(["--qq-orchestrated"]))
    assert values["qq_rate"] == 100.0
    assert config_files(parser.get_source_to_settings_dict()) == []
    assert not drop_default_config_files(argparse.ArgumentParser(), ["--qq-orchestrated"])  # plain argparse: nothing


def test_option_names_and_json_values() -> None:
    parser = argparse.ArgumentParser()
    action = parser.add_argument("-t", "--run-time")
    positional = parser.add_argument("paths", nargs="*")
    assert option_name(action) == "--run-time" and option_name(positional) == "paths"
    assert json_value([1, 2.5, "a", None, True]) == [1, 2.5, "a", None, True]
    assert json_value(float("inf")) == "inf"
    assert json_value(Path("/x")) == "/x"
