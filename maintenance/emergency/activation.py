"""Declaring an emergency: fenced EMERGENCY with a termination plan, logins refused,
non-admin sessions removed, the trigger on record. Framework-free.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..domain.emergency_plan import (
    DEFAULT_GRACE,
    DEFAULT_KILL_AFTER,
    EXTRA_KEY,
    MAX_GRACE,
    MAX_KILL_AFTER,
    PHASE_GRACE,
    TerminationPlan,
    is_emergency,
    parse_seconds,
    validate_trigger,
)
from ..domain.modes import MaintenanceMode
from ..domain.validation import validate_actor, validate_reason
from ..errors import ConflictError
from ..fencing import ActivationResult
from ..redisconn import REDIS_ERRORS
from ..session_invalidation import invalidator
from . import fleet

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.emergency")
ABORT_TTL = 24 * 3600

#: ``invalidate(actor, wait=..., reason=...)`` -> an object with ``to_dict()``: how
#: non-admin sessions are removed (the web app's manager knows its session store).
Invalidator = Callable[..., Any]


@dataclass(frozen=True)
class EmergencyActivation:
    """What declaring an emergency did."""

    emergency_id: str
    activation: ActivationResult
    plan: TerminationPlan
    trigger: str
    triggered_by: str
    sessions: dict[str, Any] | None = None
    sessions_error: str | None = None
    running_at_activation: tuple[str, ...] = ()

    @property
    def fenced(self) -> bool:
        """Whether every live node applied EMERGENCY before the call returned."""
        return self.activation.fenced

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the fenced ``ActivationResult`` plus the emergency's facts)."""
        return {
            **self.activation.to_dict(),
            "emergency_id": self.emergency_id,
            "report_id": self.emergency_id,
            "plan": self.plan.to_dict(),
            "trigger": self.trigger,
            "triggered_by": self.triggered_by,
            "sessions": self.sessions,
            "sessions_error": self.sessions_error,
            "running_jobs": len(self.running_at_activation),
        }


def default_invalidator(service: EnhancedMaintenanceModeService) -> Invalidator:
    """Session removal through the shared index (server-side keys the web app registered)."""
    return invalidator(service)


@dataclass(frozen=True)
class Round:
    """A termination round as started: its plan, the jobs running then, the status write."""

    plan: TerminationPlan
    running: tuple[str, ...]
    result: ActivationResult


def start_round(
    service: EnhancedMaintenanceModeService,
    grace_period: float | str,
    kill_after: float | str,
    *,
    trigger: str,
    triggered_by: str,
    write: Callable[[TerminationPlan, tuple[str, ...]], ActivationResult],
) -> Round:
    """Start a termination round: check the timing, note the running jobs, make the plan,
    have ``write(plan, running)`` put it in the status, then set the fleet-wide abort flag.

    Nothing is written before ``write`` (which may still refuse, e.g. on a conflict).
    """
    grace = parse_seconds(grace_period, field="grace_period", maximum=MAX_GRACE)
    kill = parse_seconds(kill_after, field="kill_after", maximum=MAX_KILL_AFTER)
    try:
        running = tuple(e.task_id for e in fleet.registry_entries(service))
    except REDIS_ERRORS:
        running = ()
    plan = TerminationPlan.new(grace, kill, trigger=trigger, triggered_by=triggered_by)
    result = write(plan, running)
    with contextlib.suppress(*REDIS_ERRORS):
        service.redis.set(service.keys.abort_all, str(result.status.emergency_id), ex=ABORT_TTL)
    return Round(plan=plan, running=running, result=result)


