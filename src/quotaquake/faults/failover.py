"""Failover: the primary of a replicated Redis (topology ``sentinel``) dies or hangs, and the Sentinels
promote its replica. Needs ``quotaquake stack up --redis sentinel`` (``REQUIRES``).

Injected by ``quotaquake.chaos.actions.kill_redis_primary`` (SIGKILL: the node is gone until the rollback
restarts it as a replica of the new primary) or ``pause_redis_primary`` (SIGSTOP for ``hold_s`` > Sentinel's
``down-after``: the Sentinels promote the replica meanwhile, and on SIGCONT the old node is a *stale
primary* that accepts writes until the Sentinels demote it, about 10 s later). Undone by
``await_replicated_set`` (waits until exactly one primary remains, the Sentinels agree on it and every
other node replicates from it) or ``restore_all``. While the primary is unreachable the limiter degrades as
the policy declares (``base.storage_expectation``); after the promotion it must decide on the new primary.

What the injecting action measures, into its journal output and so into the fault window's ``details``:

* ``fault_at``: when the signal was sent (epoch s); ``promoted_at``: when the first Sentinel announced
  ``+switch-master`` (epoch s, ``None``: not within ``PROMOTION_DEADLINE_S``); ``promotion_s`` the difference;
  ``down_after_ms``/``failover_timeout_ms``: the Sentinels' settings it is judged against;
* replication: ``offset_samples`` [[t, master_repl_offset], ...] of the old primary over the last
  ``SAMPLE_S`` before the fault (t the moment the INFO was *sent*: every write acknowledged before it is
  counted in that offset); ``replicated_offset``: what the promoted replica had (its ``second_repl_offset``
  - 1); ``replicated_until``: the latest sample time whose offset the replica had, so every write
  acknowledged before it survived; writes acknowledged between it and ``fault_at`` may be lost (the
  over-admission bound, ``verify.checks.failover``). ``None`` when the replica had less than every sample:
  the loss is then not bounded by this record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import redis

from quotaquake.errors import StackError
from quotaquake.faults.base import Activity, Details, Fault, action
from quotaquake.faults.handles import HandleFactory, handle_of
from quotaquake.faults.targets import ChaosTargetError
from quotaquake.runfolder.models import FaultKind
from quotaquake.stack.registry import handle_for
from quotaquake.stack.state import StackState

REQUIRES = "sentinel"
SAMPLE_S = 0.3  # how long the primary's replication offset is sampled before the fault
SAMPLE_EVERY_S = 0.01
PROMOTION_DEADLINE_S = 20.0  # down-after + election + promotion take ~2.3 s here; a failed election retries at 6 s
POLL_S = 0.01


def failed_primary(activity: Activity) -> str | None:
    """The node the action hit (its output's ``primary``)."""
    output = activity.output
    return str(output["primary"]) if isinstance(output, Mapping) and output.get("primary") else None


def window_details(fault: Activity, undo: Activity | None) -> Details | None:
    """The injecting action's measurements, plus what the undoing one saw (``demoted_at``, ``healthy_after_s``)."""
    if not isinstance(fault.output, Mapping):
        return None
    details: Details = {str(k): v for k, v in fault.output.items()}
    if undo is not None and isinstance(undo.output, Mapping):
        for key in ("demoted_at", "healthy_after_s", "set_healthy_at", "stale_primary_seen"):
            if key in undo.output:
                details[key] = undo.output[key]
    return details


FAULT = Fault(
    kind=FaultKind.FAILOVER,
    injected_by=frozenset({action("kill_redis_primary"), action("pause_redis_primary")}),
    services=failed_primary,
    undoes_all=frozenset({action("restore_all"), action("await_replicated_set")}),
    details=window_details,
)


def require_replicated(state: StackState) -> None:
    """``ChaosTargetError`` naming the ``stack up`` option when the stack has no replicated Redis."""
    if state.redis != REQUIRES:
        raise ChaosTargetError(
            f"a failover needs a replicated Redis: the stack {state.stack_id} runs --redis {state.redis}; "
            f"start it with `quotaquake stack up --redis {REQUIRES}`"
        )


# -- measuring ----------------------------------------------------------------------------------------


class SwitchListener:
    """Subscriptions to ``+switch-master`` on every Sentinel, opened before the fault."""

    def __init__(self, state: StackState) -> None:
        from quotaquake.stack.local.sentinel import client

        self._pubsubs = []
        for url in state.require_endpoints().redis_sentinels:
            try:
                pubsub = client(url, timeout_s=1.0).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe("+switch-master")
                self._pubsubs.append(pubsub)
            except (redis.RedisError, OSError):
                continue
        if not self._pubsubs:
            raise StackError("sentinel", "no Sentinel accepted a +switch-master subscription")

    def wait(self, deadline_s: float) -> tuple[float, str] | None:
        """(epoch seconds it arrived, payload) of the first ``+switch-master``; ``None`` by the deadline."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            for pubsub in self._pubsubs:
                try:
                    message = pubsub.get_message(timeout=POLL_S)
                except (redis.RedisError, OSError):
                    continue
                if message and message.get("type") == "message":
                    return time.time(), str(message.get("data"))
        return None

    def close(self) -> None:
        for pubsub in self._pubsubs:
            try:
                pubsub.close()
            except (redis.RedisError, OSError):
                continue


def sample_offsets(url: str, span_s: float = SAMPLE_S) -> list[list[float]]:
    """[[t, master_repl_offset], ...] of a primary for ``span_s`` (t: epoch seconds the INFO was sent)."""
    from quotaquake.stack.local.sentinel import client

    samples: list[list[float]] = []
    end = time.monotonic() + span_s
    with client(url) as node:
        while time.monotonic() < end:
            sent = time.time()
            info = node.info("replication")
            samples.append([round(sent, 6), float(info["master_repl_offset"])])
            time.sleep(SAMPLE_EVERY_S)
    return samples


def replicated_offset(url: str) -> int | None:
    """The replication offset a promoted replica had when it became primary (``second_repl_offset`` - 1)."""
    from quotaquake.stack.local.sentinel import replication

    try:
        info = replication(url, timeout_s=1.0)
    except (redis.RedisError, OSError):
        return None
    second = info.get("second_repl_offset")
    return int(str(second)) - 1 if second is not None and int(str(second)) > 0 else None


def replicated_until(samples: list[list[float]], offset: int | None) -> float | None:
    """The latest sample time whose offset the replica had (everything acknowledged before it survived)."""
    if offset is None:
        return None
    kept = [t for t, value in samples if value <= offset]
    return max(kept) if kept else None


def promoted_node(state: StackState, message: str) -> str | None:
    """The data node a ``+switch-master`` payload (``<name> <old-ip> <old-port> <new-ip> <new-port>``) names."""
    from quotaquake.stack.local.sentinel import node_at

    parts = message.split()
    if len(parts) != 5 or not parts[4].isdigit():
        return None
    return node_at(state, parts[3], int(parts[4]))


def inject(state: StackState, hit: Callable[[str], None], hold: Callable[[], None] | None = None) -> dict[str, object]:
    """Hit the primary (``hit(service)``), wait for the promotion, measure (module docstring).

    ``hold`` runs after the promotion (the pause variant keeps the node stopped, then resumes it)."""
    from quotaquake.stack.local import sentinel

    require_replicated(state)
    primary = sentinel.primary_node(state)
    config = sentinel.sentinel_config(state)
    urls = sentinel.data_nodes(state)
    listener = SwitchListener(state)
    try:
        samples = sample_offsets(urls[primary])
        fault_at = time.time()
        hit(primary)
        switch = listener.wait(PROMOTION_DEADLINE_S)
    finally:
        listener.close()
    promoted = promoted_node(state, switch[1]) if switch else None
    offset = replicated_offset(urls[promoted]) if promoted and promoted != primary else None
    output: dict[str, object] = {
        "primary": primary,
        "promoted": promoted,
        "fault_at": round(fault_at, 6),
        "promoted_at": round(switch[0], 6) if switch else None,
        "promotion_s": round(switch[0] - fault_at, 3) if switch else None,
        "switch_message": switch[1] if switch else None,
        "down_after_ms": config["down-after-milliseconds"],
        "failover_timeout_ms": config["failover-timeout"],
        "offset_samples": samples,
        "primary_offset": int(samples[-1][1]) if samples else None,
        "replicated_offset": offset,
        "replicated_until": replicated_until(samples, offset),
    }
    if promoted:
        sentinel.refresh_primary_endpoint(Path(state.state_file))
    if hold is not None:
        hold()
    return output


def kill_primary(state: StackState, handles: HandleFactory = handle_for) -> dict[str, object]:
    """SIGKILL the primary and measure its replacement (module docstring)."""
    return inject(state, lambda service: handle_of(state, service, handles).kill())


def pause_primary(state: StackState, hold_s: float, handles: HandleFactory = handle_for) -> dict[str, object]:
    """SIGSTOP the primary for ``hold_s`` seconds (past the Sentinels' down-after: they promote its replica),
    then SIGCONT it: it comes back a stale primary until they demote it. Returns the measurements plus
    ``resumed_at``."""
    stopped: list[tuple[str, float]] = []
    resumed: list[float] = []

    def hit(service: str) -> None:
        stopped.append((service, time.time()))
        handle_of(state, service, handles).stop()

    def hold() -> None:
        if stopped:
            service, at = stopped[0]
            time.sleep(max(0.0, hold_s - (time.time() - at)))
            handle_of(state, service, handles).resume()
            resumed.append(time.time())

    output = inject(state, hit, hold)
    output["hold_s"] = hold_s
    output["resumed_at"] = round(resumed[0], 6) if resumed else None
    return output


def await_set(state: StackState, timeout_s: float) -> dict[str, object]:
    """Wait until the replicated set is healthy (``sentinel.set_problems``); ``StackError`` naming what is
    still wrong after ``timeout_s``. Returns when it became healthy, and ``demoted_at``: when no node but
    the Sentinels' primary claimed to be primary any more, if one did while waiting (a stale primary)."""
    from quotaquake.stack.local import sentinel

    require_replicated(state)
    started = time.time()
    stale_seen = False
    demoted_at: float | None = None
    problems = ["not checked"]
    while time.time() - started < timeout_s:
        stale = _stale_primaries(state)
        stale_seen = stale_seen or bool(stale)
        if stale_seen and not stale and demoted_at is None:
            demoted_at = time.time()
        problems = sentinel.set_problems(state)
        if not problems:
            sentinel.refresh_primary_endpoint(Path(state.state_file))
            now = time.time()
            return {
                "set_healthy_at": round(now, 6),
                "healthy_after_s": round(now - started, 3),
                "stale_primary_seen": stale_seen,
                "demoted_at": None if demoted_at is None else round(demoted_at, 6),
                "primary": sentinel.primary_node(state),
            }
        time.sleep(0.05)
    raise StackError("redis", f"replicated set not healthy {timeout_s:.0f} s later: {'; '.join(problems)}")


def _stale_primaries(state: StackState) -> list[str]:
    """Data nodes that say they are primary although the Sentinels name another."""
    from quotaquake.stack.local.sentinel import data_nodes, primary_node, replication

    try:
        primary = primary_node(state)
    except StackError:
        return []
    stale = []
    for name, url in data_nodes(state).items():
        if name == primary:
            continue
        try:
            if replication(url, timeout_s=0.2).get("role") == "master":
                stale.append(name)
        except (redis.RedisError, OSError):
            continue
    return stale
