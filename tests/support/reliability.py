"""The reliability campaign's cases, shared by ``benchmarks/reliability.py`` and the integration tests.

Bad inputs: each is a ``quotaquake`` command line and the files it needs (made in a fresh folder). Every one
must exit 2 with one line on stderr that names the option or file, print no traceback, and leave nothing
behind (no state file, no stack folder, no run folder, no process carrying the folder's state file).

Placeholders in a command: ``{tmp}`` is the case's folder; ``{run}`` a complete synthetic run folder in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET_SRC = Path(os.environ.get("QUOTAQUAKE_CAMPAIGN_SRC", REPO / "src"))
"""The quotaquake the commands run (``QUOTAQUAKE_CAMPAIGN_SRC=/other/checkout/src``: measure another version)."""
QUOTAQUAKE = [sys.executable, "-m", "quotaquake"]
RUN = ["run", "--scenario", "scenarios/tiered.py", "--rate", "10", "--duration", "5s", "--out", "{tmp}/out"]
STACK_FILE = "stack.json"

Setup = Callable[[Path], None]


@dataclass(frozen=True)
class BadInput:
    """One bad input: the command (placeholders above), what its error line must contain, and the files
    ``setup`` writes into the case's folder first."""

    name: str
    args: tuple[str, ...]
    expect: str
    setup: Setup | None = None


@dataclass(frozen=True)
class Outcome:
    case: str
    ok: bool
    problem: str
    stderr: str
    traceback: bool


# -- files the cases need --------------------------------------------------------------------------------


def write(relative: str, text: str) -> Setup:
    def make(tmp: Path) -> None:
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return make


def both(*setups: Setup) -> Setup:
    def make(tmp: Path) -> None:
        for setup in setups:
            setup(tmp)

    return make


def policy_with(change: Callable[[str], str]) -> Setup:
    return write("policy.yaml", change((REPO / "stack" / "policy.yaml").read_text()))


def experiment_with(change: Callable[[dict[str, object]], object], name: str = "exp.json") -> Setup:
    def make(tmp: Path) -> None:
        experiment = json.loads((REPO / "chaos" / "gateway-replica-kill.json").read_text())
        (tmp / name).write_text(json.dumps(change(experiment)))

    return make


def _set_count(experiment: dict[str, object], count: object) -> dict[str, object]:
    for activity in experiment["method"]:  # type: ignore[attr-defined]
        if activity.get("provider", {}).get("func") == "kill_gateway_replicas":
            activity["provider"]["arguments"]["count"] = count
    return experiment


def _drop(key: str) -> Callable[[dict[str, object]], object]:
    def change(experiment: dict[str, object]) -> object:
        experiment.pop(key, None)
        return experiment

    return change


def synthetic_run(tmp: Path) -> None:
    from quotaquake.policy import load_policy
    from tests.support.synthetic import SyntheticRun, mixed_consumers, write_run

    policy = load_policy(REPO / "stack" / "policy.yaml")
    write_run(tmp / "run", SyntheticRun(policy=policy, consumers=mixed_consumers(policy, 1), duration_s=5, seed=1))


def run_then(change: Callable[[Path], None]) -> Setup:
    def make(tmp: Path) -> None:
        synthetic_run(tmp)
        change(tmp / "run")

    return make


def _overwrite(name: str, data: bytes) -> Callable[[Path], None]:
    def change(run: Path) -> None:
        (run / name).write_bytes(data)

    return change


def _corrupt_history(run: Path) -> None:
    for part in sorted((run / "history").glob("*.parquet")):
        part.write_bytes(b"PAR1 this is not a parquet file")


