"""Who is writing: contexts that let guarded sessions tell continuations and escapes apart.

A job that started before maintenance came into force is finishing work, not
starting it: its writes are *continuations* (allowed in NORMAL maintenance,
refused in EMERGENCY). ``allow_writes`` is the explicit escape for the app's
own repair scripts. Both are context variables, so threads and asyncio tasks
each see their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ..domain.status import MaintenanceStatus


@dataclass(frozen=True)
class JobScope:
    """A running job whose writes are being made."""

    job_id: str
    activation_id: str | None  # the activation in force when the job started (None: off)


_job: ContextVar[JobScope | None] = ContextVar("maintenance_integrity_job", default=None)
_escape: ContextVar[str | None] = ContextVar("maintenance_integrity_escape", default=None)


@contextmanager
def job_writes(job_id: str, activation_id: str | None) -> Iterator[JobScope]:
    """Within the block, writes belong to job ``job_id``, which started under
    ``activation_id`` (pass ``None`` when maintenance was off at its start)."""
    scope = JobScope(job_id, activation_id)
    token = _job.set(scope)
    try:
        yield scope
    finally:
        _job.reset(token)


@contextmanager
def allow_writes(reason: str) -> Iterator[None]:
    """Within the block, guarded sessions let every write through (``reason`` is logged)."""
    if not reason or not reason.strip():
        raise ValueError("allow_writes needs a reason")
    token = _escape.set(reason)
    try:
        yield
    finally:
        _escape.reset(token)


def current_job() -> JobScope | None:
    """The job whose writes are being made in this context, if any."""
    return _job.get()


def escape_reason() -> str | None:
    """Why every write is allowed in this context (``allow_writes``), if it is."""
    return _escape.get()


def is_continuation(status: MaintenanceStatus) -> bool:
    """Whether writes made now continue a job that started before the current activation."""
    job = _job.get()
    return job is not None and job.activation_id != status.activation_id
