"""Jobs: starting one (a row, then a Celery publish) and running one (state, progress, result).

The row is committed before the publish, so a worker never looks for a job
that is not there yet; a publish refused by maintenance marks it ``refused``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session

from maintenance import OperationBlocked
from maintenance.integrity import allow_writes

from .models import Job, User, utcnow

#: A file whose presence holds every job past its duration until it is removed (a
#: walkthrough or a test releases its jobs when it has looked at them, whatever the
#: machine's load). Unset: jobs take their duration and no more.
HOLD_FILE_ENV = "CAPTIONER_HOLD_FILE"
#: Job states a worker is (or may soon be) working on.
OPEN_STATES = ("queued", "running")
INTERRUPTED = "interrupted"


class JobCancelled(Exception):
    """The job was cancelled while it ran."""


class JobAborted(Exception):
    """An emergency told the job to stop; it runs again after the recovery requeue."""


def told_to_stop() -> bool:
    """Whether an emergency asks the running job to stop (False without the Celery side)."""
    try:
        from workers import should_abort
    except ImportError:  # the Celery side of maintenance is optional for this app
        return False
    return should_abort()


def start_job(
    session: Session,
    celery: Celery,
    owner: User,
    kind: str,
    task_name: str,
    *,
    params: dict[str, Any] | None = None,
    total: int = 0,
    **task_kwargs: Any,
) -> Job:
    """Record a job for ``owner`` and publish its task; ``OperationBlocked`` if refused."""
    job = Job(
        owner_id=owner.id,
        kind=kind,
        task_name=task_name,
        task_id=str(uuid.uuid4()),
        params_json=json.dumps(params or {}, sort_keys=True),
        total=total,
    )
    session.add(job)
    session.commit()
    try:
        celery.send_task(
            task_name,
            kwargs={"job_id": job.id, "requested_by": owner.id, **task_kwargs},
            task_id=job.task_id,
        )
    except OperationBlocked:
        # Maintenance came into force between the commit and the publish; the
        # row must say so (a write the guard would refuse, hence the escape).
        with allow_writes("withdraw a job whose publish was refused"):
            job.status = "refused"
            job.finished_at = utcnow()
            session.commit()
        raise
    return job


@contextmanager
def job_running(
    session: Session, job_id: int, task_id: str | None, *, rerun_safe: bool = True
) -> Iterator[Job | None]:
    """Mark job ``job_id`` running for the block, then done (committing the block's work)
    or failed. Yields None when the job is gone or was cancelled before it started.

    A job that an emergency told to stop, or whose writes maintenance refused (the final
    commit included), is marked ``interrupted`` with the reason: it runs again after the
    recovery, or (``rerun_safe=False``) waits for an operator."""
    job = session.get(Job, job_id)
    if job is None or job.status == "cancelled":
        yield None
        return
    job.status = "running"
    job.started_at = utcnow()
    job.runs += 1
    job.error = None
    if task_id:
        job.task_id = task_id  # a job stopped in an emergency reruns under a new id
    session.commit()
    try:
        yield job
        job.status = "done"
        job.finished_at = utcnow()
        session.commit()
    except JobCancelled:
        session.rollback()
        return
    except JobAborted:
        session.rollback()
        _mark_interrupted(session, job, "stopped by an emergency", rerun_safe)
        return
    except Exception as exc:
        session.rollback()
        refusal = _refusal_in(exc)
        if refusal is None:
            _mark_failed(session, job, exc)
        else:
            _mark_interrupted(session, job, f"maintenance refused a write: {refusal}", rerun_safe)
        raise


def _mark_failed(session: Session, job: Job, exc: BaseException) -> None:
    job.status = "failed"
    job.error = f"{type(exc).__name__}: {exc}"[:500]
    job.finished_at = utcnow()
    try:
        session.commit()
    except OperationBlocked:
        # Emergency maintenance refuses even this write: the job stays "running"
        # until its requeued run finishes; the consistency check reports it.
        session.rollback()


def _refusal_in(error: BaseException | None) -> OperationBlocked | None:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OperationBlocked):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _mark_interrupted(session: Session, job: Job, why: str, rerun_safe: bool) -> None:
    # The job's own bookkeeping: the guard refuses an emergency's writes, but the
    # row must not claim the job still runs (the consistency check would say so).
    then = (
        "it runs again after the recovery"
        if rerun_safe
        else "not safe to run again: an operator decides"
    )
    with allow_writes("record that maintenance stopped a job"):
        job.status = INTERRUPTED
        job.error = f"{why}; {then}"[:500]
        session.commit()


def held() -> bool:
    """Whether the hold file (``CAPTIONER_HOLD_FILE``) holds jobs past their duration."""
    path = os.environ.get(HOLD_FILE_ENV)
    return bool(path) and os.path.exists(str(path))


def simulate_work(session: Session, job: Job, seconds: float) -> None:
    """Take ``seconds`` (the latency of a real model or platform API), and longer while
    ``held()``, stopping with ``JobCancelled`` soon after the job is cancelled and with
    ``JobAborted`` when an emergency tells it to stop."""
    deadline = time.monotonic() + seconds
    next_check = 0.0
    while (left := deadline - time.monotonic()) > 0 or held():
        if told_to_stop():
            raise JobAborted(job.id)
        if time.monotonic() >= next_check:
            session.refresh(job, ["status"])
            if job.status == "cancelled":
                raise JobCancelled(job.id)
            next_check = time.monotonic() + 0.25
        time.sleep(min(left, 0.05) if left > 0 else 0.05)


def external_call(seconds: float) -> None:
    """One blocking call to something outside (an encoder, a platform's upload API):
    it cannot stop half-way, so it never asks whether to stop (it lasts longer while
    ``held()``)."""
    time.sleep(seconds)
    while held():
        time.sleep(0.05)


@contextmanager
def sigterm_held_off() -> Iterator[None]:
    """Ignore SIGTERM for the block (an upload that must not be cut in half);
    SIGKILL still ends the process. Only in a process's main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def set_result(job: Job, result: Any) -> None:
    """Store what the job produced."""
    job.result_json = json.dumps(result, sort_keys=True, default=str)