def activate_emergency(
    service: EnhancedMaintenanceModeService,
    reason: str,
    triggered_by: str,
    *,
    grace_period: float | str = DEFAULT_GRACE,
    kill_after: float | str = DEFAULT_KILL_AFTER,
    trigger: str = "person",
    duration: str | int | float | timedelta | None = None,
    critical_admin_only: bool = False,
    wait: float | None = None,
    invalidate: Invalidator | None = None,
) -> EmergencyActivation:
    """Switch to EMERGENCY now, fenced, carrying the termination plan to every worker.

    Everything is validated before anything changes. Refuses (``ConflictError``)
    while an emergency is already on: change it with ``enable_maintenance``, or
    lift it first. Logins of non-admins are refused from the same status version.
    """
    reason = validate_reason(reason)
    actor = validate_actor(triggered_by, "triggered_by")
    trigger = validate_trigger(trigger)

    def declare(plan: TerminationPlan, running: tuple[str, ...]) -> ActivationResult:
        current = service.state.load()
        if is_emergency(current):
            raise ConflictError(
                f"emergency {current.emergency_id} is already active; lift it first",
                current_version=current.version,
            )
        facts = {"plan": plan.to_dict(), "trigger": trigger, "triggered_by": actor}
        return service.enable_maintenance(
            reason,
            duration,
            mode=MaintenanceMode.EMERGENCY,
            enabled_by=actor,
            wait=wait,
            expected_version=current.version,
            critical_admin_only=critical_admin_only,
            block_login=True,
            details={EXTRA_KEY: facts, "via": trigger},
        )

    started = start_round(
        service, grace_period, kill_after, trigger=trigger, triggered_by=actor, write=declare
    )
    plan, running, result = started.plan, started.running, started.result
    emergency_id = str(result.status.emergency_id)
    phased = service.update_status(
        actor, "emergency_phase", details={"phase": PHASE_GRACE}, emergency_phase=PHASE_GRACE
    )
    sessions, sessions_error = _invalidate(service, invalidate, actor, wait, reason)
    service.record_event(
        "emergency_activated",
        actor,
        reason,
        details={
            "emergency_id": emergency_id,
            "trigger": trigger,
            "triggered_by": actor,
            "grace_period": plan.grace,
            "kill_after": plan.kill_after,
            "plan": plan.to_dict(),
            "fenced": result.fenced,
            "propagation": result.propagation,
            "applied_nodes": len(result.applied_nodes),
            "lagging_nodes": [str(n.get("node_id")) for n in result.lagging_nodes],
            "waited_ms": round(result.waited_seconds * 1000, 3),
            "running_jobs": list(running[:1000]),
            "sessions": sessions,
        },
        activation_id=result.status.activation_id,
    )
    log.warning(
        "EMERGENCY %s declared by %s (trigger: %s): %s; grace %.3gs, kill after %.3gs; "
        "fenced=%s, %d job(s) running",
        emergency_id,
        actor,
        trigger,
        reason,
        plan.grace,
        plan.kill_after,
        result.fenced,
        len(running),
    )
    return EmergencyActivation(
        emergency_id=emergency_id,
        activation=_with_status(result, phased),
        plan=plan,
        trigger=trigger,
        triggered_by=actor,
        sessions=sessions,
        sessions_error=sessions_error,
        running_at_activation=running,
    )


def _with_status(result: ActivationResult, later: ActivationResult) -> ActivationResult:
    # Fencing facts of the switch itself; the newest status (with its phase) to show.
    return replace(result, status=later.status)


def _invalidate(
    service: EnhancedMaintenanceModeService,
    invalidate: Invalidator | None,
    actor: str,
    wait: float | None,
    reason: str,
) -> tuple[dict[str, Any] | None, str | None]:
    chosen = invalidate or default_invalidator(service)
    try:
        result = chosen(actor, wait=wait, reason=f"emergency: {reason}")
    except Exception as exc:
        # The lockdown stands (logins refused, stale sessions turned away by the
        # epoch on their next request); say why the sweep did not happen.
        log.error("emergency: non-admin sessions not invalidated: %s", exc)
        return None, str(exc)
    return result.to_dict(), None


def force_session_cleanup(
    service: EnhancedMaintenanceModeService,
    actor: str,
    *,
    wait: float | None = None,
    invalidate: Invalidator | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Remove every non-admin session now and refuse non-admin logins from here on."""
    actor = validate_actor(actor, "actor")
    status = service.state.load()
    if status.is_active and not status.login_blocked:
        service.update_status(actor, "login_blocked", reason=reason, wait=wait, login_blocked=True)
    chosen = invalidate or default_invalidator(service)
    return dict(chosen(actor, wait=wait, reason=reason).to_dict())


def enable_critical_admin_only(
    service: EnhancedMaintenanceModeService, actor: str, *, wait: float | None = None
) -> ActivationResult:
    """Narrow the emergency to administrators flagged critical (fenced)."""
    actor = validate_actor(actor, "actor")
    current = service.state.load()
    if not is_emergency(current):
        raise ConflictError(
            "critical-admin-only needs an active emergency", current_version=current.version
        )
    result = service.update_status(
        actor,
        "critical_admin_only_enabled",
        wait=wait,
        expect=is_emergency,
        critical_admin_only=True,
    )
    log.warning("emergency %s: critical admins only (by %s)", result.status.emergency_id, actor)
    return result
