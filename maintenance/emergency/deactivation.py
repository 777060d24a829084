"""What stands in the way of lifting an emergency: nothing may be left running or
unaccounted for.

The checks: every live worker finished its termination ladder; no job of a
type the emergency blocks is still marked running on a live worker; no
registry entry belongs to a worker that stopped heartbeating. A fleet adapter
adds its own findings (``extra``: the registry against what the workers
themselves say). Problems refuse the lift unless forced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..domain.emergency_plan import is_emergency, plan_of
from ..domain.modes import OperationType
from ..domain.policy import Decision, decide
from ..domain.status import MaintenanceStatus
from ..errors import ConflictError
from ..job_registry import JobRegistry
from ..redisconn import REDIS_ERRORS, describe_redis_error
from .phases import unfinished_workers_of

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService


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
    service: EnhancedMaintenanceModeService, *, extra: tuple[str, list[str]] | None = None
) -> DeactivationCheck:
    """Everything that makes lifting the current emergency unsafe right now; ``extra`` is
    ``(what was checked, problems found)`` by a fleet adapter."""
    status = current_emergency(service)
    emergency_id = status.emergency_id
    problems: list[str] = []
    notes: list[str] = []
    checked = ["registry"]
    plan = plan_of(status)
    try:
        live_nodes = set(service.nodes())
        running = JobRegistry(service.redis, service.keys).running()
        if plan is not None and emergency_id:
            checked.append("termination")
            busy = {entry.worker for entry in running} | {entry.node for entry in running}
            for name, state in unfinished_workers_of(service, emergency_id, plan.plan_id):
                if name in busy or state == "not started":
                    problems.append(f"worker {name}: termination not finished ({state})")
                else:  # its ladder waits out the grace, but it has nothing left to stop
                    notes.append(f"worker {name}: ladder at {state}, no job left to stop")
    except REDIS_ERRORS as exc:
        problems.append(
            f"Redis unavailable ({describe_redis_error(exc)}): the workers' termination and "
            "the job registry cannot be checked"
        )
        live_nodes, running = set(), []
    for entry in running:
        label = f"{entry.name}[{entry.task_id}] on {entry.worker or entry.node or '?'}"
        if entry.node is not None and entry.node not in live_nodes:
            problems.append(f"{label}: its worker stopped heartbeating (entry not reaped yet)")
        elif service.is_completion_allowed(entry.task_id) or _allowed_in(status, entry.operation):
            notes.append(f"{label} runs on (allowed to finish)")
        else:
            problems.append(f"{label} is still marked running")
    if extra is not None:
        checked.append(extra[0])
        problems.extend(extra[1])
    return DeactivationCheck(
        emergency_id=emergency_id,
        problems=tuple(problems),
        notes=tuple(notes),
        checked=tuple(checked),
    )


def _allowed_in(status: MaintenanceStatus, operation: str) -> bool:
    try:
        op = OperationType(operation)
    except ValueError:
        return False
    return decide(status, op) is Decision.ALLOW
