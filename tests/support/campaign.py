"""The reliability campaign's process cases: kills and interrupts at each stage, concurrent commands, state
files that must not cause deletions, and who can read the keys. Shared by ``benchmarks/reliability.py``
and ``tests/integration/test_reliability.py``.

Each case runs in a fresh folder with its own state file (``<folder>/stack.json``), drives real
``quotaquake`` commands as a user would, and returns the problems it found (empty: the case holds).
"Nothing left" means: no live process carries the folder's state file or one of its stacks' ids; none of
the ports the stack had is still listening; no folder the stack created (work folder, Postgres data) is
still there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from quotaquake.stack import processes
from quotaquake.stack.state import StackState, read_state
from tests.support.reliability import QUOTAQUAKE, REPO, STACK_FILE, TARGET_SRC

STAGE_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 150.0
FAULT_HOLD_S = "30"  # long enough to be caught mid-fault
SHORT_RUN = ["run", "--scenario", "scenarios/tiered.py", "--rate", "40", "--duration", "40s", "--replicas", "1"]
CHAOS = ["--chaos", "chaos/redis-kill.json", "--chaos-delay", "2s"]


def env_for(tmp: Path) -> dict[str, str]:
    return {**os.environ, "QUOTAQUAKE_STATE": str(tmp / STACK_FILE), "QUOTAQUAKE_FAULT_HOLD_S": FAULT_HOLD_S,
            "PYTHONPATH": f"{TARGET_SRC}:{REPO}"}  # fmt: skip


def start(args: list[str], tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*QUOTAQUAKE, *args], cwd=REPO, env=env_for(tmp), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def command(args: list[str], tmp: Path, timeout: float = EXIT_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QUOTAQUAKE, *args], cwd=REPO, env=env_for(tmp), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@dataclass
class Witness:
    """What a case saw of its stack while it ran (the state file may be gone at the end)."""

    tmp: Path
    stack_ids: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    folders: set[Path] = field(default_factory=set)

    def look(self) -> StackState | None:
        try:
            state = read_state(self.tmp / STACK_FILE)
        except Exception:  # absent, or being replaced: look again later
            return None
        self.stack_ids.add(state.stack_id)
        self.folders.add(Path(state.work_dir))
        self.folders.update(Path(r.data_dir) for r in state.services.values() if r.data_dir)
        for record in state.services.values():
            for url in (record.url, record.ready_url):
                port = urlsplit(url).port if url else None
                if port:
                    self.ports.add(port)
        return state

    def wait_for(self, condition: Callable[[StackState], bool], timeout_s: float = STAGE_TIMEOUT_S) -> bool:
        def seen() -> bool:
            state = self.look()
            return state is not None and condition(state)

        return processes.poll_until(seen, timeout_s)

    def left_behind(self) -> list[str]:
        """Processes, listening ports and folders of the stack that are still there."""
        found = []
        for stack_id, pids in processes.stacks_of_state_file(self.tmp / STACK_FILE).items():
            found.append(f"stack {stack_id}: {len(pids)} marked processes")
        for stack_id in self.stack_ids:
            live = [p for p in processes.pids_with_stack_id(stack_id) if processes.proc_state(p) not in (None, "Z")]
            if live:
                found.append(f"stack {stack_id}: processes {live[:5]}")
        found += [f"port {port} listening" for port in sorted(self.ports) if listening(port)]
        found += [f"folder {folder} left" for folder in sorted(self.folders) if folder.exists()]
        return found


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def marked_programs(stack_id: str) -> list[str]:
    """Command lines of the processes carrying ``stack_id``."""
    found = []
    for pid in processes.pids_with_stack_id(stack_id):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def has_program(stack: StackState, word: str) -> bool:
    return any(word in line for line in marked_programs(stack.stack_id))


# -- stages ------------------------------------------------------------------------------------------------

Stage = Callable[[StackState], bool]


def services_at_least(count: int) -> Stage:
    return lambda state: len(state.services) >= count and not state.ready


def load_flowing(state: StackState) -> bool:
    return state.ready and has_program(state, "locust")


def redis_killed(state: StackState) -> bool:
    redis = state.services.get("redis")
    return state.ready and redis is not None and not processes.is_alive(redis)


def redis_stopped(state: StackState) -> bool:
    redis = state.services.get("redis")
    return state.ready and redis is not None and redis.pid is not None and processes.proc_state(redis.pid) == "T"


def redis_down_under_chaos(state: StackState) -> bool:
    redis = state.services.get("redis")
    return state.ready and has_program(state, "chaos") and redis is not None and not processes.is_alive(redis)


def redis_stopped_under_chaos(state: StackState) -> bool:
    redis = state.services.get("redis")
    stopped = redis is not None and redis.pid is not None and processes.proc_state(redis.pid) == "T"
    return state.ready and has_program(state, "chaos") and stopped


# -- kill and interrupt cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillCase:
    """Start ``args`` (after ``stack up`` if ``existing_stack``), wait for ``stage``, send ``sig``; then (for
    SIGKILL) run ``recover`` commands as a user would; finally nothing may be left."""

    name: str
    args: tuple[str, ...]
    stage: Stage
    sig: signal.Signals
    existing_stack: bool = False
    recover: tuple[tuple[str, ...], ...] = (("stack", "down"),)
    chaos_command: bool = False  # args is a `chaos run` command line, not quotaquake's


def kill_cases() -> list[KillCase]:
    cases = []
    for sig in (signal.SIGKILL, signal.SIGINT, signal.SIGTERM):
        name = sig.name
        for count in (2, 5, 7):
            cases.append(KillCase(f"stack up, {name} after {count} services", ("stack", "up", "--replicas", "1"),
                                  services_at_least(count), sig))  # fmt: skip
        cases += [
            KillCase(f"run, {name} while its stack starts", tuple(SHORT_RUN), services_at_least(4), sig),
            KillCase(f"run, {name} while load flows", tuple(SHORT_RUN), load_flowing, sig),
            KillCase(f"run, {name} during a Redis kill", (*SHORT_RUN, *CHAOS), redis_down_under_chaos, sig),
        ]
    restore = (("stack", "restore"), ("stack", "down"))
    cases += [
        KillCase("run on a running stack, SIGKILL while load flows", tuple(SHORT_RUN), load_flowing, signal.SIGKILL,
                 existing_stack=True),
        KillCase("run on a running stack, SIGKILL during a Redis kill, then restore", (*SHORT_RUN, *CHAOS),
                 redis_down_under_chaos, signal.SIGKILL, existing_stack=True, recover=restore),
        KillCase("run on a running stack, SIGKILL during a Redis pause, then restore",
                 (*SHORT_RUN, "--chaos", "chaos/redis-pause.json", "--chaos-delay", "2s"), redis_stopped_under_chaos,
                 signal.SIGKILL, existing_stack=True, recover=restore),
        KillCase("chaos run, SIGKILL during a Redis kill, then restore", ("run", "chaos/redis-kill.json"),
                 redis_killed, signal.SIGKILL, existing_stack=True, recover=restore, chaos_command=True),
        KillCase("chaos run, SIGKILL during a Redis pause, then restore", ("run", "chaos/redis-pause.json"),
                 redis_stopped, signal.SIGKILL, existing_stack=True, recover=restore, chaos_command=True),
        KillCase("chaos run, SIGINT during a Redis kill (its rollback restores)", ("run", "chaos/redis-kill.json"),
                 redis_killed, signal.SIGINT, existing_stack=True, chaos_command=True),
        KillCase("stack down, SIGKILL while it stops the stack", ("stack", "down"),
                 lambda state: not all(processes.is_alive(r) for r in state.services.values()), signal.SIGKILL,
                 existing_stack=True),
    ]  # fmt: skip
    return cases


def _chaos_process(args: tuple[str, ...], tmp: Path) -> subprocess.Popen[str]:
    chaos = str(Path(QUOTAQUAKE[0]).parent / "chaos")
    command_line = [chaos, "--no-version-check", "--log-file", str(tmp / "chaos.log"), args[0],
                    "--journal-path", str(tmp / "journal.json"), *args[1:]]  # fmt: skip
    return subprocess.Popen(command_line, cwd=REPO,
                            env=env_for(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def run_kill_case(case: KillCase, tmp: Path) -> list[str]:
    """Play ``case`` in ``tmp``; the problems found (empty: it holds)."""
    witness = Witness(tmp)
    problems: list[str] = []
    if case.existing_stack:
        up = command(["stack", "up", "--replicas", "1"], tmp)
        if up.returncode != 0:
            return [f"stack up failed: {up.stderr.strip()[-300:]}"]
        witness.look()
    args = list(case.args)
    if "--out" not in args and not case.chaos_command and args[0] == "run":
        args += ["--out", str(tmp / "out")]
    process = _chaos_process(case.args, tmp) if case.chaos_command else start(args, tmp)
    try:
        if not witness.wait_for(case.stage):
            problems.append("the stage was never reached")
        witness.look()
        process.send_signal(case.sig)
        _, stderr = process.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        problems.append(f"no exit {EXIT_TIMEOUT_S:.0f} s after {case.sig.name}")
    if "Traceback" in (stderr or "") and case.sig is not signal.SIGKILL and not case.chaos_command:
        lines = stderr.strip().splitlines()
        problems.append(
            "traceback: " + " | ".join([*(line for line in lines if "Exception ignored" in line), *lines[-3:]])
        )
    problems += _recover(case, tmp, witness)
    problems += witness.left_behind()
    return problems


def _recover(case: KillCase, tmp: Path, witness: Witness) -> list[str]:
    """After an interrupt the command must have cleaned up by itself (a stack it did not start stays up
    and is then taken down); after SIGKILL the user's recovery commands run, and each must succeed."""
    if case.sig is not signal.SIGKILL:
        if case.existing_stack:
            return _checked(["stack", "down"], tmp)
        problems = [f"after {case.sig.name}: {found}" for found in witness.left_behind()]
        if (tmp / STACK_FILE).exists():
            problems.append(f"after {case.sig.name}: the state file is still there")
            command(["stack", "down"], tmp)  # clean up for the next case
        return problems
    problems = []
    for step in case.recover:
        problems += _checked(list(step), tmp)
        if step == ("stack", "restore"):
            problems += _healthy_and_unfaulted(tmp)
        witness.look()
    return problems


