"""What every fault module declares: its kind, the journal activities that inject and undo it, the
services an activity hit, and what the declared policy expects of the gateway while it lasts.

A journal activity is described by ``Activity`` (one entry of a Chaos Toolkit journal's ``run`` or
``rollbacks``). Activities are named ``module:func``, e.g. ``quotaquake.chaos.actions:kill_service``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydantic import JsonValue

from quotaquake.kongspec import KongSpec
from quotaquake.policy import DegradationMode, Policy
from quotaquake.runfolder.models import Expectation, FaultKind, ServiceRole

ACTIONS = "quotaquake.chaos.actions"
RESTORE_ALL = f"{ACTIONS}:restore_all"


def action(func: str) -> str:
    """The ``module:func`` name of one of quotaquake's own chaos actions."""
    return f"{ACTIONS}:{func}"


@dataclass(frozen=True)
class Activity:
    """One journal entry. ``start``/``end`` are epoch seconds; ``failed``: the journal says it failed;
    ``status`` is None when it was interrupted mid-way (it may still have broken something)."""

    name: str
    module: str
    func: str
    arguments: Mapping[str, object]
    output: object
    status: str | None
    start: float
    end: float

    @property
    def qualified(self) -> str:
        return f"{self.module}:{self.func}"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


def service_argument(activity: Activity) -> str | None:
    """The ``service`` argument of one of our actions (most faults act on one named service)."""
    service = activity.arguments.get("service")
    return str(service) if service is not None else None


def storage_expectation(policy: Policy, role: ServiceRole, kong: KongSpec | None = None) -> Expectation:
    """The declared degradation when the service holding the counters is unreachable; clients served otherwise.

    The embedded limiter (``kong`` None) does what ``policy.degradation`` says of a Redis fault. A Kong target
    does what its plugin declares (``kong/plugins/rate-limiting/handler.lua:144-152``) when the store of its
    ``policy`` fails (Redis for ``redis``, Kong's database for ``cluster``; ``local`` has none):
    ``fault_tolerant`` -> admitted without any limit, else HTTP 500.
    """
    if kong is not None:
        if kong.store_role is None or role.value != kong.store_role:
            return Expectation.AVAILABLE
        return Expectation.FAIL_OPEN_UNLIMITED if kong.fault_tolerant else Expectation.ERROR_500
    if role is not ServiceRole.RATE_LIMIT_STORE:
        return Expectation.AVAILABLE
    if policy.degradation.on_redis_unavailable == DegradationMode.FAIL_CLOSED:
        return Expectation.FAIL_CLOSED
    return Expectation.FAIL_OPEN_LOCAL


def no_declared_role(activity: Activity) -> ServiceRole | None:
    """Most activities name a service; its role follows from the name (``quotaquake.faults.role_of``)."""
    del activity
    return None


ExpectationRule = Callable[[Policy, ServiceRole, KongSpec | None], Expectation]
ActivityExpectation = Callable[[Activity, Policy, ServiceRole, KongSpec | None], Expectation]
Details = dict[str, JsonValue]
DetailsRule = Callable[[Activity, Activity | None], Details | None]
"""What a fault's activities measured (their outputs), for its window: ``(injecting, undoing or None)``."""


def no_details(fault: Activity, undo: Activity | None) -> Details | None:
    del fault, undo
    return None


@dataclass(frozen=True)
class Fault:
    """One kind of fault, as the journal reader and the degradation verdicts need it.

    ``injected_by``: activities that inject it; ``undone_by``: activities that undo it for the service
    they name (``restore_all`` undoes every fault); ``services``: which services an injecting activity
    hit; ``expectation``: what the policy (or a Kong target's plugin) declares clients see meanwhile, by
    the service's role; ``declared_role``: the role an activity states itself (else from the service name).
    ``undo_needs_success``: an undoing activity counts only when it succeeded (probes that wait for
    recovery), otherwise when it ended at all. ``details``: what the activities measured, carried into the
    fault window (``FaultWindow.details``); ``expectation_of``: the expectation when it depends on the
    injecting activity's arguments.
    """

    kind: FaultKind
    injected_by: frozenset[str]
    undone_by: frozenset[str] = frozenset()
    services: Callable[[Activity], str | None] = service_argument
    expectation: ExpectationRule = storage_expectation
    declared_role: Callable[[Activity], ServiceRole | None] = no_declared_role
    undo_needs_success: bool = False
    undoes_all: frozenset[str] = field(default=frozenset({RESTORE_ALL}))
    details: DetailsRule = no_details
    expectation_of: ActivityExpectation | None = None

    def expect(self, activity: Activity, policy: Policy, role: ServiceRole, kong: KongSpec | None) -> Expectation:
        """What clients are declared to see during the fault ``activity`` injected: ``expectation_of`` when
        the fault's activity decides it (a delay below or above the Redis timeout), else ``expectation``."""
        if self.expectation_of is not None:
            return self.expectation_of(activity, policy, role, kong)
        return self.expectation(policy, role, kong)

    def injected(self, activity: Activity) -> bool:
        """True for an injecting activity that did not fail (an interrupted one may have broken things)."""
        return activity.qualified in self.injected_by and not activity.failed

    def undone(self, by: Activity, fault: Activity) -> bool:
        """True when ``by`` (later than ``fault``) undoes the fault ``fault`` injected."""
        if by.start < fault.start or (self.undo_needs_success and not by.succeeded):
            return False
        if by.qualified in self.undoes_all:
            return True
        return by.qualified in self.undone_by and self.services(by) == self.services(fault)
