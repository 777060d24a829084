"""Read-only views of the fleet's running jobs (the active-job registry), of the drain
(how many running jobs of a blocked type are left) and of stopped jobs needing action."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ... import drain_marks
from ...domain.modes import OperationType
from ...domain.status import MaintenanceStatus
from ...errors import StoreUnavailable
from ...job_registry import ActiveJob, JobRegistry
from ...store.jobs import JobStore

if TYPE_CHECKING:
    from ...service import EnhancedMaintenanceModeService


def running_jobs(service: EnhancedMaintenanceModeService) -> list[ActiveJob]:
    """Every registry entry, oldest first."""
    jobs = JobRegistry(service.redis, service.keys).all().values()
    return sorted(jobs, key=lambda j: j.started)


def of_kinds(jobs: Iterable[ActiveJob], kinds: Iterable[OperationType]) -> list[ActiveJob]:
    """Running (not queued) jobs whose operation type is one of ``kinds``."""
    wanted = {op.value for op in kinds}
    return [j for j in jobs if j.running and j.operation in wanted]


def blocked_kinds(status: MaintenanceStatus) -> tuple[OperationType, ...]:
    """What the drain waits for: the blocked set of a real (not TEST) maintenance."""
    if not status.is_active or status.test_mode:
        return ()
    return status.blocked_operations


def jobs_view(
    service: EnhancedMaintenanceModeService, status: MaintenanceStatus, limit: int = 50
) -> dict[str, Any]:
    """Running jobs (newest ``limit``), how many are of a blocked type, and the drain."""
    now = time.time()
    jobs = running_jobs(service)
    kinds = blocked_kinds(status)
    blocking = {j.task_id for j in of_kinds(jobs, kinds)}
    rows = [
        {
            "task_id": j.task_id,
            "name": j.name,
            "operation": j.operation,
            "worker": j.worker,
            "state": j.state,
            "age_seconds": round(j.age(now), 1),
            "blocked_kind": j.task_id in blocking,
        }
        for j in jobs[:limit]
    ]
    try:
        needing = [r.to_dict() for r in JobStore(service.db).needing_action(limit)]
    except StoreUnavailable:
        needing = []  # the status names the SQL trouble
    return {
        "total": len(jobs),
        "rows": rows,
        "needing_action": needing,
        "blocked_kind_running": len(blocking),
        "draining": bool(kinds),
        "drained_at": (
            drain_marks.announced_at(service.redis, service.keys, status.activation_id)
            if kinds
            else None
        ),
    }