def _checked(args: list[str], tmp: Path) -> list[str]:
    result = command(args, tmp)
    if result.returncode != 0 or "Traceback" in result.stderr:
        return [f"`quotaquake {' '.join(args)}` exit {result.returncode}: {result.stderr.strip()[-300:]}"]
    return []


def _healthy_and_unfaulted(tmp: Path) -> list[str]:
    status = command(["stack", "status"], tmp)
    problems = [] if status.returncode == 0 else [f"not healthy after restore: {status.stdout[-400:]}"]
    state = read_state(tmp / STACK_FILE)
    if has_program(state, "chaos"):
        problems.append("the experiment still runs after restore")
    return problems


# -- concurrency -------------------------------------------------------------------------------------------


def concurrent_commands(tmp: Path) -> list[str]:
    """While ``stack up`` starts, a second ``stack up``, a ``run`` and ``stack down`` are refused; while a run
    runs, a second run, ``stack down`` and ``stack restore`` are refused; every refusal is one line naming
    the holder; the first commands finish. The starting ``stack up`` is frozen (SIGSTOP) while the others
    try, so "while it starts" does not depend on timing."""
    witness = Witness(tmp)
    problems: list[str] = []
    first = start(["stack", "up", "--replicas", "1"], tmp)
    witness.wait_for(services_at_least(2))
    first.send_signal(signal.SIGSTOP)
    try:
        problems += _refused(["stack", "up", "--replicas", "1"], tmp, "stack up")
        problems += _refused([*SHORT_RUN, "--out", str(tmp / "o1")], tmp, "stack up")
        problems += _refused(["stack", "down"], tmp, "stack up")
    finally:
        first.send_signal(signal.SIGCONT)
    if first.wait(timeout=EXIT_TIMEOUT_S) != 0:
        problems.append("the first stack up failed")
    run = start([*SHORT_RUN, "--duration", "15s", "--out", str(tmp / "o2")], tmp)
    witness.wait_for(load_flowing)
    problems += _refused([*SHORT_RUN, "--out", str(tmp / "o3")], tmp, "quotaquake run")
    problems += _refused(["stack", "down"], tmp, "quotaquake run")
    problems += _refused(["stack", "restore"], tmp, "quotaquake run")
    code = run.wait(timeout=EXIT_TIMEOUT_S)
    if code not in (0, 1, 3):
        problems.append(f"the first run ended with exit {code}: {run.stderr.read()[-300:] if run.stderr else ''}")
    problems += _checked(["stack", "down"], tmp)
    return problems + witness.left_behind()


