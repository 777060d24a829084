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

from maintenance.job_registry import RUNNING, ActiveJob, JobRegistry
from maintenance.redisconn import REDIS_ERRORS
from workers.binding import Binding, binding_of
from workers.drain import announce_if_drained
from workers.held import is_held
from workers.operations import operation_of

from . import admission

log = logging.getLogger("maintenance.celery")


def _binding(task: Any) -> Binding | None:
    app = getattr(task, "app", None) if task is not None else None
    binding = binding_of(app) if app is not None else None
    if binding is None or binding.try_service() is None:
        return None
    return binding


def operation_of_request(binding: Binding, task: Any, request: Any) -> str:
    """The stamped operation type of the running message, else the task's own."""
    return operation_of(binding.service, task.app, task.name, request, task).value


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
        JobRegistry(service.redis, service.keys).add(job)
    except REDIS_ERRORS as exc:
        log.warning("maintenance: job %s not registered as running: %s", task_id, exc)


def _ended(binding: Binding, task_id: str, operation: str | None, announce: bool = True) -> None:
    service = binding.service
    try:
        JobRegistry(service.redis, service.keys).end(task_id)
        status = service.status
        if announce and (operation is None or operation in status.blocked_operations):
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
    """Either process: a lost pool child is reported here by the main process.

    In the process running the job, ``task_postrun`` always follows (Celery's
    ``trace.py``) and does the clean-up.
    """
    if task_id is None or admission.running_job(task_id) is not None:
        return
    binding = _binding(sender)
    if binding is None:
        return
    _ended(binding, task_id, None)


def on_revoked(sender: Any = None, request: Any = None, terminated: bool = False, **_: Any) -> None:
    """Main process: a revoked (or terminated) job will not reach ``task_postrun``.

    Celery sends ``task_revoked`` as the terminate signal is *sent*
    (``Request.terminate`` in ``celery/worker/request.py``); a process holding
    SIGTERM off runs on, so a termination never announces the drain here (the
    emergency ladder terminates ``workers.held.holding`` its jobs, which keeps them listed
    until their process is gone, and the beat check announces the drain once
    nothing runs).
    """
    task_id = getattr(request, "id", None)
    if terminated and is_held(task_id):
        return
    binding = _binding(sender)
    if binding is None or task_id is None:
        return
    _ended(binding, task_id, None, announce=not terminated)


def connect() -> None:
    """Connect the receivers once per process (idempotent)."""
    task_prerun.connect(on_prerun, weak=False, dispatch_uid="maintenance-prerun")
    task_postrun.connect(on_postrun, weak=False, dispatch_uid="maintenance-postrun")
    task_failure.connect(on_failure, weak=False, dispatch_uid="maintenance-failure")
    task_revoked.connect(on_revoked, weak=False, dispatch_uid="maintenance-revoked")
