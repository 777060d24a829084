"""Lifting an emergency: check that nothing is left running or unaccounted for, then lift.

The checks: every live worker finished its termination ladder; no job of a
type the emergency blocks is still marked running on a live worker; no
registry entry belongs to a worker that stopped heartbeating. Callers with a
Celery app add their own findings (``extra_problems``: the registry against
what the workers themselves say). Problems refuse the lift unless forced.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..domain.emergency_plan import is_emergency, plan_of
from ..domain.modes import parse_operation
from ..domain.policy import Decision, decide
from ..domain.status import MaintenanceStatus
from ..domain.validation import validate_actor
from ..errors import ConflictError, DeactivationRefused
from ..fencing import ActivationResult
from ..redisconn import REDIS_ERRORS
from . import fleet

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.emergency")


@dataclass(frozen=True)
class DeactivationCheck:
    """What stands in the way of lifting an emergency (``ok`` when nothing does)."""

    emergency_id: str | None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    checked: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the emergency can be lifted without ``force``."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "emergency_id": self.emergency_id,
            "ok": self.ok,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "checked": list(self.checked),
        }


def current_emergency(service: EnhancedMaintenanceModeService) -> Any:
    """The stored status if an emergency is on; ``ConflictError`` otherwise."""
    status = service.state.load()
    if not is_emergency(status):
        raise ConflictError("no emergency is active", current_version=status.version)
    return status


def check_deactivation(
    service: EnhancedMaintenanceModeService, *, extra_problems: tuple[str, ...] = ()
) -> DeactivationCheck:
    """Everything that makes lifting the current emergency unsafe right now."""
    status = current_emergency(service)
    emergency_id = status.emergency_id
    problems: list[str] = []
    notes: list[str] = []
    checked = ["registry"]
    plan = plan_of(status)
    if plan is not None and emergency_id:
        checked.append("termination")
        for name, state in fleet.unfinished_workers(service, emergency_id, plan.plan_id):
            problems.append(f"worker {name}: termination not finished ({state})")
    live_nodes = set(service.nodes())
    for entry in fleet.registry_entries(service):
        label = f"{entry.name}[{entry.task_id}] on {entry.worker or entry.node or '?'}"
        if entry.node is not None and entry.node not in live_nodes:
            problems.append(f"{label}: its worker stopped heartbeating (entry not reaped yet)")
        elif service.is_completion_allowed(entry.task_id) or _allowed_in(status, entry.operation):
            notes.append(f"{label} runs on (allowed to finish)")
        else:
            problems.append(f"{label} is still marked running")
    problems.extend(extra_problems)
    return DeactivationCheck(
        emergency_id=emergency_id,
        problems=tuple(problems),
        notes=tuple(notes),
        checked=tuple(checked),
    )


def _allowed_in(status: MaintenanceStatus, operation: str) -> bool:
    try:
        op = parse_operation(operation)
    except ValueError:
        return False
    return decide(status, op) is Decision.ALLOW


def lift_emergency(
    service: EnhancedMaintenanceModeService,
    actor: str,
    check: DeactivationCheck,
    *,
    requeue: bool = True,
    force: bool = False,
    wait: float | None = None,
    reason: str | None = None,
) -> ActivationResult:
    """Lift the emergency after ``check`` (refused on problems unless ``force``).

    The fleet-wide abort flag goes first; jobs are told to stop by the plan in the
    status, which the lift ends.
    With ``requeue`` the status says ``recovery_pending`` and the Celery side
    republishes terminated and deferred jobs exactly once.
    """
    actor = validate_actor(actor, "actor")
    status = current_emergency(service)
    if not check.ok and not force:
        service.record_event(
            "emergency_deactivation_refused",
            actor,
            reason,
            {"emergency_id": check.emergency_id, "problems": list(check.problems)},
        )
        raise DeactivationRefused(check, status.version)
    service.record_event(
        "emergency_deactivated",
        actor,
        reason,
        {
            "emergency_id": check.emergency_id,
            "forced": bool(check.problems),
            "problems": list(check.problems),
            "requeue": requeue,
        },
    )
    with contextlib.suppress(*REDIS_ERRORS):
        service.redis.delete(service.keys.abort_all)
    result = service.disable_maintenance(actor, requeue=requeue, wait=wait, reason=reason)
    log.warning(
        "emergency %s lifted by %s%s",
        check.emergency_id,
        actor,
        f" (forced past {len(check.problems)} problem(s))" if check.problems else "",
    )
    return result
