"""The Celery app of the emergency tests: the fleet's test tasks plus jobs that stop when
asked, jobs that ignore the request, jobs that ignore SIGTERM, one not safe to rerun, and
one whose publish maintenance refuses, and one that retries when refused.

Each counts its starts (``starts:<label>``), its completed runs (``runs:<label>``) and
cooperative stops (``aborted:<label>``) in Redis, and holds until ``release:<hold>``.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from celery import Celery, current_app

from maintenance.errors import OperationBlocked
from tests.celery.app import counters, key
from tests.celery.app import make_app as make_fleet_app
from workers import should_abort
from workers.binding import binding_of

HOLD_LIMIT = 120.0
CAPTION = "caption_generation"


def _begin(label: str) -> None:
    client = counters()
    pipe = client.pipeline()
    pipe.set(key(f"started:{label}"), os.getpid())
    pipe.incr(key(f"starts:{label}"))
    pipe.execute()


def _released(hold: str) -> bool:
    return bool(counters().exists(key(f"release:{hold}")))


def _complete(label: str) -> str:
    counters().incr(key(f"runs:{label}"))
    return label


def cooperative(label: str, hold: str) -> str:
    """Polls ``should_abort()`` while it waits; stops (without completing) when told."""
    _begin(label)
    deadline = time.monotonic() + HOLD_LIMIT
    while not _released(hold) and time.monotonic() < deadline:
        if should_abort():
            counters().incr(key(f"aborted:{label}"))
            return "aborted"
        time.sleep(0.01)
    return _complete(label)


def stubborn(label: str, hold: str) -> str:
    """Never asks whether to stop."""
    _begin(label)
    deadline = time.monotonic() + HOLD_LIMIT
    while not _released(hold) and time.monotonic() < deadline:
        time.sleep(0.01)
    return _complete(label)


def unkillable(label: str, hold: str) -> str:
    """Ignores SIGTERM while it runs (restored after, so the pool child stays normal)."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        return stubborn(label, hold)
    finally:
        signal.signal(signal.SIGTERM, previous)


def publisher(label: str, hold: str, queue: str) -> str:
    """Waits, then publishes a caption job to ``queue``: refused during an emergency, so the
    job ends on a maintenance refusal (outcome ``interrupted``)."""
    _begin(label)
    deadline = time.monotonic() + HOLD_LIMIT
    while not _released(hold) and time.monotonic() < deadline:
        time.sleep(0.01)
    current_app.send_task("captions.generate_caption", args=(f"{label}-child",), queue=queue)
    return _complete(label)


def retrying(task: Any, label: str, hold: str) -> str:
    """Waits, then asks maintenance whether it may write; refused, it retries in a second
    (Celery runs it again: not a job maintenance stopped)."""
    if task.request.retries == 0:
        _begin(label)
        deadline = time.monotonic() + HOLD_LIMIT
        while not _released(hold) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            binding_of(task.app).service.check_operation(CAPTION)
        except OperationBlocked as exc:
            raise task.retry(exc=exc, countdown=1) from exc
    return _complete(label)


def register_emergency_tasks(app: Celery) -> dict[str, Any]:
    """Define the emergency test tasks on ``app``."""
    options = {"shared": False, "operation_type": CAPTION, "acks_late": True}
    return {
        "cooperative": app.task(name="emergency.cooperative", **options)(cooperative),
        "stubborn": app.task(name="emergency.stubborn", **options)(stubborn),
        "unkillable": app.task(name="emergency.unkillable", **options)(unkillable),
        "unsafe": app.task(name="emergency.unsafe", rerun_safe=False, **options)(stubborn),
        "publisher": app.task(name="emergency.publisher", **options)(publisher),
        "retrying": app.task(name="emergency.retrying", bind=True, **options)(retrying),
    }


def make_app() -> Celery:
    """The fleet's app (from ``celeryconfig``) with the emergency tasks."""
    app = make_fleet_app()
    register_emergency_tasks(app)
    return app


# Worker subprocesses load this one (``-A tests.emergency.app``).
app = make_app() if os.environ.get("TEST_CELERY_WORKER") else None
