"""Emergency maintenance: declare, narrow to critical admins, lift -- the commands every
entry point calls (the work itself is the ``EmergencyController``'s)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ..domain.emergency_plan import DEFAULT_GRACE, DEFAULT_KILL_AFTER
from ..emergency import EmergencyController, controller_for
from .actor import Actor, authorize
from .outcome import Effect, Outcome, fencing_effect
from .sessions import Invalidator

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService


def declare(
    service: EnhancedMaintenanceModeService,
    actor: Actor,
    reason: str,
    *,
    grace: float | str = DEFAULT_GRACE,
    kill_after: float | str = DEFAULT_KILL_AFTER,
    trigger: str = "person",
    duration: str | int | float | timedelta | None = None,
    critical_admin_only: bool = False,
    wait: float | None = None,
    invalidate: Invalidator | None = None,
    controller: EmergencyController | None = None,
) -> Outcome:
    """EMERGENCY now (fenced), non-admins logged out, running jobs told to stop.

    Refused before anything changes on bad input, a conflict (already on), a store
    down or a caller who may not; after the declaration, failures are effects.
    """
    authorize(service, actor)
    control = controller or controller_for(service)
    result = control.activate_emergency_mode(
        reason,
        actor.name,
        grace,
        kill_after,
        trigger,
        duration=duration,
        critical_admin_only=critical_admin_only,
        wait=wait,
        invalidate=invalidate,
        watch=False,
    )
    effects = [fencing_effect(result.activation)]
    if result.sessions is not None:
        effects.append(
            Effect("sessions", True, f"{result.sessions['count']} non-admin session(s) logged out")
        )
    else:
        effects.append(Effect("sessions", False, f"not invalidated: {result.sessions_error}"))
    effects += [Effect(name, False, why) for name, why in result.errors.items()]
    return Outcome(
        action="emergency",
        committed=True,
        version=result.activation.status.version,
        summary=f"Emergency {result.emergency_id} declared by {actor.name}.",
        effects=tuple(effects),
        data=result.to_dict(),
        value=result,
    )


def critical_only(
    service: EnhancedMaintenanceModeService,
    actor: Actor,
    *,
    wait: float | None = None,
    controller: EmergencyController | None = None,
) -> Outcome:
    """During an emergency: only critical administrators get through from now on."""
    authorize(service, actor)
    result = (controller or controller_for(service)).enable_critical_admin_only(
        actor.name, wait=wait
    )
    return Outcome(
        action="critical_only",
        committed=True,
        version=result.status.version,
        summary="Only administrators flagged critical get through now.",
        effects=(fencing_effect(result),),
        data=result.to_dict(),
        value=result,
    )


def lift(
    service: EnhancedMaintenanceModeService,
    actor: Actor,
    *,
    requeue: bool = True,
    force: bool = False,
    wait: float | None = None,
    reason: str | None = None,
    controller: EmergencyController | None = None,
) -> Outcome:
    """Check, lift, requeue what was cut off, write the report (``DeactivationRefused``
    while a check finds problems, unless ``force``)."""
    authorize(service, actor)
    result = (controller or controller_for(service)).deactivate_emergency_mode(
        actor.name, requeue=requeue, force=force, wait=wait, reason=reason
    )
    effects = [fencing_effect(result.activation)]
    if result.requeue == "partial" and "requeue" not in result.errors:
        effects.append(Effect("requeue", False, "some jobs were not requeued; see the log"))
    effects += [Effect(name, False, why) for name, why in result.errors.items()]
    return Outcome(
        action="emergency_off",
        committed=True,
        version=result.activation.status.version,
        summary=f"Emergency {result.emergency_id} lifted.",
        effects=tuple(effects),
        data=result.to_dict(),
        value=result,
    )
