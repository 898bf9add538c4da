"""Locust's web UI with a quotaquake scenario: every ``--qq-*`` option is a form field, bad values are refused
by the form, and each swarm is a run folder of its own that ``quotaquake verify`` accepts, recording the rate
typed into the form.

Real Locust (``--processes 2``) against a direct-response Envoy, driven through the web UI's HTTP API as the
form does (``POST /swarm``, ``POST /stop``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quotaquake.load.measure import arrival_stats
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import read_history
from tests.support.direct_envoy import DirectEnvoy
from tests.support.plain_locust import REPO, PlainLocust, distributed_args, free_port

SWARM_S = 4


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectEnvoy]:
    with DirectEnvoy(tmp_path_factory.mktemp("direct-envoy")) as running:
        yield running


def post(url: str, form: dict[str, str]) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def state_of(web: str) -> str:
    with urllib.request.urlopen(f"{web}/stats/requests", timeout=10) as response:
        return str(json.loads(response.read())["state"])


def await_state(web: str, states: set[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if state_of(web) in states:
            return
        time.sleep(0.2)  # poll interval of the web UI's state
    raise AssertionError(f"web UI never reached {states} (now {state_of(web)})")


def swarm(web: str, rate: str, run_time: str, host: str = "") -> dict[str, Any]:
    """The form's POST: Locust's own fields (the user count is ignored by the shape) and ours."""
    form = {"user_count": "1", "spawn_rate": "1", "host": host, "run_time": run_time, "qq_rate": rate}
    return post(f"{web}/swarm", form)


@pytest.mark.integration
def test_swarms_of_the_web_ui_are_runs_of_their_own(envoy: DirectEnvoy, tmp_path: Path) -> None:
    base, port = tmp_path / "web", free_port()
    web = f"http://127.0.0.1:{port}"
    args = [
        "-f", str(REPO / "scenarios" / "tiered.py"), "--web-host", "127.0.0.1", "--web-port", str(port),
        "--qq-state", str(envoy.state_path), "--qq-out", str(base), *distributed_args(2),
    ]  # fmt: skip
    with PlainLocust(args, tmp_path / "locust.log") as locust:
        locust.wait_for_log("Starting web interface", timeout_s=30)
        locust.wait_for_log("2 workers connected", timeout_s=30)
        with urllib.request.urlopen(web, timeout=10) as response:
            page = response.read().decode()
        extra = json.loads(re.search(r"window\.templateArgs = (\{.*?\})\s*</script>", page, re.S)[1])["extra_options"]  # type: ignore[index]
        assert {"qq_rate", "qq_max_in_flight", "qq_shape", "qq_out", "qq_tiers"} <= extra.keys()
        assert "qq_orchestrated" not in extra
        assert "Number of users" in extra["qq_rate"]["help_text"]  # the form says the field is ignored
        assert "steady, ramp, step, spike" in extra["qq_shape"]["help_text"]

        assert "--qq-rate" in swarm(web, "abc", f"{SWARM_S}s")["message"]  # refused by the form, not a crash
        assert "--qq-rate" in swarm(web, "0", f"{SWARM_S}s")["message"]
        assert "duration" in swarm(web, "100", "3h")["message"]  # above the 2 h cap
        assert "not loopback" in swarm(web, "100", "3s", host="http://192.0.2.7")["message"]  # the safety guard

        for rate in ("50", "200"):  # not the default (100): the form changed it
            assert swarm(web, rate, f"{SWARM_S}s")["success"]
            await_state(web, {"running"}, timeout_s=15)
            assert "a swarm is running" in swarm(web, "300", "1s")["message"]  # options hold during a swarm
            await_state(web, {"stopped"}, timeout_s=SWARM_S + 30)  # the shape ends the swarm at its run time

        assert swarm(web, "150", "60s")["success"]  # stopped early from the web UI
        await_state(web, {"running"}, timeout_s=15)
        time.sleep(2)
        post(f"{web}/stop", {})
        await_state(web, {"stopped"}, timeout_s=30)

    for number, rate, reason in ((1, 50.0, "completed"), (2, 200.0, "completed"), (3, 150.0, "stopped")):
        folder = RunFolder(base / f"swarm-{number}")
        info, engine = folder.read_info(), folder.read_engine()
        history = read_history(folder.history_dir)
        assert engine is not None and engine.generator is not None
        assert info.target_rate == rate and engine.swarm == number and engine.stop_reason == reason
        assert len(history) == engine.requests == engine.generator.sent > 0
        assert engine.generator.complete and len(engine.generator.processes) == 3
        assert {"option": "--qq-rate", "value": rate, "source": "web UI form"} in [
            s.model_dump() for s in engine.settings
        ]
        if reason == "completed":
            assert info.duration_s == SWARM_S
            assert arrival_stats(history).steady_rate == pytest.approx(rate, rel=0.05)
        verify = subprocess.run(
            [sys.executable, "-m", "quotaquake", "verify", str(folder.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode in (0, 1, 3), verify.stdout[-2000:] + verify.stderr[-2000:]
        verdicts = {v["check"]: v["status"] for v in json.loads(folder.verdicts_file.read_text())["verdicts"]}
        assert verdicts["completeness"] == ("pass" if reason == "completed" else "unknown")  # stopped early