def _refused(args: list[str], tmp: Path, holder: str) -> list[str]:
    result = command(args, tmp)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode == 2 and len(lines) == 1 and "in use" in lines[0] and holder in lines[0]:
        return []
    return [f"`{' '.join(args[:2])}` while `{holder}` holds the stack: exit {result.returncode}, {lines[-3:]}"]


# -- deletions ---------------------------------------------------------------------------------------------

SENTINEL = "precious.txt"


def _precious(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SENTINEL).write_text("not quotaquake's")
    return folder


def deletion_cases() -> dict[str, Callable[[Path], list[Path]]]:
    """Name -> a case that returns the folders (or files) it made, that quotaquake did not create, and that
    are gone or emptied afterwards (empty: nothing foreign was removed)."""
    return {
        "stack up and down over an external stack's state file in a checkout": _external_then_local,
        "stack down of a hand-edited state naming foreign folders": _hand_edited_down,
        "stack down of a copied state file of a live stack": _copied_state_down,
        "stack up over a stale state naming foreign folders": _stale_foreign_up,
        "stack down of a corrupt state file": _corrupt_state_down,
        "stack down of a state naming the repository": _state_naming_repo,
    }


def _external_then_local(tmp: Path) -> list[Path]:
    from quotaquake.stack.external import ExternalProvider
    from quotaquake.stack.state import write_state

    checkout = _precious(tmp / "checkout")
    (checkout / "consumers.csv").write_text("id,tier,key\nc1,free,k1\n")
    (checkout / "target.yaml").write_text("gateway: http://127.0.0.1:9\nconsumers: consumers.csv\n")
    state_file = checkout / "x.json"
    external = ExternalProvider(checkout / "target.yaml", state_path=state_file).plan()  # what `stack up` writes
    external.ready = True
    write_state(external, state_file)
    command(["stack", "up", "--replicas", "1", "--state", str(state_file)], tmp)
    command(["stack", "down", "--state", str(state_file)], tmp)
    command(["stack", "up", "--replicas", "1", "--state", str(state_file)], tmp)  # now a local stack there
    command(["stack", "down", "--state", str(state_file)], tmp)
    return removed_foreign([checkout])


