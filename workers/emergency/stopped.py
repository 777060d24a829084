"""A job that maintenance stopped ends as ``STOPPED`` in Celery too, with its reason.

A job told to stop (``should_abort()``) returns normally and one whose write or
publish maintenance refused raises: Celery would report ``SUCCESS`` or
``FAILURE``, and nothing outranks either in Celery's event state
(``celery/events/state.py`` ``Task.event``), which is what Flower shows. So in
each worker every task's ``run`` is wrapped (as Celery itself wraps it for
``autoretry_for``): a run that ends stopped (``abort.stop_of``)

1. writes the result-backend state ``STOPPED``, result
   ``{"outcome", "reason", "emergency_id"}``;
2. sends the event ``task-stopped`` in the worker's name (Flower: state
   ``STOPPED``, its ``result`` "<outcome>: <reason>");
3. raises ``JobStopped``, a Celery ``Ignore``: the worker stores no result,
   sends no ``task-succeeded``/``task-failed``, applies no callbacks or
   errbacks, fires neither ``task_success`` nor ``task_failure``, and
   acknowledges the message. ``task_postrun`` sees state ``IGNORED`` and
   records the job as before (``abort.on_postrun``).

A requeue at the lift replaces both with ``REQUEUED`` naming the new id: a custom
state follows another custom state in Celery's event state.

Owner of the ``STOPPED`` result-backend entries and ``task-stopped`` events.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery.exceptions import Ignore, TaskPredicate

from . import abort

log = logging.getLogger("maintenance.emergency")

#: Result-backend state (and Flower state) of a job that maintenance stopped.
STOPPED_STATE = "STOPPED"
#: The event Celery's event state turns into ``STOPPED``.
STOPPED_EVENT = "task-stopped"
_WRAPPED = "_maintenance_stop_aware"


class JobStopped(Ignore):
    """The job was stopped by maintenance (``outcome`` ``aborted`` or ``interrupted``)."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(outcome, reason)
        self.outcome = outcome
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.outcome}: {self.reason}"


def wrap_tasks(app: Any) -> int:
    """Make every task of ``app`` end stopped when maintenance stopped it (idempotent; call
    in the worker main process before its pool starts). Returns how many were wrapped."""
    wrapped = 0
    for name, task in list(app.tasks.items()):
        if name.startswith("celery.") or getattr(task, _WRAPPED, False):
            continue
        task.run = _stop_aware(task, task.run)
        setattr(task, _WRAPPED, True)
        wrapped += 1
    return wrapped


def _stop_aware(task: Any, run: Any) -> Any:
    @functools.wraps(run)
    def run_then_check(*args: Any, **kwargs: Any) -> Any:
        try:
            retval = run(*args, **kwargs)
        except TaskPredicate:  # Celery's own endings (retry, reject, ignore)
            raise
        except Exception as exc:
            _end_if_stopped(task, exc)
            raise
        _end_if_stopped(task, None)
        return retval

    return run_then_check


def _end_if_stopped(task: Any, error: Exception | None) -> None:
    stop = abort.stop_of(task, error)
    if stop is None:
        return
    announce(task, stop)
    raise JobStopped(stop.outcome, stop.reason) from error


def announce(task: Any, stop: abort.Stop) -> None:
    """Result backend ``STOPPED`` and a ``task-stopped`` event for the running job (never
    raises: the record in SQL is what counts)."""
    meta = {"outcome": stop.outcome, "reason": stop.reason, "emergency_id": stop.emergency_id}
    try:
        task.update_state(state=STOPPED_STATE, meta=meta)
    except Exception as exc:  # no result backend, or it is down
        log.warning("job %s: result state %s not stored: %s", task.request.id, STOPPED_STATE, exc)
    if task.send_events is False:
        return
    try:
        task.send_event(
            STOPPED_EVENT, name=task.name, **meta, result=f"{stop.outcome}: {stop.reason}"
        )
    except Exception as exc:
        log.warning("job %s: %s event not sent: %s", task.request.id, STOPPED_EVENT, exc)
