"""Job tracking receivers: keep the Redis active-job registry current.

``task_prerun``/``task_postrun`` fire in the pool child that runs the job,
``task_revoked`` in the worker main process and ``task_failure`` in either
(the main process reports a lost pool child as ``WorkerLostError``), so all
of them write to Redis, never to process memory. When a job of a blocked type
ends during maintenance, the drain is checked.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery.signals import task_failure, task_postrun, task_prerun, task_revoked

from maintenance import EnhancedMaintenanceModeService
from maintenance.modes import parse_operation
from maintenance.redisconn import REDIS_ERRORS
from workers.drain import announce_if_drained
from workers.registry import RUNNING, ActiveJob, JobRegistry

from . import admission, stamping
from .binding import Binding, binding_of
from .operations import resolve_operation

log = logging.getLogger("maintenance.celery")


def _binding(task: Any) -> Binding | None:
    app = getattr(task, "app", None) if task is not None else None
    binding = binding_of(app) if app is not None else None
    if binding is None or binding.try_service() is None:
        return None
    return binding


def operation_of_request(binding: Binding, task: Any, request: Any) -> str:
    """The stamped operation type of the running message, else the task's own."""
    stamped = request.get(stamping.OPERATION) if request is not None else None
    if stamped:
        try:
            return parse_operation(stamped).value
        except ValueError:
            pass
    return resolve_operation(task.name, binding.service.classifier, task=task).value


def on_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Pool child, before the job body: register it as running."""
    binding = _binding(task)
    if binding is None or task_id is None:
        return
    service = binding.service
    status = service.status
    request = task.request
    operation = operation_of_request(binding, task, request)
    admission.job_started(task_id, operation, status, request)
    job = ActiveJob(
        task_id=task_id,
        name=task.name,
        operation=operation,
        worker=request.hostname or binding.hostname,
        node=binding.worker_node_id,
        pid=os.getpid(),
        started=time.time(),
        state=RUNNING,
        activation_id=status.activation_id if status.is_active else None,
    )
    try:
        JobRegistry(service).add(job)
    except REDIS_ERRORS as exc:
        log.warning("maintenance: job %s not registered as running: %s", task_id, exc)


def _ended(binding: Binding, task_id: str, operation: str | None, announce: bool = True) -> None:
    service = binding.service
    try:
        JobRegistry(service).remove(task_id)
        status = service.status
        if (
            announce
            and status.is_active
            and not status.test_mode
            and (operation is None or operation in {op.value for op in status.blocked_operations})
        ):
            announce_if_drained(service, status, actor=binding.hostname or "worker")
    except REDIS_ERRORS as exc:
        log.warning("maintenance: job %s not removed from the registry: %s", task_id, exc)


def on_postrun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Pool child, after the job (success, failure or retry): unregister it."""
    binding = _binding(task)
    if binding is None or task_id is None:
        return
    job = admission.job_ended(task_id)
    _ended(binding, task_id, job.operation if job else None)


def on_failure(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    """Either process: a lost pool child is reported here by the main process."""
    binding = _binding(sender)
    if binding is None or task_id is None:
        return
    admission.job_ended(task_id)
    _ended(binding, task_id, None)


def on_revoked(sender: Any = None, request: Any = None, terminated: bool = False, **_: Any) -> None:
    """Main process: a revoked (or terminated) job will not reach ``task_postrun``.

    Celery sends ``task_revoked`` as the terminate signal is *sent*
    (``Request.terminate`` in ``celery/worker/request.py``); a process holding
    SIGTERM off runs on, so a termination never announces the drain here (the
    emergency ladder keeps such jobs listed until their process is gone, and
    the beat check announces the drain once nothing runs).
    """
    binding = _binding(sender)
    task_id = getattr(request, "id", None)
    if binding is None or task_id is None:
        return
    _ended(binding, task_id, None, announce=not terminated)


def connect() -> None:
    """Connect the receivers once per process (idempotent)."""
    task_prerun.connect(on_prerun, weak=False, dispatch_uid="maintenance-prerun")
    task_postrun.connect(on_postrun, weak=False, dispatch_uid="maintenance-postrun")
    task_failure.connect(on_failure, weak=False, dispatch_uid="maintenance-failure")
    task_revoked.connect(on_revoked, weak=False, dispatch_uid="maintenance-revoked")


def service_of(task: Any) -> EnhancedMaintenanceModeService | None:
    """The service the hooks of ``task``'s app use, if installed."""
    binding = _binding(task)
    return binding.service if binding is not None else None
