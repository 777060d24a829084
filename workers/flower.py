"""Flower-visible job states: custom ``task-deferred`` / ``task-requeued`` events.

Celery's event state turns an unknown ``task-<name>`` event into state
``<NAME>`` (``celery/events/state.py`` ``Task.event``), which is what Flower
shows. Such custom states outrank later received/started events of the same
id, which is one more reason a requeue publishes under a new task id.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from maintenance.store.jobs import JobRecord

log = logging.getLogger("maintenance.celery")

DEFERRED_EVENT = "task-deferred"
REQUEUED_EVENT = "task-requeued"
SENT_EVENT = "task-sent"


def send_deferred(eventer: Any, record: JobRecord) -> None:
    """Announce that ``record``'s job was deferred (state ``DEFERRED``)."""
    if eventer is None or not getattr(eventer, "enabled", False):
        return
    try:
        eventer.send(
            DEFERRED_EVENT,
            uuid=record.original_id,
            name=record.task_name,
            queue=record.queue,
            operation=record.operation,
            reason=record.reason,
            # Flower's task view shows only Celery's own fields: ``result`` carries why.
            result=f"deferred: {record.reason}" if record.reason else "deferred",
        )
    except Exception as exc:  # events are for watching; never fail the deferral
        log.warning("maintenance: task-deferred event for %s not sent: %s", record.original_id, exc)


def send_requeued(eventer: Any, record: JobRecord, new_id: str) -> None:
    """Old id shows ``REQUEUED`` with ``requeued_id``; the new id names where it came from."""
    if eventer is None:
        return
    try:
        eventer.send(
            REQUEUED_EVENT,
            uuid=record.original_id,
            name=record.task_name,
            queue=record.queue,
            requeued_id=new_id,
            result=f"requeued as {new_id}",  # the link, where Flower's task view shows it
        )
        eventer.send(
            SENT_EVENT,
            uuid=new_id,
            name=record.task_name,
            queue=record.queue,
            requeued_from=record.original_id,
        )
    except Exception as exc:
        log.warning("maintenance: task-requeued event for %s not sent: %s", record.original_id, exc)


@contextmanager
def dispatcher(app: Any) -> Iterator[Any]:
    """An enabled event dispatcher on ``app``'s broker (None if it cannot connect)."""
    try:
        manager = app.events.default_dispatcher(hostname=f"maintenance@{socket.gethostname()}")
        eventer = manager.__enter__()
    except Exception as exc:
        log.warning("maintenance: no event dispatcher (%s); Flower will not see requeues", exc)
        yield None
        return
    try:
        yield eventer
    finally:
        manager.__exit__(None, None, None)
