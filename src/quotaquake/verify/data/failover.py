"""Failover windows as verification reads them: what the fault action measured (``FailoverRecord``), and
the *bridge* that lets the token-bucket model carry a consumer's state across a failover instead of
starting again from an unknown state after it.

A failover loses only the writes the promoted replica had not received. The action sampled the old
primary's replication offset just before the fault and read what the replica had when it was promoted,
so every write acknowledged before ``replicated_until`` survived. The bridge hands the model that bound:

* ``lost``: shared admissions (decided on Redis: not degraded) whose decision may fall between
  ``replicated_until`` and the fault: their deduction may be gone, so they are read as indeterminate (the
  model may refund them); their cost is the bound on what the failover can over-admit;
* ``silent``: degraded decisions sent between the fault and the promotion: the old primary was dead or
  stopped and the replica read-only, so they spent nothing on the node that survived (cost 0); degraded
  decisions after the promotion stay indeterminate (a call that timed out may still have run);
* the failover window no longer splits the consumer into units (``kept`` are the windows that still do:
  every other fault, and failovers whose loss is not bounded by their record).

A Redis latency fault (kind ``latency``) loses nothing either: the store stays one node with all its
writes, only slower, so it is bridged too. Every degraded decision in it stays indeterminate: a call the
limiter gave up on still reaches Redis after the delay, and a timeout fails every call waiting on that
connection, also ones that waited less than the timeout (so a quick degraded answer does not prove that
no call was made).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from quotaquake.runfolder.models import FaultKind, FaultWindow
from quotaquake.verify.data.outcomes import ADMITTED, INDETERMINATE
from quotaquake.verify.data.rundata import RunData, fault_bounds_ns

NS = 1_000_000_000
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class FailoverRecord:
    """What the fault action measured (``FaultWindow.details``), times in epoch seconds."""

    primary: str | None
    promoted: str | None
    fault_at: float
    promoted_at: float | None
    down_after_ms: float | None
    failover_timeout_ms: float | None
    replicated_until: float | None
    primary_offset: float | None
    replicated_offset: float | None
    resumed_at: float | None = None
    demoted_at: float | None = None

    @classmethod
    def of(cls, window: FaultWindow) -> FailoverRecord | None:
        details = window.details or {}
        if not isinstance(details.get("fault_at"), int | float):
            return None

        def number(key: str) -> float | None:
            value = details.get(key)
            return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

        def text(key: str) -> str | None:
            value = details.get(key)
            return str(value) if value is not None else None

        fault_at = number("fault_at")
        assert fault_at is not None
        return cls(
            primary=text("primary"),
            promoted=text("promoted"),
            fault_at=fault_at,
            promoted_at=number("promoted_at"),
            down_after_ms=number("down_after_ms"),
            failover_timeout_ms=number("failover_timeout_ms"),
            replicated_until=number("replicated_until"),
            primary_offset=number("primary_offset"),
            replicated_offset=number("replicated_offset"),
            resumed_at=number("resumed_at"),
            demoted_at=number("demoted_at"),
        )

    @property
    def promotion_s(self) -> float | None:
        return None if self.promoted_at is None else self.promoted_at - self.fault_at

    @property
    def sentinel_timeout_s(self) -> float | None:
        """down-after + failover-timeout: how long the Sentinels may take (s), when recorded."""
        if self.down_after_ms is None or self.failover_timeout_ms is None:
            return None
        return (self.down_after_ms + self.failover_timeout_ms) / 1e3


def failover_records(run: RunData) -> list[tuple[FaultWindow, FailoverRecord | None]]:
    """Every failover window of the run with what its action recorded (``None``: nothing)."""
    return [(w, FailoverRecord.of(w)) for w in run.faults if w.kind is FaultKind.FAILOVER]


@dataclass(frozen=True)
class Bridge:
    """Failover windows the quota model crosses with the state carried (module docstring)."""

    bridged: list[tuple[FaultWindow, FailoverRecord]] = field(default_factory=list)
    kept: list[FaultWindow] = field(default_factory=list)
    slow: list[FaultWindow] = field(default_factory=list)  # latency windows bridged
    lost: Bools | None = None
    silent: Bools | None = None

    def classes(self, classes: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
        """Outcome classes with the possibly lost admissions indeterminate."""
        if self.lost is None or not self.lost.any():
            return classes
        read = classes.copy()
        read[self.lost] = INDETERMINATE
        return read

    def cost(self, cost: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
        """Costs with the degraded decisions made before a promotion at 0 (nothing spent on the survivor)."""
        if self.silent is None or not self.silent.any():
            return cost
        spent = cost.copy()
        spent[self.silent] = 0.0
        return spent

    @property
    def first_fault_ns(self) -> int | None:
        """The first bridged failover's fault (epoch ns), ``None`` without one."""
        return min((int(r.fault_at * NS) for _, r in self.bridged), default=None)

    def evidence(self, cost: npt.NDArray[np.floating]) -> list[dict[str, object]]:
        bound = float(np.asarray(cost, dtype=np.float64)[self.lost].sum()) if self.lost is not None else 0.0
        slow: list[dict[str, object]] = [{"fault": w.name, "kind": str(w.kind), "lost": "nothing"} for w in self.slow]
        return slow + [
            {
                "fault": w.name,
                "replicated_until": r.replicated_until,
                "fault_at": r.fault_at,
                "promoted_at": r.promoted_at,
                "possibly_lost_admissions": int(self.lost.sum()) if self.lost is not None else 0,
                "bound_cost_all_failovers": bound,
            }
            for w, r in self.bridged
        ]


def failover_bridge(run: RunData, status: npt.NDArray[np.int32] | None = None) -> Bridge:
    """The bridge over every failover window whose loss its record bounds and every latency window; other
    windows are ``kept``."""
    records = failover_records(run)
    bridged = [(w, r) for w, r in records if r is not None and r.replicated_until is not None]
    slow = [w for w in run.faults if w.kind is FaultKind.LATENCY]
    if not bridged and not slow:
        return Bridge(kept=list(run.faults))
    ids = {id(w) for w, _ in bridged} | {id(w) for w in slow}
    kept = [w for w in run.faults if id(w) not in ids]
    sent = np.asarray(run.history["sent_ns"])
    status = np.asarray(run.history["status"]) if status is None else status
    latency_ns = np.nan_to_num(np.asarray(run.history["latency_ms"], dtype=np.float64) * 1e6, nan=np.inf)
    degraded = run.degraded
    admitted = (_classes(status) == ADMITTED) & ~degraded
    lost = np.zeros(len(sent), dtype=np.bool_)
    silent = np.zeros(len(sent), dtype=np.bool_)
    for window, record in bridged:
        assert record.replicated_until is not None
        fault = int(record.fault_at * NS)
        lost |= admitted & (sent + latency_ns >= record.replicated_until * NS) & (sent <= fault)
        promoted = fault_bounds_ns(window)[1] if record.promoted_at is None else int(record.promoted_at * NS)
        silent |= degraded & (sent >= fault) & (sent <= promoted)
    return Bridge(bridged, kept, slow, lost, silent)


def _classes(status: npt.NDArray[np.int32]) -> npt.NDArray[np.int8]:
    from quotaquake.verify.data.outcomes import outcome_classes

    return outcome_classes(status)
