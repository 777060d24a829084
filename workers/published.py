"""Whether a publish reached the broker: Celery sends ``after_task_publish`` right after
the producer published (``amqp.send_task_message``), in the publishing thread.

A ``send_task`` call can fail *after* its message went out -- building the result
backend for the ``AsyncResult`` it returns (a backend URL Celery cannot load), a
broken ``add_to_parent`` -- and a caller that took such a failure for "nothing was
sent" would publish the job again. ``watch`` collects the task ids published inside it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from celery.signals import after_task_publish

_seen: ContextVar[set[str] | None] = ContextVar("maintenance_published_ids", default=None)


def _on_publish(
    sender: Any = None, headers: Mapping[str, Any] | None = None, body: Any = None, **_: Any
) -> None:
    seen = _seen.get()
    if seen is None:
        return
    task_id = (headers or {}).get("id")
    if task_id is None and isinstance(body, Mapping):  # protocol 1 keeps the id in the body
        task_id = body.get("id")
    if task_id is not None:
        seen.add(str(task_id))


after_task_publish.connect(_on_publish, weak=False, dispatch_uid="maintenance.published")


@contextmanager
def watch() -> Iterator[set[str]]:
    """The ids of the task messages published inside this block (this thread/context)."""
    seen: set[str] = set()
    token = _seen.set(seen)
    try:
        yield seen
    finally:
        _seen.reset(token)
