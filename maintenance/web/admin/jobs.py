"""Read-only views of the fleet's running jobs (the ``active_jobs`` registry the Celery side
keeps) and of the drain: how many running jobs of a blocked type are left."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...domain.modes import OperationType
from ...domain.status import MaintenanceStatus

if TYPE_CHECKING:
    from ...service import EnhancedMaintenanceModeService

#: Registry states (written by ``workers.registry``); a missing state means running.
RUNNING, QUEUED = "running", "queued"


@dataclass(frozen=True)
class RunningJob:
    """One registry entry as the panel shows it."""

    task_id: str
    name: str
    operation: str
    worker: str | None
    started: float
    state: str

    def age(self, now: float) -> float:
        """Seconds since it started (or was queued)."""
        return max(0.0, now - self.started)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse(task_id: str, raw: str | bytes) -> RunningJob | None:
    try:
        data: dict[str, Any] = json.loads(raw)
        return RunningJob(
            task_id=task_id,
            name=str(data.get("name") or "?"),
            operation=str(data.get("operation") or OperationType.UNKNOWN.value),
            worker=data.get("worker"),
            started=float(data.get("started") or 0.0),
            state=str(data.get("state") or RUNNING),
        )
    except (ValueError, TypeError, AttributeError):
        return None  # a torn or foreign value: not ours to interpret


def running_jobs(service: EnhancedMaintenanceModeService) -> list[RunningJob]:
    """Every registry entry, oldest first."""
    raw = service.redis.hgetall(service.keys.active_jobs)
    jobs = (_parse(_text(k), v) for k, v in raw.items())
    return sorted((j for j in jobs if j is not None), key=lambda j: j.started)


def of_kinds(jobs: Iterable[RunningJob], kinds: Iterable[OperationType]) -> list[RunningJob]:
    """Running (not queued) jobs whose operation type is one of ``kinds``."""
    wanted = {op.value for op in kinds}
    return [j for j in jobs if j.state != QUEUED and j.operation in wanted]


def blocked_kinds(status: MaintenanceStatus) -> tuple[OperationType, ...]:
    """What the drain waits for: the blocked set of a real (not TEST) maintenance."""
    if not status.is_active or status.test_mode:
        return ()
    return status.blocked_operations


def drained_at(service: EnhancedMaintenanceModeService, activation_id: str | None) -> float | None:
    """When the drain of ``activation_id`` was announced (unix seconds), if it was."""
    if not activation_id:
        return None
    raw = service.redis.get(service.keys.drain_announced(activation_id))
    try:
        return float(_text(raw)) if raw is not None else None
    except ValueError:
        return None


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
    return {
        "total": len(jobs),
        "rows": rows,
        "blocked_kind_running": len(blocking),
        "draining": bool(kinds),
        "drained_at": drained_at(service, status.activation_id) if kinds else None,
    }
