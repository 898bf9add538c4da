"""quotaquake from a directory that is not the repository: an empty one, a project with a quotaquake.toml, and
an installed wheel. Real stack, real Locust; the packaged policy, templates and scenario are what make it work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
VERDICT_CODES = (0, 3)  # pass, or unknown (a short run cannot judge every SLO); never 2 (usage) or a crash


def quotaquake(
    cwd: Path, *args: str, pythonpath: str | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``python -m quotaquake ARGS`` in ``cwd`` with no QUOTAQUAKE_* variable and this tree's code."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("QUOTAQUAKE_")}
    env["PYTHONPATH"] = pythonpath or str(REPO / "src")
    return subprocess.run([sys.executable, "-m", "quotaquake", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Path]:
    """An empty directory with a one-replica stack brought up from it (and down again after the test)."""
    folder = tmp_path / "empty"
    folder.mkdir()
    up = quotaquake(folder, "stack", "up", "--replicas", "1")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield folder
    finally:
        down = quotaquake(folder, "stack", "down")
        assert down.returncode == 0 and "is down" in down.stdout, down.stdout + down.stderr


def settings(run_json: Path) -> dict[str, tuple[object, str]]:
    info = json.loads(run_json.read_text())
    return {s["option"]: (s["value"], s["source"]) for s in info["settings"]}


def run_folder(output: str) -> Path:
    line = next(line for line in output.splitlines() if line.startswith("run folder: "))
    return Path(line.removeprefix("run folder: ").strip())


def test_stack_run_verify_down_from_an_empty_directory(empty: Path) -> None:
    assert (empty / ".quotaquake" / "stack.json").is_file()
    run = quotaquake(empty, "run", "--scenario", "tiered", "--rate", "20", "--duration", "4s")
    assert run.returncode in VERDICT_CODES, run.stdout + run.stderr
    folder = run_folder(run.stdout)
    assert folder.parent == empty / "reports"
    for shown in ("429: ", "401: ", "errors: ", "summary", "latency, intended", "answers per tier", "verdicts"):
        assert shown in run.stdout, shown
    assert run.stdout.index("summary") < run.stdout.index("verdicts")
    applied = settings(folder / "run.json")
    packaged = REPO / "src" / "quotaquake" / "defaults"
    assert applied["--scenario"] == (
        str(packaged / "scenarios" / "tiered.py"),
        "command line (packaged scenario tiered)",
    )
    assert applied["--policy"] == (str(packaged / "stack" / "policy.yaml"), "packaged default")
    assert applied["--rate"] == (20.0, "command line")

    again = quotaquake(empty, "verify", str(folder.relative_to(empty)))
    assert again.returncode == run.returncode, again.stdout + again.stderr
    assert "summary" in again.stdout and again.stdout.index("summary") < again.stdout.index("verdicts")


def test_a_run_configured_by_the_projects_quotaquake_toml(empty: Path) -> None:
    project = empty / "project"
    (project / "deep").mkdir(parents=True)
    config = project / "quotaquake.toml"
    config.write_text(
        'state = "../.quotaquake/stack.json"\n'  # relative to this file: the stack brought up in `empty`
        "[run]\n"
        'scenario = "tiered"\nrate = 15\nduration = "3s"\nout = "runs/configured"\n'
        'locust-args = ["--qq-tiers", "free=1,pro=1"]\n'
    )
    run = quotaquake(project / "deep", "run", "--duration", "4s")
    assert run.returncode in VERDICT_CODES, run.stdout + run.stderr
    assert f"config: {config}" in run.stdout
    folder = project / "runs" / "configured"
    info = json.loads((folder / "run.json").read_text())
    assert info["config_file"] == str(config) and info["duration_s"] == 4.0 and info["target_rate"] == 15.0
    applied = settings(folder / "run.json")
    assert applied["--rate"] == (15.0, f"config file {config} (run.rate)")
    assert applied["--duration"] == ("4s", "command line")
    assert applied["--state"] == (str(empty / ".quotaquake" / "stack.json"), f"config file {config} (state)")
    assert applied["locust arguments"] == (["--qq-tiers", "free=1,pro=1"], f"config file {config} (run.locust-args)")
    tiers = {s["option"]: s["value"] for s in json.loads((folder / "engine.json").read_text())["settings"]}
    assert tiers["--qq-tiers"] == "free=1,pro=1"


def test_an_installed_wheel_brings_its_defaults(tmp_path: Path) -> None:
    """Built and installed (not the repository's tree): a stack comes up from an empty directory."""
    wheels, target, empty = tmp_path / "wheels", tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(REPO)], check=True, cwd=tmp_path, timeout=300, capture_output=True)  # fmt: skip
    wheel = next(wheels.glob("quotaquake-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300, capture_output=True)  # fmt: skip
    installed = target / "quotaquake" / "defaults"
    assert not installed.joinpath("stack").is_symlink() and installed.joinpath("stack", "policy.yaml").is_file()
    assert (
        installed.joinpath("scenarios", "tiered.py").is_file()
        and installed.joinpath("chaos", "redis-kill.json").is_file()
    )
    version = quotaquake(empty, "--version", pythonpath=str(target))
    assert version.returncode == 0 and version.stdout.startswith("quotaquake "), version.stderr
    up = quotaquake(empty, "stack", "up", "--replicas", "1", pythonpath=str(target))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((empty / ".quotaquake" / "stack.json").read_text())
        assert state["policy_file"] == str(installed / "stack" / "policy.yaml")
    finally:
        down = quotaquake(empty, "stack", "down", pythonpath=str(target))
        assert down.returncode == 0, down.stdout + down.stderr
