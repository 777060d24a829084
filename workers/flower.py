"""Flower-visible job states: custom ``task-deferred`` / ``task-requeued`` events.

Celery's event state turns an unknown ``task-<name>`` event into state
``<NAME>`` (``celery/events/state.py`` ``Task.event``), which is what Flower
shows. Such a custom state outranks later received/started events of the same
id but not ``SUCCESS``/``FAILURE``: a deferred job requeued under its own id shows
``DEFERRED``, ``REQUEUED``, then ``SUCCESS`` once it ran. An event that does not
change the state still overwrites the fields it carries, so the ``task-requeued``
of such a job carries no ``result`` (it may arrive after ``task-succeeded``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from maintenance.store.jobs import JobRecord

log = logging.getLogger("maintenance.celery")

DEFERRED_EVENT = "task-deferred"
REQUEUED_EVENT = "task-requeued"
SENT_EVENT = "task-sent"
#: Task events a dispatcher buffers at most before sending them (one message).
BUFFER_LIMIT = 1000


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


@contextmanager
def buffered(eventer: Any) -> Iterator[None]:
    """Within the block, a worker's dispatcher that buffers task events (Celery's, with an
    event loop: ``buffer_group`` task, flushed by the loop after the current callback)
    holds up to ``BUFFER_LIMIT`` of them instead of its 24 before it sends a message:
    a batch of 500 deferrals goes out as one ``task.multi`` message, not 21."""
    groups = getattr(eventer, "buffer_group", None)
    limit = getattr(eventer, "buffer_limit", None)
    if not groups or "task" not in groups or not isinstance(limit, int) or limit >= BUFFER_LIMIT:
        yield
        return
    eventer.buffer_limit = BUFFER_LIMIT
    try:
        yield
    finally:
        eventer.buffer_limit = limit


def send_requeued(eventer: Any, record: JobRecord, new_id: str) -> None:
    """Old id shows ``REQUEUED`` with ``requeued_id``; the new id names where it came from.
    A job requeued under its own id gets only ``task-requeued``, without ``result``.

    Sent in the name of the worker that held the job back (a ``Dispatchers`` from
    ``dispatcher``): Flower lists every event's sender as a worker, and a sender that is
    no worker would show as one."""
    if isinstance(eventer, Dispatchers):
        eventer = eventer.on_behalf_of(record.worker)
    if eventer is None:
        return
    try:
        if new_id == record.original_id:
            eventer.send(
                REQUEUED_EVENT,
                uuid=record.original_id,
                name=record.task_name,
                queue=record.queue,
                requeued_id=new_id,
            )
            return
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


class Dispatchers:
    """Event dispatchers on one app's broker, one per worker hostname, opened on first use."""

    def __init__(self, app: Any, stack: ExitStack) -> None:
        self.app = app
        self.stack = stack
        self.by_host: dict[str, Any] = {}

    def on_behalf_of(self, hostname: str | None) -> Any:
        """An enabled dispatcher sending as ``hostname`` (None: no worker to speak for, or
        the broker cannot be reached)."""
        if not hostname:
            return None
        if hostname not in self.by_host:
            try:
                manager = self.app.events.default_dispatcher(hostname=hostname)
                sender = self.stack.enter_context(manager)
                # Task events wait for ``flush`` and go out as one message per batch
                # (``task.multi``; Celery's receivers, Flower's too, take a list of events).
                sender.buffer_group = frozenset({"task"})
                sender.buffer_limit = BUFFER_LIMIT
                self.by_host[hostname] = sender
            except Exception as exc:
                log.warning("maintenance: no event dispatcher (%s); Flower misses requeues", exc)
                self.by_host[hostname] = None
        return self.by_host[hostname]

    def flush(self) -> None:
        """Send the buffered events of every dispatcher (never raises)."""
        for sender in self.by_host.values():
            if sender is None:
                continue
            try:
                sender.flush()
            except Exception as exc:
                log.warning("maintenance: task events not sent: %s", exc)


def flush(eventer: Any) -> None:
    """Send what ``eventer`` (a ``Dispatchers``) buffered; other eventers send at once."""
    if isinstance(eventer, Dispatchers):
        eventer.flush()


@contextmanager
def dispatcher(app: Any) -> Iterator[Dispatchers]:
    """Event dispatchers on ``app``'s broker for ``send_requeued``; task events are
    buffered until ``flush`` (done on exit too) and closed on exit."""
    with ExitStack() as stack:
        dispatchers = Dispatchers(app, stack)
        try:
            yield dispatchers
        finally:
            dispatchers.flush()
