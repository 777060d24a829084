"""Task -> operation type, with one documented precedence (the publish gate, the worker
gate, job tracking and the emergency all ask here).

1. per call: ``apply_async(..., operation_type="...")`` or ``headers={"operation_type": ...}``
2. per task: ``@app.task(operation_type="...")`` (Celery turns unknown task
   options into attributes of the task class, ``app/base.py`` ``_task_from_fun``)
3. the classifier's task rules on the task name (``MaintenanceOperationClassifier``)

Names not registered in the publishing process can only be classified by rule.
"""

from __future__ import annotations

from typing import Any

from maintenance import (
    EnhancedMaintenanceModeService,
    MaintenanceOperationClassifier,
    OperationType,
)
from maintenance.domain.operations import SEED_REGISTRY, OperationRegistry

from .headers import OPERATION as STAMPED_OPERATION

#: The per-call option / header and the per-task attribute naming an operation type.
OPTION = "operation_type"


def declared_operation(
    task: Any, operations: OperationRegistry = SEED_REGISTRY
) -> OperationType | None:
    """The ``operation_type`` a task class declares, if any; a name not in ``operations``
    (the app's vocabulary) raises ``ValueError`` listing the known ones."""
    declared = getattr(task, OPTION, None) if task is not None else None
    return operations.parse(declared) if declared else None


def resolve_operation(
    name: str,
    classifier: MaintenanceOperationClassifier,
    *,
    task: Any = None,
    override: str | OperationType | None = None,
) -> OperationType:
    """The operation type of task ``name`` (per call > per task > classifier)."""
    if override:
        return classifier.operations.parse(override)
    declared = declared_operation(task, classifier.operations)
    if declared is not None:
        return declared
    return classifier.classify_task(name)


def operation_of(
    service: EnhancedMaintenanceModeService,
    app: Any,
    name: str,
    headers: Any,
    task: Any = None,
) -> OperationType:
    """The operation type stamped on a message (``headers``), else the task's own.

    ``headers`` is anything with ``get`` (message headers, a task's request);
    ``task`` defaults to the task ``name`` registered on ``app``.
    """
    stamped = headers.get(STAMPED_OPERATION) if headers is not None else None
    if stamped:
        try:
            return service.operations.parse(stamped)
        except ValueError:
            pass
    if task is None:
        task = app.tasks.get(name)
    return resolve_operation(name, service.classifier, task=task)


def registered_task(app: Any, name: str) -> Any:
    """The locally registered task ``name`` without finalizing the app (as send_task does)."""
    get = getattr(app._tasks, "get", None)
    return get(name) if get is not None else None
