"""The nightly workflow (.github/workflows/nightly.yml): actionlint finds nothing, and it runs what the
README sets up and the files it names exist and load."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from quotaquake.cli import app
from quotaquake.verify.thresholds import load_thresholds

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def actionlint() -> str:
    """The actionlint binary of the dev dependencies (beside this Python), else on PATH."""
    found = shutil.which("actionlint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, "actionlint is missing: install the dev dependencies (pip install -e '.[dev]')"
    return found


def workflow() -> dict[str, object]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps_text() -> str:
    return WORKFLOW.read_text(encoding="utf-8")


def test_actionlint_finds_nothing() -> None:
    done = subprocess.run(
        [actionlint(), "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_scheduled_off_the_hour_and_runnable_by_hand() -> None:
    triggers = workflow()[True]  # YAML 1.1 reads the key `on` as True
    assert isinstance(triggers, dict) and "workflow_dispatch" in triggers
    (schedule,) = triggers["schedule"]
    minute = schedule["cron"].split()[0]
    assert minute.isdigit() and int(minute) != 0


def test_it_runs_the_readme_setup_the_embedded_stack_with_chaos_and_kong_via_docker() -> None:
    text = steps_text()
    assert "scripts/setup.sh" in text
    for path in ("scripts/setup.sh", "scenarios/tiered.py", "chaos/redis-kill.json"):
        assert (ROOT / path).is_file(), path
        assert path in text
    assert "--provider docker" in text
    assert "quotaquake gate" in text and "quotaquake run" in text
    assert text.count("actions/cache/restore@v4") == 2 and text.count("actions/cache/save@v4") == 2
    assert text.count("retention-days:") == 2


def test_its_thresholds_file_loads() -> None:
    (path,) = set(re.findall(r"THRESHOLDS: (\S+)", steps_text()))
    thresholds = load_thresholds(ROOT / path)
    assert thresholds.thresholds and thresholds.gate.baseline_runs


def test_the_options_it_passes_exist() -> None:
    runner = CliRunner()
    for command, options in (
        ("run", ("--scenario", "--rate", "--duration", "--chaos", "--thresholds", "--baseline", "--out", "--provider")),
        ("gate", ("--baseline", "--thresholds", "--out")),
    ):
        shown = runner.invoke(app, [command, "--help"], terminal_width=200).output
        for option in options:
            assert option in shown, (command, option)
