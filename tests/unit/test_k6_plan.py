"""The k6 plan: the scenario's own traffic mix, VUs by rate, and a script k6 accepts."""

from __future__ import annotations

import json
import socket
import subprocess
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from quotaquake.context import RunContext, RunRequest
from quotaquake.load.k6.plan import (
    MAX_VUS,
    PICK_CYCLE,
    build_plan,
    canonical,
    expected_statuses,
    k6_options,
    record_headers,
    render_script,
    vus_for,
)
from quotaquake.load.k6.runner import k6_binary, k6_command, k6_environment, reserved_port
from quotaquake.load.options import ScenarioOptions
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.stack.state import Consumer, Endpoints, StackState

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")
STATE = StackState(
    provider="local",
    stack_id="s",
    work_dir="/tmp",
    state_file="/tmp/s.json",
    endpoints=Endpoints(gateway="http://127.0.0.1:8000/"),
    consumers=[Consumer(id=f"{t}-{n}", tier=t, key=f"k-{t}-{n}") for t in ("free", "pro") for n in (1, 2, 3)],
)
OPTIONS = ScenarioOptions(
    state=Path("/tmp/s.json"),
    out=Path("/tmp/run"),
    rate=300.0,
    user_rate=20.0,
    shape="steady",
    tiers={"free": 3.0, "pro": 1.0, "anonymous": 1.0, "invalid": 0.5, "partner": 1.0},
    endpoints={"/identify": 3.0, "/health": 1.0},
    target="api",
    consumers_per_tier=0,
    anon_ips=4,
    key_header="x-api-key",
    timeout_s=10.0,
)


def test_picks_follow_the_scenarios_weights_and_seed() -> None:
    plan, warnings = build_plan(OPTIONS, STATE, POLICY, 30.0)
    assert warnings == [f"--qq-tiers: tier 'partner' has no consumers in {OPTIONS.state}; skipped"]
    assert len(plan.picks) == PICK_CYCLE
    tiers = Counter(plan.caller_and_endpoint(n)[0].tier for n in range(PICK_CYCLE))
    for tier, weight in {"free": 3.0, "pro": 1.0, "anonymous": 1.0, "invalid": 0.5}.items():
        assert tiers[tier] / PICK_CYCLE == pytest.approx(weight / 5.5, abs=0.02)
    paths = Counter(plan.caller_and_endpoint(n)[1].path for n in range(PICK_CYCLE))
    assert paths["/identify"] / PICK_CYCLE == pytest.approx(0.75, abs=0.02)
    anon = [c for c in plan.callers if c.tier == "anonymous"]
    assert anon[0].headers == {"x-forwarded-for": "198.51.100.1"} and len(anon) == 4
    assert build_plan(OPTIONS, STATE, POLICY, 30.0)[0].picks == plan.picks  # same seed, same picks
    assert build_plan(replace(OPTIONS, seed=1), STATE, POLICY, 30.0)[0].picks != plan.picks


def test_vus_cover_the_rate_at_the_expected_latency_and_the_cap() -> None:
    assert vus_for(300.0) == (80, 300)  # 300 x 0.25 s + 5; 300 x 1 s
    assert vus_for(10_000.0) == (MAX_VUS, MAX_VUS)
    assert vus_for(10_000.0, max_vus=100) == (100, 100)  # never more pre-allocated than allowed
    assert vus_for(0.5) == (1, 1)


def test_options_schedule_vus_and_a_stop_that_lets_requests_finish() -> None:
    plan, _ = build_plan(replace(OPTIONS, shape="spike", timeout_s=3.0), STATE, POLICY, 20.0)
    options = k6_options(plan)
    scenario = options["scenarios"]["load"]  # type: ignore[index]
    assert scenario["executor"] == "ramping-arrival-rate" and scenario["startRate"] == 60
    assert scenario["preAllocatedVUs"] == 80 and scenario["maxVUs"] == 300
    assert scenario["gracefulStop"] == "4000ms"
    assert options["discardResponseBodies"] is True


def test_header_names_as_k6_spells_them_and_expected_statuses() -> None:
    assert canonical("x-ratelimit-remaining") == "X-Ratelimit-Remaining"
    assert record_headers()[0] == ["X-Ratelimit-Limit", "X-Ratelimit-Limit-Minute"]
    assert expected_statuses() == [{"min": 200, "max": 299}, 401, 429]


def test_the_script_inlines_the_plan(tmp_path: Path) -> None:
    plan, _ = build_plan(OPTIONS, STATE, POLICY, 30.0)
    script = render_script(plan)
    constant = script.split("const QQ = ", 1)[1].split(";\n\nfunction qqPicks", 1)[0]
    qq = json.loads(constant)
    assert qq["base"] == "http://127.0.0.1:8000" and qq["timeout"] == "10000ms"
    assert [e["path"] for e in qq["endpoints"]] == [e.path for e in plan.endpoints]
    assert json.loads(script.split("return ", 1)[1].split(";\n}", 1)[0]) == plan.picks


def test_k6_accepts_the_script(tmp_path: Path) -> None:
    # `k6 inspect` runs the script's init code and prints its options (no request is sent)
    plan, _ = build_plan(OPTIONS, STATE, POLICY, 30.0)
    script = tmp_path / "k6-script.js"
    script.write_text(render_script(plan))
    inspected = subprocess.run(
        [k6_binary(), "inspect", "--execution-requirements", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert inspected.returncode == 0, inspected.stderr[-2000:]
    options = json.loads(inspected.stdout)
    assert options["scenarios"]["load"]["rate"] == 300 and options["maxVUs"] == 300


def test_k6_runs_from_the_folder_without_the_callers_k6_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = RunFolder(Path("/runs/a,b"))  # a comma in the path never reaches k6's --out argument
    command = k6_command("k6", folder, 6565)
    assert "csv=fileName=k6-samples.csv.gz,timeFormat=unix_nano" in command
    assert command[-1] == "k6-script.js" and "127.0.0.1:6565" in command
    monkeypatch.setenv("K6_DURATION", "1h")
    context = RunContext(
        request=RunRequest(scenario=Path("s.py"), rate=1.0, duration_s=1.0),
        run_id="r",
        folder=folder,
        state=STATE,
        policy=POLICY,
        processes=1,
        console=None,  # type: ignore[arg-type]
    )
    env = k6_environment(context)
    assert "K6_DURATION" not in env and env["QUOTAQUAKE_STACK_ID"] == "s"
    assert env["GOGC"] == "400"
    monkeypatch.setenv("GOGC", "150")
    assert k6_environment(context)["GOGC"] == "150"  # the caller's own choice stands


def test_the_api_port_is_held_yet_k6_can_listen_on_it() -> None:
    with reserved_port() as port:
        with socket.socket() as k6_like:  # Go listens with SO_REUSEADDR
            k6_like.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            k6_like.bind(("127.0.0.1", port))
            k6_like.listen()
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))  # nobody else gets it meanwhile
