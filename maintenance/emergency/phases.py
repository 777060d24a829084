"""Moving an emergency through its phases: grace -> terminating -> terminated, once each.

Any process may notice that a phase is due (a worker at the end of its grace
period, the declaring handler's monitor, a deactivation); a Redis claim makes
exactly one of them write the change, and ``expect`` refuses to write it into
a different (or lifted) emergency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..domain.emergency_plan import PHASE_TERMINATED, PHASES, is_emergency
from ..domain.status import MaintenanceStatus
from ..errors import ConflictError, MaintenanceError
from ..redisconn import REDIS_ERRORS
from .fleet import FleetBoard, unfinished_workers

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.emergency")
EVENT_KIND = "emergency_phase"


def _in_same_emergency(emergency_id: str, phase: str) -> Callable[[MaintenanceStatus], bool]:
    order = PHASES.index(phase)

    def check(status: MaintenanceStatus) -> bool:
        current = status.emergency_phase
        return (
            is_emergency(status)
            and status.emergency_id == emergency_id
            and (current not in PHASES or PHASES.index(current) < order)
        )

    return check


def advance_phase(
    service: EnhancedMaintenanceModeService,
    emergency_id: str,
    phase: str,
    actor: str,
    plan_id: str | None = None,
) -> bool:
    """Set ``emergency_phase`` (with the outcome counts so far); True if this call did it.

    Claimed once per termination round (``plan_id``) and phase, fleet-wide.
    """
    board = FleetBoard(service.redis, service.keys)
    try:
        if not board.claim(emergency_id, f"{plan_id or '-'}:phase:{phase}"):
            return False
    except REDIS_ERRORS as exc:
        log.warning("emergency %s: phase %s not claimed (%s)", emergency_id, phase, exc)
        return False
    counts = board.read_counts(emergency_id)
    try:
        service.update_status(
            actor,
            EVENT_KIND,
            details={"phase": phase, "emergency_id": emergency_id},
            extra_changes={"emergency_counts": counts},
            expect=_in_same_emergency(emergency_id, phase),
            emergency_phase=phase,
        )
    except ConflictError:
        return False  # lifted, or a later phase was already reached
    except MaintenanceError as exc:
        log.error("emergency %s: phase %s not recorded: %s", emergency_id, phase, exc)
        return False
    log.warning("emergency %s: phase %s (%s)", emergency_id, phase, counts)
    return True


def finish_if_done(
    service: EnhancedMaintenanceModeService,
    emergency_id: str,
    actor: str,
    plan_id: str | None = None,
) -> bool:
    """Move to ``terminated`` once every live worker finished its ladder of ``plan_id``."""
    try:
        if unfinished_workers_of(service, emergency_id, plan_id):
            return False
    except REDIS_ERRORS:
        return False
    return advance_phase(service, emergency_id, PHASE_TERMINATED, actor, plan_id)


def unfinished_workers_of(
    service: EnhancedMaintenanceModeService, emergency_id: str, plan_id: str | None = None
) -> list[tuple[str, str]]:
    """Live workers of ``service``'s fleet whose ladder of ``plan_id`` is not done yet."""
    progress = FleetBoard(service.redis, service.keys).read_progress(emergency_id)
    return unfinished_workers(progress, service.nodes(), plan_id)
