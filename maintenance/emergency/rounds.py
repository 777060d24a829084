"""Following a termination round: where it (and the emergency) stands, job by job, and the
watch that waits for every live worker's ladder -- moving the phases on itself when no
worker is there to. Read from the fleet board, the job registry and SQL; no Celery."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..domain.emergency_plan import (
    OUTCOMES,
    PHASE_TERMINATED,
    PHASE_TERMINATING,
    TerminationPlan,
    emergency_facts,
    plan_of,
)
from ..domain.status import MaintenanceStatus
from ..job_registry import JobRegistry
from ..store.jobs import KIND_TERMINATED, JobStore
from . import phases
from .fleet import FleetBoard
from .results import EmergencyProgress, TerminationResult

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService

WATCH_INTERVAL = 0.2
#: How long a watch goes on past the SIGKILL deadline for slow workers to report.
WATCH_SLACK = 30.0
#: Consecutive looks finding no job running before a watch ends ahead of the SIGTERM.
IDLE_LOOKS = 2

ProgressCallback = Callable[[EmergencyProgress], None]


def emergency_progress(
    service: EnhancedMaintenanceModeService, status: MaintenanceStatus
) -> EmergencyProgress:
    """Phase, plan, outcome counts, running jobs and each worker's ladder under ``status``."""
    eid = status.emergency_id
    plan = plan_of(status)
    if eid is None:
        return EmergencyProgress(None, False, None, None, {}, [], [])
    board = FleetBoard(service.redis, service.keys)
    running = JobRegistry(service.redis, service.keys).running()
    return EmergencyProgress(
        emergency_id=eid,
        active=plan is not None or bool(emergency_facts(status)),
        phase=status.emergency_phase if status.is_active else None,
        plan=plan.to_dict() if plan else None,
        counts=board.read_counts(eid),
        running=[job.to_dict() for job in running],
        workers=[p.to_dict() for p in board.read_progress(eid).values()],
    )


def round_result(
    service: EnhancedMaintenanceModeService,
    plan: TerminationPlan,
    emergency_id: str,
    running_at_start: list[str],
) -> TerminationResult:
    """Where the round of ``plan`` stands now; ``running_at_start`` are the jobs that ran
    when it started (whatever is not accounted for finished on its own)."""
    status = service.state.load()
    records = JobStore(service.db).find(
        kind=KIND_TERMINATED, activation_id=status.activation_id, limit=None
    )
    mine = [
        r
        for r in records
        if r.created_at is None or r.created_at.timestamp() >= plan.started_at - 1.0
    ]
    by_outcome = {o: [r.to_dict() for r in mine if r.outcome == o] for o in OUTCOMES}
    progress = FleetBoard(service.redis, service.keys).read_progress(emergency_id)
    round_progress = [p for p in progress.values() if p.plan_id == plan.plan_id]
    unterminable = [
        {"task_id": job, "worker": p.hostname, "pool": p.pool}
        for p in round_progress
        for job in p.unterminable
    ]
    running = JobRegistry(service.redis, service.keys).running()
    accounted = {r.original_id for r in mine if r.outcome in OUTCOMES}
    accounted |= {str(u["task_id"]) for u in unterminable}
    still = {job.task_id for job in running}
    return TerminationResult(
        emergency_id=emergency_id,
        plan=plan,
        phase=status.emergency_phase if status.is_active else None,
        finished=not phases.unfinished_workers_of(service, emergency_id, plan.plan_id),
        timed_out=False,
        running_at_start=running_at_start,
        finished_on_their_own=[
            j for j in running_at_start if j not in accounted and j not in still
        ],
        by_outcome=by_outcome,
        unterminable=unterminable,
        still_running=[job.to_dict() for job in running],
        workers=[p.to_dict() for p in round_progress],
    )


def _await_phase(
    service: EnhancedMaintenanceModeService, plan: TerminationPlan, phase: str, deadline: float
) -> None:
    """Until the status shows ``phase`` of ``plan`` (or another round, or ``deadline``)."""
    while time.monotonic() < deadline:
        status = service.state.load()
        current = plan_of(status)
        if current is None or current.plan_id != plan.plan_id or status.emergency_phase == phase:
            return
        time.sleep(WATCH_INTERVAL)


def watch_round(
    service: EnhancedMaintenanceModeService,
    plan: TerminationPlan,
    emergency_id: str,
    running_at_start: list[str],
    *,
    timeout: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> TerminationResult:
    """Wait until every live worker finished its ladder of ``plan`` (or ``timeout``, by
    default ``WATCH_SLACK`` past the SIGKILL deadline), calling ``on_progress``."""
    limit = timeout if timeout is not None else plan.kill_at - time.time() + WATCH_SLACK
    deadline = time.monotonic() + max(0.0, limit)
    finished = timed_out = terminating = False
    idle = 0  # consecutive looks that found no job running
    while True:
        status = service.state.load()
        progress = emergency_progress(service, status)
        if on_progress is not None:
            on_progress(progress)
        current = plan_of(status)
        if current is None or current.plan_id != plan.plan_id:
            break  # lifted, or a new round took over
        idle = 0 if progress.running else idle + 1
        if idle >= IDLE_LOOKS and time.time() < plan.sigterm_at:
            # Nothing left to stop: the grace is not waited out.
            if not phases.advance_phase(
                service, emergency_id, PHASE_TERMINATED, "monitor", plan.plan_id
            ):
                _await_phase(service, plan, PHASE_TERMINATED, deadline)
            finished = True
            break
        if time.time() >= plan.sigterm_at:
            if not terminating:  # also when no worker is there to say so
                phases.advance_phase(
                    service, emergency_id, PHASE_TERMINATING, "monitor", plan.plan_id
                )
                terminating = True
            finished = not phases.unfinished_workers_of(service, emergency_id, plan.plan_id)
            if finished:
                if not phases.advance_phase(
                    service, emergency_id, PHASE_TERMINATED, "monitor", plan.plan_id
                ):
                    # A worker claimed the phase first: its write may not have landed yet.
                    _await_phase(service, plan, PHASE_TERMINATED, deadline)
                break
        if time.monotonic() >= deadline:
            timed_out = True
            break
        time.sleep(WATCH_INTERVAL)
    result = round_result(service, plan, emergency_id, running_at_start)
    result.finished, result.timed_out = finished, timed_out
    if on_progress is not None:
        on_progress(emergency_progress(service, service.state.load()))
    return result
