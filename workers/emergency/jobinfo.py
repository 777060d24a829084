"""What a worker knows about a running job: the record that lets it run again, whether the
task may be rerun, and whether the emergency leaves it alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from celery.app.task import Context

from maintenance import Decision, EnhancedMaintenanceModeService, OperationType
from maintenance.store.jobs import KIND_TERMINATED, JobRecord

from ..headers import bypass_user
from ..operations import operation_of as operation_of
from ..records import PROTOCOL_HEADERS, record_from_message
from ..records import record_from_request as request_record
from ..routing import broker_of

#: Attributes a task's ``Context`` has of its own, not taken from the message headers.
_CONTEXT_FIELDS = frozenset(name for name in vars(Context) if not name.startswith("_"))
_EMBED = ("callbacks", "errbacks", "chain", "chord")


def rerun_safe(task: Any) -> bool:
    """A task declared ``@app.task(rerun_safe=False)`` is listed after an emergency, not rerun."""
    return getattr(task, "rerun_safe", True) is not False


def exempt_by_policy(
    service: EnhancedMaintenanceModeService, operation: OperationType, headers: Mapping[str, Any]
) -> bool:
    """Whether the emergency's policy admits this job (admin work, an admin's bypass publish)."""
    return service.decide(operation, bypass_user(headers)) is Decision.ALLOW


def record_from_request(
    request: Any,
    *,
    operation: str,
    outcome: str,
    reason: str,
    worker: str | None,
    activation_id: str | None,
) -> JobRecord:
    """The record of a job the worker main process is about to stop (Celery's ``Request``)."""
    record = request_record(
        request,
        kind=KIND_TERMINATED,
        operation=operation,
        reason=reason,
        worker=worker,
        activation_id=activation_id,
        broker=broker_of(getattr(request.task, "app", None)),
    )
    return replace(record, outcome=outcome, rerun_safe=rerun_safe(request.task))


def record_from_context(
    task: Any,
    *,
    operation: str,
    outcome: str,
    reason: str,
    activation_id: str | None,
) -> JobRecord:
    """The record of the job running in this pool child, from its ``task.request``.

    The context holds the message headers, properties and delivery info beside
    attributes of its own; only the former describe the message.
    """
    request = task.request
    values = {k: v for k, v in vars(request).items() if not k.startswith("_")}
    headers = {k: v for k, v in values.items() if k in PROTOCOL_HEADERS or k not in _CONTEXT_FIELDS}
    embed = {k: values.get(k) for k in _EMBED}
    record = record_from_message(
        task_name=str(values.get("task") or task.name),
        task_id=request.id,
        headers=headers,
        payload=(list(request.args or ()), dict(request.kwargs or {}), embed),
        delivery_info=request.delivery_info,
        properties=values.get("properties"),
        operation=operation,
        reason=reason,
        worker=request.hostname,
        activation_id=activation_id,
        kind=KIND_TERMINATED,
        broker=broker_of(getattr(task, "app", None)),
    )
    return replace(record, outcome=outcome, rerun_safe=rerun_safe(task))
