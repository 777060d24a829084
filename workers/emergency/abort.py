"""``should_abort()``: a running job asks, cheaply, whether it has been told to stop.

It is told to stop while an emergency's termination plan is in force (read
from this process's status cache: no I/O) unless the emergency's policy
admits the job or ``allow_operation_completion`` exempted it, and when an
operator asked this one job to stop (``request_abort``). Redis is asked at
most every ``POLL_INTERVAL`` seconds per job: its abort flag, and (only while
a plan is in force) its exemption.

A job that was told and stops has not finished its work: when it ends, it
is recorded as stopped (outcome ``aborted``) and requeued after the
emergency like a terminated one -- unless its task says ``rerun_safe=False``.
So is a job that ends because maintenance refused one of its writes or
publishes (an ``OperationBlocked`` in its exception chain): outcome
``interrupted``, the refusal kept as its reason. Either ends ``STOPPED`` in
Celery (result backend and Flower), never ``SUCCESS``/``FAILURE``
(``workers.emergency.stopped``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from celery import current_task

from maintenance import EnhancedMaintenanceModeService
from maintenance.domain.emergency_plan import OUTCOME_ABORTED, OUTCOME_INTERRUPTED, plan_of
from maintenance.errors import MaintenanceError, OperationBlocked
from maintenance.job_flags import JobFlags
from maintenance.redisconn import REDIS_ERRORS

from ..binding import binding_of
from . import handoff, jobinfo, outcomes

log = logging.getLogger("maintenance.emergency")
POLL_INTERVAL = 0.1
FLAG_TTL = 3600


@dataclass
class _Watch:
    """What this process knows about one running job that asked."""

    task_id: str
    checked: float = float("-inf")
    told_job: bool = False
    allowed: bool = False  # allow_operation_completion (read only while a plan is in force)
    allowed_read: bool = False  # whether the last poll read ``allowed``
    exempt_version: int = -1
    exempt: bool = False
    stopped_by: str | None = None  # emergency id (or "request") once it was told
    activation_id: str | None = None


_watches: dict[str, _Watch] = {}


def _binding_of(task: Any) -> Any:
    return binding_of(getattr(task, "app", None))


def _service_of(task: Any) -> EnhancedMaintenanceModeService | None:
    binding = _binding_of(task)
    return binding.try_service() if binding is not None else None


def should_abort(task: Any = None) -> bool:
    """True once the running job (``task``, default: the current one) must stop.

    Stop at the next safe point: save what can be saved and return (or raise).
    Outside a job, or without the maintenance hooks, always False.
    """
    task = task if task is not None else current_task._get_current_object()
    request = getattr(task, "request", None)
    task_id = getattr(request, "id", None)
    if task_id is None or getattr(request, "called_directly", True):
        return False
    service = _service_of(task)
    if service is None:
        return False
    watch = _watches.get(task_id)
    if watch is None:
        watch = _watches[task_id] = _Watch(task_id)
    if watch.stopped_by is not None:
        return True
    status = service.status
    emergency = plan_of(status) is not None
    now = time.monotonic()
    # A plan that came into force since the last poll: its exemption is read at once.
    if now - watch.checked >= POLL_INTERVAL or (emergency and not watch.allowed_read):
        _poll(service, watch, now, emergency)
    if emergency and not watch.allowed and not _exempt(service, task, watch, status.version):
        watch.stopped_by = status.emergency_id
    elif watch.told_job:
        watch.stopped_by = "request"
    if watch.stopped_by is None:
        return False
    watch.activation_id = status.activation_id
    log.warning("job %s[%s] told to stop (%s)", task.name, task_id, watch.stopped_by)
    return True


def _poll(
    service: EnhancedMaintenanceModeService, watch: _Watch, now: float, emergency: bool
) -> None:
    # ``allow_operation_completion`` matters only while a plan is in force.
    watch.checked, watch.allowed_read = now, emergency
    try:
        flags = JobFlags(service.redis, service.keys)
        watch.told_job, watch.allowed = flags.poll(watch.task_id, completion=emergency)
    except REDIS_ERRORS:
        return  # the status cache still answers for the emergency


def _exempt(
    service: EnhancedMaintenanceModeService, task: Any, watch: _Watch, version: int
) -> bool:
    # Judged against the status in force now, not the one the job started under.
    if watch.exempt_version != version:
        headers = vars(task.request)
        operation = jobinfo.operation_of(service, task.app, task.name, headers)
        watch.exempt = jobinfo.exempt_by_policy(service, operation, headers)
        watch.exempt_version = version
    return watch.exempt


def request_abort(
    service: EnhancedMaintenanceModeService, task_id: str, ttl: int = FLAG_TTL
) -> None:
    """Ask one running job to stop cooperatively (it sees it within ``POLL_INTERVAL``)."""
    JobFlags(service.redis, service.keys).request_abort(task_id, ttl)


def on_postrun(
    sender: Any = None,
    task_id: str | None = None,
    task: Any = None,
    state: str | None = None,
    retval: Any = None,
    **_: Any,
) -> None:
    """Pool child, after the job (``task_postrun``, connected by ``signals.emergency``): a
    job that was told to stop is recorded as stopped, one that failed on a maintenance
    refusal as interrupted; one that finished its work during an emergency is never rerun
    (it may have been SIGTERMed and ignored it)."""
    if task_id is None:
        return
    watch = _watches.pop(task_id, None)
    service = _service_of(task)
    if service is None:
        return
    if watch is not None and watch.stopped_by is not None:
        _hand_over(service, task, _stopped_entry(service, task, watch))
        return
    status = service.status
    # A retry is Celery running the job again, not maintenance stopping it.
    refusal = refused_by_maintenance(retval) if state not in ("SUCCESS", "RETRY") else None
    if refusal is not None:
        _hand_over(service, task, _interrupted_entry(service, task, refusal))
        return
    if state == "SUCCESS" and status.emergency_id and plan_of(status) is not None:
        entry = handoff.encode(handoff.COMPLETED, emergency_id=status.emergency_id, task_id=task_id)
        _hand_over(service, task, entry)


@dataclass(frozen=True)
class Stop:
    """How a job that maintenance stopped ended: its outcome, why, and the emergency."""

    outcome: str
    reason: str
    emergency_id: str | None


def stop_of(task: Any, error: BaseException | None) -> Stop | None:
    """Whether the job ``task`` runs, ending now (raising ``error``, or None: returning), was
    stopped by maintenance: told to stop (``aborted``) or refused a write or publish
    (``interrupted``). The same judgement ``on_postrun`` records; None outside a job."""
    task_id = getattr(getattr(task, "request", None), "id", None)
    service = _service_of(task)
    if task_id is None or service is None:
        return None
    watch = _watches.get(task_id)
    if watch is not None and watch.stopped_by is not None:
        emergency_id = watch.stopped_by if watch.stopped_by != "request" else None
        return Stop(OUTCOME_ABORTED, _stop_reason(watch), emergency_id)
    refusal = refused_by_maintenance(error)
    if refusal is None:
        return None
    return Stop(OUTCOME_INTERRUPTED, _refusal_reason(refusal), service.status.emergency_id)


def _stop_reason(watch: _Watch) -> str:
    return f"stopped on request ({watch.stopped_by})"


def _refusal_reason(refusal: OperationBlocked) -> str:
    refused = getattr(refusal, "operation", None)
    what = getattr(refused, "value", refused) or "an operation"
    return f"maintenance refused {what}: {refusal}"[:500]


def _stopped_entry(service: EnhancedMaintenanceModeService, task: Any, watch: _Watch) -> str:
    headers = vars(task.request)
    operation = jobinfo.operation_of(service, task.app, task.name, headers).value
    record = jobinfo.record_from_context(
        task,
        operation=operation,
        outcome=OUTCOME_ABORTED,
        reason=_stop_reason(watch),
        activation_id=watch.activation_id,
    )
    emergency_id = watch.stopped_by if watch.stopped_by != "request" else None
    outcomes.count(service, emergency_id, **{OUTCOME_ABORTED: 1})
    return handoff.encode(handoff.STOPPED, emergency_id=emergency_id, record=record)


def refused_by_maintenance(error: Any) -> OperationBlocked | None:
    """The ``OperationBlocked`` that ``error`` is, or was raised from or while handling."""
    seen: set[int] = set()
    while isinstance(error, BaseException) and id(error) not in seen:
        if isinstance(error, OperationBlocked):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _interrupted_entry(
    service: EnhancedMaintenanceModeService, task: Any, refusal: OperationBlocked
) -> str:
    headers = vars(task.request)
    operation = jobinfo.operation_of(service, task.app, task.name, headers).value
    status = service.status
    record = jobinfo.record_from_context(
        task,
        operation=operation,
        outcome=OUTCOME_INTERRUPTED,
        reason=_refusal_reason(refusal),
        activation_id=status.activation_id,
    )
    outcomes.count(service, status.emergency_id, **{OUTCOME_INTERRUPTED: 1})
    return handoff.encode(handoff.STOPPED, emergency_id=status.emergency_id, record=record)


def _hand_over(service: EnhancedMaintenanceModeService, task: Any, entry: str) -> None:
    node = getattr(_binding_of(task), "worker_node_id", None)
    if node is not None:
        try:
            handoff.push(service.redis, service.keys, node, entry)
            return
        except REDIS_ERRORS as exc:
            log.warning("emergency handoff unavailable (%s); writing it here", exc)
    actor = str(getattr(task.request, "hostname", None) or "worker")
    try:
        handoff.apply_entries(service, [json.loads(entry)], actor)
    except MaintenanceError as exc:
        log.error("job %s stopped but NOT recorded (%s): %s", task.request.id, exc, entry)
