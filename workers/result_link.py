"""Task ids that keep working after a requeue: the old id's result names the new one.

A deferred job is requeued under its own id (``workers.requeue.requeue_id``): nothing
to link, ``AsyncResult(id)`` simply ends with the result. A terminated job runs again
under a new task id (a revoked id stays blacklisted in the workers). So that an id
handed to a user still leads to the result, the recovery
writes, for the old id, the result-backend state ``REQUEUED`` with the result
``{"requeued_as": <new id>}``: ``AsyncResult(old_id).state == "REQUEUED"`` and
``AsyncResult(old_id).result["requeued_as"]`` is the new id. ``current_id`` and
``current_result`` follow such links (a job requeued twice has two).

Owner of the ``REQUEUED`` entries a recovery writes into the app's result backend.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("maintenance.celery")

#: The result-backend state of an id whose job runs again under another id.
REQUEUED_STATE = "REQUEUED"
#: Key of the new id in that state's result.
REQUEUED_AS = "requeued_as"
#: Links followed at most (a job is not requeued more often than this).
MAX_HOPS = 50


def link(app: Any, old_id: str, new_id: str) -> None:
    """Record in ``app``'s result backend that ``old_id`` runs again as ``new_id`` (never
    raises: without a result backend there is nothing to follow)."""
    if old_id == new_id:
        return
    result = {REQUEUED_AS: new_id}
    try:
        backend = app.backend  # building it may fail too
        if hasattr(backend, "_set_with_state") and hasattr(backend, "get_key_for_task"):
            # A key-value backend keeps a SUCCESS against any later state (a job stopped in
            # a task the worker did not wrap, ``workers.emergency.stopped``, may have left
            # one): this entry replaces it on purpose.
            meta = backend._get_result_meta(
                result=result, state=REQUEUED_STATE, traceback=None, request=None
            )
            meta["task_id"] = old_id
            key = backend.get_key_for_task(old_id)
            backend._set_with_state(key, backend.encode(meta), REQUEUED_STATE)
        else:
            backend.store_result(old_id, result, REQUEUED_STATE)
    except Exception as exc:
        log.warning(
            "maintenance: %s not linked to %s in the result backend: %s", old_id, new_id, exc
        )


def current_id(app: Any, task_id: str) -> str:
    """The id ``task_id``'s job runs (or ran) under now: itself unless it was requeued
    under a new id (a job requeued under its own id is its own current id)."""
    seen = {task_id}
    for _ in range(MAX_HOPS):
        try:
            meta = app.backend.get_task_meta(task_id)
        except Exception:
            return task_id
        result = meta.get("result")
        if meta.get("status") != REQUEUED_STATE or not isinstance(result, dict):
            return task_id
        new_id = result.get(REQUEUED_AS)
        if not isinstance(new_id, str) or new_id in seen:
            return task_id
        seen.add(new_id)
        task_id = new_id
    return task_id


def current_result(app: Any, task_id: str) -> Any:
    """``AsyncResult`` of the id ``task_id``'s job runs under now (see ``current_id``)."""
    return app.AsyncResult(current_id(app, task_id))
