"""Whether the job running in this process is admitted work, for its sub-publishes.

A publish from inside a running job (retry, chain step, chord body, link
callback, sub-task) is a *continuation* of that job, allowed in NORMAL
maintenance, when the job itself is admitted work:

* it started while maintenance was off, or under an earlier activation; or
* its own message was a continuation or an admin bypass (stamped headers).

A job that started during the current maintenance for another reason (its
type is not blocked, e.g. a report) is not admitted: what it publishes is
new work and is judged as such. Kept per process, keyed by task id: the
publish happens in the same pool process as the job (``task_prerun`` fires
there too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maintenance import MaintenanceStatus
from workers.headers import BYPASS, CONTINUATION


@dataclass(frozen=True, slots=True)
class RunningJob:
    """What this process knows about a job it is running."""

    task_id: str
    operation: str
    activation_id: str | None  # the activation in force when it started (None: off)
    admitted: bool  # started while off, or its message was a continuation / bypass


_running: dict[str, RunningJob] = {}


def job_started(
    task_id: str, operation: str, status: MaintenanceStatus, request: Any
) -> RunningJob:
    """Remember a job that starts in this process now."""
    stamped = bool(request.get(CONTINUATION)) or request.get(BYPASS) is not None
    job = RunningJob(
        task_id=task_id,
        operation=operation,
        activation_id=status.activation_id if status.is_active else None,
        admitted=not status.is_active or stamped,
    )
    _running[task_id] = job
    return job


def job_ended(task_id: str) -> RunningJob | None:
    """Forget a job that ended; returns what was known about it."""
    return _running.pop(task_id, None)


def running_job(task_id: str) -> RunningJob | None:
    """The job ``task_id`` running in this process, if tracked."""
    return _running.get(task_id)


def running_jobs() -> dict[str, RunningJob]:
    """The live table of jobs running in this process (truthy while one runs)."""
    return _running


def any_running() -> bool:
    """Whether a job runs in this process (cheap: publishers outside workers never have one)."""
    return bool(_running)


def is_continuation(worker_task: Any, status: MaintenanceStatus) -> bool:
    """Whether a publish by ``worker_task`` (the running job) continues admitted work."""
    request = worker_task.request
    job = _running.get(request.id)
    if job is None:
        # Started outside our hooks (e.g. hooks installed late): it was running
        # before we could judge it, so treat it as work to let finish.
        return True
    return job.admitted or job.activation_id != status.activation_id
