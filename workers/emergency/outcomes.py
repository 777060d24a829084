"""Writing down what happened to each stopped job: its record (to run it again), a
``job_terminated`` event in the log and in-process, and the fleet-wide counts."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from maintenance import EnhancedMaintenanceModeService
from maintenance import events as maintenance_events
from maintenance.domain.emergency_plan import (
    OUTCOME_ABORTED,
    OUTCOME_INTERRUPTED,
    OUTCOME_KILLED,
    OUTCOME_TERMINATED,
)
from maintenance.emergency.fleet import FleetBoard
from maintenance.redisconn import REDIS_ERRORS
from maintenance.store.eventlog import EventLog, MaintenanceEvent
from maintenance.store.jobs import TERMINATED, JobRecord, JobStore

log = logging.getLogger("maintenance.emergency")
EVENT_KIND = "job_terminated"
COMPLETED_AFTER_SIGTERM = "completed after SIGTERM"


def _event(
    record: JobRecord, outcome: str, emergency_id: str | None, actor: str
) -> MaintenanceEvent:
    return MaintenanceEvent(
        kind=EVENT_KIND,
        actor=actor,
        activation_id=record.activation_id,
        details={
            "emergency_id": emergency_id,
            "task_id": record.original_id,
            "task": record.task_name,
            "worker": record.worker,
            "queue": record.queue,
            "outcome": outcome,
            "rerun_safe": record.rerun_safe,
        },
    )


def count(service: EnhancedMaintenanceModeService, emergency_id: str | None, **counts: int) -> None:
    """Add to the fleet-wide outcome counts (display only: SQL has every job)."""
    if emergency_id is None:
        return
    try:
        FleetBoard(service.redis, service.keys).add_counts(emergency_id, **counts)
    except REDIS_ERRORS as exc:  # the SQL records are what counts; these are for display
        log.warning("emergency %s: counters not updated: %s", emergency_id, exc)


def record_stopped(
    service: EnhancedMaintenanceModeService,
    records: Sequence[JobRecord],
    *,
    emergency_id: str | None,
    actor: str,
) -> None:
    """Store stopped jobs with their events in one transaction, then count and notify."""
    if not records:
        return
    with service.db.begin() as conn:
        for record in records:
            JobStore.record_in(conn, record)
            EventLog.append_in(conn, _event(record, str(record.outcome), emergency_id, actor))
    by_outcome: dict[str, int] = {}
    for record in records:
        if record.outcome not in (OUTCOME_ABORTED, OUTCOME_INTERRUPTED):  # counted by the job
            by_outcome[str(record.outcome)] = by_outcome.get(str(record.outcome), 0) + 1
    count(service, emergency_id, **by_outcome)
    for record in records:
        maintenance_events.emit(
            maintenance_events.job_terminated, service, job=record, outcome=record.outcome
        )


def mark_killed(
    service: EnhancedMaintenanceModeService,
    records: Sequence[JobRecord],
    *,
    emergency_id: str,
    actor: str,
) -> None:
    """Jobs that survived SIGTERM and were SIGKILLed: their records say so."""
    if not records:
        return
    ids = [r.original_id for r in records]
    with service.db.begin() as conn:
        JobStore.set_outcome_in(conn, ids, OUTCOME_KILLED, state=TERMINATED)
        for record in records:
            EventLog.append_in(conn, _event(record, OUTCOME_KILLED, emergency_id, actor))
    count(service, emergency_id, killed=len(records), terminated=-len(records))
    for record in records:
        maintenance_events.emit(
            maintenance_events.job_terminated, service, job=record, outcome=OUTCOME_KILLED
        )


def discard_if_completed(
    service: EnhancedMaintenanceModeService, task_id: str, *, emergency_id: str
) -> bool:
    """A job that ignored SIGTERM yet finished its work is not run again."""
    store = JobStore(service.db)
    if not store.discard_stopped(
        task_id, outcome=OUTCOME_TERMINATED, reason=COMPLETED_AFTER_SIGTERM
    ):
        return False
    count(service, emergency_id, terminated=-1)
    log.warning("emergency %s: %s finished its work after SIGTERM", emergency_id, task_id)
    return True