def _hand_edited_down(tmp: Path) -> list[Path]:
    work, data = _precious(tmp / "work"), _precious(tmp / "data")
    state = {"provider": "local", "stack_id": "cafe0001", "work_dir": str(work), "state_file": str(tmp / STACK_FILE),
             "ready": True, "services": {"postgres": {"name": "postgres", "kind": "postgres", "pid": 1,
                                                      "start_time": 0, "data_dir": str(data)}}}  # fmt: skip
    (tmp / STACK_FILE).write_text(json.dumps(state))
    command(["stack", "down"], tmp)
    return removed_foreign([work, data])


def _copied_state_down(tmp: Path) -> list[Path]:
    """The copy must not stop or delete the live stack (its folders are the live stack's, not the copy's)."""
    command(["stack", "up", "--replicas", "1"], tmp)
    state = read_state(tmp / STACK_FILE)
    copy = tmp / "copy.json"
    copy.write_text((tmp / STACK_FILE).read_text())
    command(["stack", "down", "--state", str(copy)], tmp)
    live = [Path(state.work_dir), *(Path(r.data_dir) for r in state.services.values() if r.data_dir)]
    gone = [f for f in live if not f.is_dir()]
    if not all(processes.is_alive(r) for r in state.services.values()):
        gone.append(tmp / "(the live stack's processes)")
    command(["stack", "down"], tmp)
    return gone


def _stale_foreign_up(tmp: Path) -> list[Path]:
    work = _precious(tmp / "work")
    state = {"provider": "local", "stack_id": "cafe0002", "work_dir": str(work), "state_file": str(tmp / STACK_FILE)}
    (tmp / STACK_FILE).write_text(json.dumps(state))
    command(["stack", "up", "--replicas", "1"], tmp)
    command(["stack", "down"], tmp)
    return removed_foreign([work])


def _corrupt_state_down(tmp: Path) -> list[Path]:
    folder = _precious(tmp / "keep")
    (tmp / STACK_FILE).write_text("{corrupt")
    command(["stack", "down"], tmp)
    gone = removed_foreign([folder])
    return gone if (tmp / STACK_FILE).exists() else [*gone, tmp / STACK_FILE]