def _truncate_history(run: Path) -> None:
    for part in sorted((run / "history").glob("*.parquet")):
        data = part.read_bytes()
        part.write_bytes(data[: len(data) // 2])


def state_with(data: dict[str, object] | str) -> Setup:
    def make(tmp: Path) -> None:
        text = data if isinstance(data, str) else json.dumps(data).replace("{tmp}", str(tmp))
        (tmp / STACK_FILE).write_text(text)

    return make


def binary_state(tmp: Path) -> None:
    (tmp / STACK_FILE).write_bytes(b"\xff\xfe\x00garbage")


def _state(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"provider": "local", "stack_id": "deadbeef", "work_dir": "{tmp}/w",
                               "state_file": "{tmp}/" + STACK_FILE, "ready": True}  # fmt: skip
    return {**base, **fields}


def scenario(text: str) -> Setup:
    return write("scenario.py", text)


VALID_SCENARIO = (REPO / "scenarios" / "tiered.py").read_text()
TARGET_OK = "gateway: http://127.0.0.1:9\nconsumers: consumers.csv\n"
CONSUMERS_OK = "id,tier,key\nc1,free,k1\n"


# -- the cases ---------------------------------------------------------------------------------------------


def _run(*extra: str, name: str, expect: str, setup: Setup | None = None) -> BadInput:
    return BadInput(name, (*RUN, *extra), expect, setup)


def _run_with(option: str, value: str, expect: str, setup: Setup | None = None, name: str = "") -> BadInput:
    args = list(RUN)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return BadInput(name or f"run {option} {value}", tuple(args), expect, setup)


def stack_up_cases() -> list[BadInput]:
    up = ("stack", "up", "--replicas", "1")
    policy = ("--policy", "{tmp}/policy.yaml")
    cases = [
        BadInput(f"up --replicas {v}", ("stack", "up", "--replicas", v), "--replicas")
        for v in ("0", "-1", "17", "abc", "1.5", "")
    ]
    cases += [BadInput(f"up --defect {v!r}", (*up, "--defect", v), "defect") for v in ("sloppy", "RACY!", "racy,slow")]
    cases += [
        BadInput("up --policy missing", (*up, "--policy", "{tmp}/nope.yaml"), "nope.yaml"),
        BadInput("up --policy is a folder", (*up, "--policy", "{tmp}"), "is a directory"),
        BadInput("up --policy not yaml", (*up, *policy), "policy.yaml", write("policy.yaml", "tiers: [unclosed\n")),
        BadInput("up --policy per_minute: true", (*up, *policy), "per_minute",
                 policy_with(lambda t: t.replace("per_minute: 100", "per_minute: true", 1))),
        BadInput("up --policy per_minute: -5", (*up, *policy), "per_minute",
                 policy_with(lambda t: t.replace("per_minute: 100", "per_minute: -5", 1))),
        BadInput("up --policy per_minute: 'lots'", (*up, *policy), "per_minute",
                 policy_with(lambda t: t.replace("per_minute: 100", "per_minute: lots", 1))),
        BadInput("up --policy unknown field", (*up, *policy), "policy.yaml", policy_with(lambda t: t + "\nbogus: 1\n")),
        BadInput("up --policy empty", (*up, *policy), "policy.yaml", write("policy.yaml", "")),
        BadInput("up --policy binary", (*up, *policy), "policy.yaml", write("policy.yaml", "\x00\x01\x02")),
        BadInput("up --policy a list", (*up, *policy), "policy.yaml", write("policy.yaml", "- a\n- b\n")),
        BadInput("up --provider cloud", (*up, "--provider", "cloud"), "--provider"),
        BadInput("up --provider external, no --target", ("stack", "up", "--provider", "external"), "--target"),
        BadInput("up --target missing", ("stack", "up", "--provider", "external", "--target", "{tmp}/t.yaml"),
                 "t.yaml"),
        BadInput("up --target not yaml", ("stack", "up", "--provider", "external", "--target", "{tmp}/t.yaml"),
                 "t.yaml", write("t.yaml", "gateway: [\n")),
        BadInput("up --target remote host", ("stack", "up", "--provider", "external", "--target", "{tmp}/t.yaml"),
                 "--allow-host", both(write("t.yaml", "gateway: https://api.example.com\nconsumers: c.csv\n"),
                                      write("c.csv", CONSUMERS_OK))),
        BadInput("up --target private host", ("stack", "up", "--provider", "external", "--target", "{tmp}/t.yaml"),
                 "--allow-host", both(write("t.yaml", "gateway: http://10.1.2.3:80\nconsumers: c.csv\n"),
                                      write("c.csv", CONSUMERS_OK))),
        BadInput("up --target consumers missing", ("stack", "up", "--provider", "external", "--target",
                 "{tmp}/t.yaml"), "consumers.csv", write("t.yaml", TARGET_OK)),
        BadInput("up --target consumers bad header", ("stack", "up", "--provider", "external", "--target",
                 "{tmp}/t.yaml"), "header", both(write("t.yaml", TARGET_OK), write("consumers.csv", "a,b\n1,2\n"))),
        BadInput("up --target consumers duplicate key", ("stack", "up", "--provider", "external", "--target",
                 "{tmp}/t.yaml"), "duplicate",
                 both(write("t.yaml", TARGET_OK), write("consumers.csv", CONSUMERS_OK + "c2,free,k1\n"))),
        BadInput("up --target unreachable", ("stack", "up", "--provider", "external", "--target", "{tmp}/t.yaml"),
                 "does not answer", both(write("t.yaml", TARGET_OK), write("consumers.csv", CONSUMERS_OK))),
        BadInput("up --provider docker without engine", (*up, "--provider", "docker"), "Docker"),
        BadInput("up --state is a folder", (*up, "--state", "{tmp}"), "is a folder"),
        BadInput("up --state under a file", (*up, "--state", "{tmp}/f/stack.json"), "is a file", write("f", "x")),
        BadInput("up --state on a read-only file system", (*up, "--state", "/proc/quotaquake.json"), "cannot"),
        BadInput("up over a corrupt state file", up, STACK_FILE, state_with("{not json")),
        BadInput("up over a state file of another kind", up, STACK_FILE, state_with("[1, 2, 3]")),
        BadInput("up over an external stack's state", up, "external", state_with(_state(provider="external"))),
        BadInput("up over a copied state file", up, "copy", state_with(_state(state_file="/elsewhere/stack.json"))),
        BadInput("up --allow-host without value", (*up, "--allow-host"), "--allow-host"),
    ]  # fmt: skip
    return cases


def stack_other_cases() -> list[BadInput]:
    return [
        BadInput("status without a state file", ("stack", "status"), "no stack state file"),
        BadInput("status of a corrupt state file", ("stack", "status"), STACK_FILE, state_with("{oops")),
        BadInput("status with --state a folder", ("stack", "status", "--state", "{tmp}"), "is a folder"),
        BadInput("status of a state file missing fields", ("stack", "status"), "stack_id",
                 state_with({"provider": "local"})),
        BadInput("status of a binary state file", ("stack", "status"), STACK_FILE, binary_state),
        BadInput("down of a corrupt state file", ("stack", "down"), STACK_FILE, state_with("{oops")),
        BadInput("down with --state a folder", ("stack", "down", "--state", "{tmp}"), "is a folder"),
        BadInput("down with --state under a file", ("stack", "down", "--state", "{tmp}/f/s.json"), "is a file",
                 write("f", "x")),
        BadInput("down of a copied state file", ("stack", "down"), "copy",
                 state_with(_state(state_file="/elsewhere/stack.json"))),
        BadInput("down of a state naming the repository", ("stack", "down"), "copy",
                 state_with(_state(state_file=str(REPO / "README.md"), work_dir=str(REPO)))),
        BadInput("restore without a state file", ("stack", "restore"), "no stack state file"),
        BadInput("restore of an external stack", ("stack", "restore"), "external",
                 state_with(_state(provider="external"))),
        BadInput("restore of a half-started stack", ("stack", "restore"), "never finished starting",
                 state_with(_state(ready=False))),
        BadInput("restore of a copied state file", ("stack", "restore"), "copy",
                 state_with(_state(state_file="/elsewhere/stack.json"))),
        BadInput("restore --timeout abc", ("stack", "restore", "--timeout", "abc"), "--timeout"),
        BadInput("unknown stack command", ("stack", "sideways"), "sideways"),
        BadInput("unknown command", ("explode",), "explode"),
    ]  # fmt: skip


def run_option_cases() -> list[BadInput]:
    cases = [
        BadInput("run without --rate", ("run", "--scenario", "scenarios/tiered.py", "--duration", "5s"), "--rate"),
        BadInput("run without --scenario", ("run", "--rate", "5", "--duration", "5s"), "--scenario"),
        BadInput("run without --duration", ("run", "--scenario", "scenarios/tiered.py", "--rate", "5"), "--duration"),
    ]
    cases += [_run_with("--rate", v, "rate") for v in ("-3", "0", "abc", "1e9", "nan", "inf")]
    cases += [_run_with("--duration", v, "duration") for v in ("5x", "0s", "-1", "3h", "", "1m-")]
    cases += [_run_with("--chaos-delay", v, "--chaos-delay") for v in ("soon", "-2s")]
    cases += [_run_with("--replicas", v, "--replicas") for v in ("0", "17", "two")]
    cases += [_run_with("--processes", v, "--processes") for v in ("0", "-1", "abc")]
    cases += [
        _run_with("--defect", "bogus", "bogus"),
        _run_with("--provider", "nope", "--provider"),
        _run_with("--provider", "external", "--target"),
        _run_with("--provider", "docker", "Docker"),
        _run_with("--scenario", "scenarios/nope.py", "--scenario"),
        _run_with("--scenario", "README.md", "--scenario"),
        _run_with("--scenario", "scenarios", "--scenario"),
        _run_with("--scenario", "{tmp}/scenario.py", "scenario.py", scenario("def broken(:\n"), "run scenario syntax"),
        _run_with("--scenario", "{tmp}/scenario.py", "scenario.py", scenario("x = 1\n\tif x:\n  pass\n"),
                  "run scenario indentation"),
        _run_with("--scenario", "{tmp}/scenario.py", "nosuchmodule", scenario("import nosuchmodule\n"),
                  "run scenario import error"),
        _run_with("--scenario", "{tmp}/scenario.py", "User", scenario("x = 1\n"), "run scenario without users"),
        _run_with("--scenario", "{tmp}/scenario.py", "ZeroDivisionError", scenario(VALID_SCENARIO + "\n1 / 0\n"),
                  "run scenario raising at import"),
        _run_with("--scenario", "{tmp}/scenario.py", "scenario.py", write("scenario.py", "\x00\x00"),
                  "run scenario null bytes"),
        _run_with("--out", "README.md/run", "is not a folder", name="run --out under a file"),
        _run_with("--out", "/proc/quotaquake-run", "cannot", name="run --out on a read-only file system"),
        _run_with("--policy", "{tmp}/nope.yaml", "nope.yaml"),
        _run_with("--policy", "{tmp}/policy.yaml", "per_minute",
                  policy_with(lambda t: t.replace("per_minute: 100", "per_minute: true", 1)), "run policy bool"),
        _run_with("--state", "{tmp}", "is a folder", name="run --state a folder"),
        _run_with("--state", "{tmp}/f/s.json", "is a file", write("f", "x"), "run --state under a file"),
    ]  # fmt: skip
    return cases


def run_file_cases() -> list[BadInput]:
    thresholds = ("--thresholds", "{tmp}/th.yaml")
    chaos = ("--chaos", "{tmp}/exp.json", "--duration", "30s", "--chaos-delay", "2s")
    return [
        _run(*thresholds, name="run --thresholds missing", expect="th.yaml"),
        _run(*thresholds, name="run --thresholds empty", expect="empty", setup=write("th.yaml", "")),
        _run(*thresholds, name="run --thresholds comments only", expect="empty", setup=write("th.yaml", "# x\n")),
        _run(*thresholds, name="run --thresholds not yaml", expect="th.yaml", setup=write("th.yaml", "slo: [\n")),
        _run(*thresholds, name="run --thresholds negative", expect="slo.proxy_p95_ms",
             setup=write("th.yaml", "slo: {proxy_p95_ms: -1}\n")),
        _run(*thresholds, name="run --thresholds unknown field", expect="th.yaml",
             setup=write("th.yaml", "slo: {p95: 10}\n")),
        _run(*thresholds, name="run --thresholds ratio > 1", expect="error_rate",
             setup=write("th.yaml", "slo: {error_rate: 2}\n")),
        _run(*thresholds, name="run --thresholds a list", expect="th.yaml", setup=write("th.yaml", "- 1\n")),
        _run("--thresholds", "{tmp}", name="run --thresholds a folder", expect="is a directory"),
        _run(*chaos, name="run --chaos missing", expect="exp.json"),
        _run(*chaos, name="run --chaos invalid JSON", expect="exp.json", setup=write("exp.json", "{not json")),
        _run(*chaos, name="run --chaos a JSON list", expect="exp.json", setup=write("exp.json", "[1, 2]")),
        _run(*chaos, name="run --chaos empty", expect="exp.json", setup=write("exp.json", "")),
        _run(*chaos, name="run --chaos without method", expect="exp.json", setup=experiment_with(_drop("method"))),
        _run(*chaos, name="run --chaos without title", expect="exp.json", setup=experiment_with(_drop("title"))),
        _run(*chaos, name="run --chaos count 'one'", expect="count",
             setup=experiment_with(lambda e: _set_count(e, "one"))),
        _run(*chaos, name="run --chaos count 1.5", expect="count",
             setup=experiment_with(lambda e: _set_count(e, 1.5))),
        _run(*chaos, name="run --chaos count true", expect="count",
             setup=experiment_with(lambda e: _set_count(e, True))),
        _run(*chaos, name="run --chaos unknown function", expect="exp.json",
             setup=experiment_with(lambda e: {**e, "method": [{"type": "action", "name": "x", "provider": {
                 "type": "python", "module": "quotaquake.chaos.actions", "func": "no_such_action"}}]})),
        _run(*chaos, name="run --chaos missing argument", expect="exp.json",
             setup=experiment_with(lambda e: {**e, "method": [{"type": "action", "name": "x", "provider": {
                 "type": "python", "module": "quotaquake.chaos.actions", "func": "kill_service"}}]})),
        _run("--chaos", "{tmp}/exp.json", "--duration", "3s", "--chaos-delay", "8s", name="run chaos after the load",
             expect="--chaos-delay", setup=experiment_with(lambda e: e)),
        _run("--chaos", "{tmp}/exp.yaml", "--duration", "30s", name="run --chaos broken YAML", expect="exp.yaml",
             setup=write("exp.yaml", "title: [\n")),
    ]  # fmt: skip


def run_locust_cases() -> list[BadInput]:
    owned = ["--run-time=1h", "-t", "--csv", "--html", "--processes", "--headless", "--qq-rate", "--qq-state",
             "--qq-out", "-f", "--worker", "--qq-orchestrated"]  # fmt: skip
    cases = [_run(arg, *(["x"] if not arg.startswith("--headless") and "=" not in arg else []),
                  name=f"run extra {arg}", expect=arg.split("=")[0]) for arg in owned]  # fmt: skip
    cases += [
        _run("--bogus-option", name="run extra unknown option", expect="--bogus-option"),
        _run("--qq-shape", "zigzag", name="run --qq-shape zigzag", expect="--qq-shape"),
        _run("--qq-tiers", "free=x", name="run --qq-tiers bad weight", expect="--qq-tiers"),
        _run("--qq-tiers", "free=0", name="run --qq-tiers all zero", expect="--qq-tiers"),
        _run("--qq-target", "moon", name="run --qq-target moon", expect="--qq-target"),
        _run("--qq-timeout", "-1", name="run --qq-timeout -1", expect="--qq-timeout"),
        _run("--qq-timeout", "soon", name="run --qq-timeout soon", expect="--qq-timeout"),
        _run("--qq-endpoints", "identify=1", name="run --qq-endpoints without /", expect="--qq-endpoints"),
        _run("--qq-anon-ips", "0", name="run --qq-anon-ips 0", expect="--qq-anon-ips"),
        _run("--qq-consumers", "-2", name="run --qq-consumers -2", expect="--qq-consumers"),
        _run("--qq-user-rate", "0", name="run --qq-user-rate 0", expect="--qq-user-rate"),
        _run("--qq-month-headroom", "-5", name="run --qq-month-headroom -5", expect="--qq-month-headroom"),
        _run("-u", "many", name="run -u many", expect="-u"),
        _run("NoSuchUser", name="run unknown User class", expect="NoSuchUser"),
        _run("--loglevel", "LOUD", name="run --loglevel LOUD", expect="LOUD"),
    ]
    return cases


def verify_cases() -> list[BadInput]:
    return [
        BadInput("verify a missing folder", ("verify", "{tmp}/nope"), "nope"),
        BadInput("verify a folder without run.json", ("verify", "{tmp}"), "run.json"),
        BadInput("verify a file", ("verify", "README.md"), "README.md"),
        BadInput("verify corrupt run.json", ("verify", "{tmp}/run"), "run.json",
                 run_then(_overwrite("run.json", b"{"))),
        BadInput("verify run.json of another kind", ("verify", "{tmp}/run"), "run.json",
                 run_then(_overwrite("run.json", b"[]"))),
        BadInput("verify corrupt engine.json", ("verify", "{tmp}/run"), "engine.json",
                 run_then(_overwrite("engine.json", b"{\"requests\": \"many\"}"))),
        BadInput("verify corrupt faults.json", ("verify", "{tmp}/run"), "faults.json",
                 run_then(_overwrite("faults.json", b"{oops"))),
        BadInput("verify corrupt prometheus.json", ("verify", "{tmp}/run"), "prometheus.json",
                 run_then(_overwrite("prometheus.json", b"[1]"))),
        BadInput("verify corrupt Parquet", ("verify", "{tmp}/run"), "parquet", run_then(_corrupt_history)),
        BadInput("verify truncated Parquet", ("verify", "{tmp}/run"), "parquet", run_then(_truncate_history)),
        BadInput("verify --thresholds missing", ("verify", "{tmp}/run", "--thresholds", "{tmp}/th.yaml"), "th.yaml",
                 synthetic_run),
        BadInput("verify --thresholds empty", ("verify", "{tmp}/run", "--thresholds", "{tmp}/th.yaml"), "empty",
                 both(synthetic_run, write("th.yaml", ""))),
        BadInput("verify --thresholds bad field", ("verify", "{tmp}/run", "--thresholds", "{tmp}/th.yaml"),
                 "slo.proxy_p95_ms", both(synthetic_run, write("th.yaml", "slo: {proxy_p95_ms: 0}\n"))),
        BadInput("verify --thresholds not yaml", ("verify", "{tmp}/run", "--thresholds", "{tmp}/th.yaml"), "th.yaml",
                 both(synthetic_run, write("th.yaml", "a: [\n"))),
        BadInput("verify without a folder", ("verify",), "run_dir"),
    ]  # fmt: skip


def bad_inputs() -> list[BadInput]:
    """Every bad input of the campaign (>= 120)."""
    return [*stack_up_cases(), *stack_other_cases(), *run_option_cases(), *run_file_cases(), *run_locust_cases(),
            *verify_cases()]  # fmt: skip


# -- running one -------------------------------------------------------------------------------------------


def expand(args: tuple[str, ...], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in args]


def quotaquake(args: list[str], tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUOTAQUAKE_STATE": str(tmp / STACK_FILE), "PYTHONPATH": f"{TARGET_SRC}:{REPO}"}
    return subprocess.run([*QUOTAQUAKE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def leftovers(tmp: Path, before: set[str]) -> list[str]:
    """What a refused command left: new files or folders in its folder, processes of its state file."""
    from quotaquake.stack import processes

    found = [f"created {p.name}" for p in tmp.iterdir() if p.name not in before]
    live = processes.stacks_of_state_file(tmp / STACK_FILE)
    found += [f"stack {stack_id} running ({len(pids)} processes)" for stack_id, pids in live.items()]
    return found


def check_bad_input(case: BadInput, tmp: Path) -> Outcome:
    """Run ``case`` in ``tmp`` and judge it: exit 2, one line naming ``case.expect``, no traceback, nothing left."""
    if case.setup is not None:
        case.setup(tmp)
    before = {p.name for p in tmp.iterdir()}
    result = quotaquake(expand(case.args, tmp), tmp)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    traceback = "Traceback" in result.stderr + result.stdout
    problems = []
    if result.returncode != 2:
        problems.append(f"exit {result.returncode}")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    if case.expect.lower() not in result.stderr.lower():
        problems.append(f"no {case.expect!r} in the message")
    if traceback:
        problems.append("traceback")
    problems += leftovers(tmp, before)
    return Outcome(case.name, not problems, "; ".join(problems), result.stderr.strip(), traceback)


def fresh_folder(root: Path, index: int) -> Path:
    folder = root / f"case-{index:03d}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder
