"""Reliability campaign: replay what a new user did to the harness, and count what went wrong.

    .venv/bin/python benchmarks/reliability.py            # everything (~15 min on 2 cores)
    .venv/bin/python benchmarks/reliability.py --only bad  # one part: bad, kill, concurrent, deletions, keys

Parts (cases in ``tests/support/reliability.py`` and ``tests/support/campaign.py``):

* bad inputs (>= 120): exit 2, one line naming the option or file, no traceback, nothing left;
* kills and interrupts (>= 24): ``stack up``, ``quotaquake run`` (its own stack or a running one, with and
  without an experiment), ``chaos run`` and ``stack down`` stopped by SIGKILL, SIGINT or SIGTERM at each
  stage; after the user's recovery (``stack down``, ``stack restore``) no process, port or folder is left;
* concurrent commands on one state file: refused with one line while the first runs;
* deletions: state files written by another provider, hand-edited, copied, stale or corrupt never make
  quotaquake remove a folder it did not create;
* keys: another local user cannot read them (state file, Postgres, Redis, command lines, environments);
  a run folder holds no raw key;
* ports: fresh ``stack up`` after ``stack up`` (each followed by ``stack down``) never fails on a port.

Exit code 0 when every count is as it must be, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import campaign
from tests.support.reliability import bad_inputs, check_bad_input, fresh_folder

PARTS = ("bad", "kill", "concurrent", "deletions", "keys", "ports")
FRESH_UPS = 20


def bad_part(root: Path) -> bool:
    cases = bad_inputs()
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(lambda ic: check_bad_input(ic[1], fresh_folder(root, ic[0])), enumerate(cases)))
    failed = [o for o in outcomes if not o.ok]
    tracebacks = sum(o.traceback for o in outcomes)
    for outcome in failed:
        print(f"  FAIL {outcome.case}: {outcome.problem} | {outcome.stderr[-200:]}")
    print(f"bad inputs: {len(cases) - len(failed)} of {len(cases)} exit 2 with one clear line and leave nothing; "
          f"{tracebacks} tracebacks")  # fmt: skip
    return not failed and len(cases) >= 120


def kill_part(root: Path) -> bool:
    cases = campaign.kill_cases()
    dirty = 0
    for index, case in enumerate(cases):
        started = time.monotonic()
        problems = campaign.run_kill_case(case, fresh_folder(root, 500 + index))
        dirty += bool(problems)
        print(f"  {'ok  ' if not problems else 'FAIL'} {case.name} ({campaign.since(started)})"
              + (f": {'; '.join(problems)}" if problems else ""))  # fmt: skip
    print(f"kills and interrupts: {dirty} of {len(cases)} cases leave a process, port or folder, or fail to recover")
    return dirty == 0 and len(cases) >= 24


def concurrent_part(root: Path) -> bool:
    problems = campaign.concurrent_commands(fresh_folder(root, 800))
    for problem in problems:
        print(f"  FAIL {problem}")
    print(f"concurrent commands on one state file: {'refused cleanly' if not problems else 'NOT refused cleanly'}")
    return not problems


def deletions_part(root: Path) -> bool:
    removed: list[Path] = []
    for index, (name, case) in enumerate(campaign.deletion_cases().items()):
        gone = case(fresh_folder(root, 900 + index))
        removed += gone
        print(f"  {'ok  ' if not gone else 'FAIL'} {name}" + (f": removed {gone}" if gone else ""))
    print(f"deletions: {len(removed)} folders removed that quotaquake did not create")
    return not removed


def keys_part(root: Path) -> bool:
    exposed = campaign.key_exposure(fresh_folder(root, 950))
    unmasked = campaign.reports_mask_keys(fresh_folder(root, 951))
    for problem in exposed + unmasked:
        print(f"  FAIL {problem}")
    print(
        f"keys: {len(exposed)} ways another local user reads a raw key; {len(unmasked)} run-folder files with raw keys"
    )
    return not exposed and not unmasked


def ports_part(root: Path) -> bool:
    failures = []
    for index in range(FRESH_UPS):
        folder = fresh_folder(root, 1000 + index)
        up = campaign.command(["stack", "up", "--replicas", "3"], folder)
        if up.returncode != 0:
            failures.append(up.stderr.strip()[-200:])
        campaign.command(["stack", "down"], folder)
    for failure in failures:
        print(f"  FAIL {failure}")
    print(f"ports: {len(failures)} of {FRESH_UPS} fresh stack ups failed")
    return not failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts")
    args = parser.parse_args()
    chosen = args.only or list(PARTS)
    parts: dict[str, Callable[[Path], bool]] = {"bad": bad_part, "kill": kill_part, "concurrent": concurrent_part,
                                                "deletions": deletions_part, "keys": keys_part,
                                                "ports": ports_part}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="qq-reliability-") as folder:
        results = {name: parts[name](Path(folder)) for name in chosen}
    print("campaign: " + ", ".join(f"{name} {'ok' if ok else 'FAILED'}" for name, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