def _state_naming_repo(tmp: Path) -> list[Path]:
    """A state naming a checkout (a stand-in with a .git folder) as work and data folder."""
    checkout = _precious(tmp / "checkout")
    _precious(checkout / ".git")
    state = {"provider": "local", "stack_id": "cafe0003", "work_dir": str(checkout),
             "state_file": str(tmp / STACK_FILE),
             "services": {"redis": {"name": "redis", "kind": "redis", "data_dir": str(checkout / ".git")}}}  # fmt: skip
    (tmp / STACK_FILE).write_text(json.dumps(state))
    command(["stack", "down"], tmp)
    return removed_foreign([checkout, checkout / ".git"])


def removed_foreign(kept: list[Path]) -> list[Path]:
    """Which of the folders quotaquake did not create are gone (or lost their contents)."""
    return [f for f in kept if not (f / SENTINEL).is_file()]


# -- who can read the keys ---------------------------------------------------------------------------------


def as_nobody(argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv], input=stdin,
                          capture_output=True, text=True, timeout=30, cwd="/")  # fmt: skip


def key_exposure(tmp: Path) -> list[str]:
    """With a stack up, another local user (nobody) tries to read keys: the state file, Postgres without
    the password, Redis without the password, the limiters' command lines and environment.

    The stack runs in a folder every user can traverse (under /tmp, mode 0755), so that only the state
    file's own mode protects it (``tmp`` itself may sit below a folder only root can enter)."""
    del tmp
    folder = Path(tempfile.mkdtemp(prefix="qq-keys-", dir="/tmp"))
    os.chmod(folder, 0o755)
    try:
        return _exposure_in(folder)
    finally:
        command(["stack", "down"], folder)
        shutil.rmtree(folder, ignore_errors=True)


def _exposure_in(folder: Path) -> list[str]:
    if command(["stack", "up", "--replicas", "1"], folder).returncode != 0:
        return ["stack up failed"]
    state = read_state(folder / STACK_FILE)
    endpoints = state.require_endpoints()
    problems = []
    if as_nobody(["ls", str(folder)]).returncode != 0:
        problems.append("the check is vacuous: another user cannot even list the folder")
    if as_nobody(["cat", str(folder / STACK_FILE)]).returncode == 0:
        problems.append("state file readable by another user")
    pg, redis = urlsplit(endpoints.postgres or ""), urlsplit(endpoints.redis or "")
    query = as_nobody(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "quotaquake", "-w", "-d", "postgres",
                       "-c", "SELECT key FROM api_keys"])  # fmt: skip
    if query.returncode == 0 or "password" not in query.stderr:
        problems.append(f"Postgres answered another user without a password: {query.stderr[:100]}")
    ping = as_nobody(["redis-cli", "-h", "127.0.0.1", "-p", str(redis.port), "KEYS", "*"])
    if "NOAUTH" not in ping.stdout + ping.stderr:
        problems.append(f"Redis answered another user without a password: {ping.stdout[:100]}")
    secrets = [pg.password or "", redis.password or "", *(c.key for c in state.consumers)]
    for record in state.services.values():
        if record.pid is None:
            continue
        argv = Path(f"/proc/{record.pid}/cmdline").read_text(errors="replace")
        if any(s and s in argv for s in secrets):
            problems.append(f"{record.name}: a secret on its command line")
        if as_nobody(["cat", f"/proc/{record.pid}/environ"]).returncode == 0:
            problems.append(f"{record.name}: environment readable by another user")
    return problems + _checked(["stack", "down"], folder)


def keys_in_reports(run_dir: Path, state: StackState) -> list[str]:
    """Raw API keys found in any file of a run folder except the history (where keys are masked too)."""
    found = []
    keys = [c.key for c in state.consumers]
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = [k for k in keys if k.encode() in data]
        if hits:
            found.append(f"{path.relative_to(run_dir)}: {len(hits)} raw keys")
    return found


def reports_mask_keys(tmp: Path) -> list[str]:
    """A short run on its own stack: no raw key in the run folder."""
    command(["stack", "up", "--replicas", "1"], tmp)
    state = read_state(tmp / STACK_FILE)
    result = command([*SHORT_RUN, "--duration", "8s", "--out", str(tmp / "out")], tmp)
    problems = [] if result.returncode in (0, 1, 3) else [f"run exit {result.returncode}: {result.stderr[-300:]}"]
    problems += keys_in_reports(tmp / "out", state)
    return problems + _checked(["stack", "down"], tmp)


def since(started: float) -> str:
    return f"{time.monotonic() - started:.0f} s"
