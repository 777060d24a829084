"""What the captioner's tasks share at run time: database, service, and the task base class.

``CaptionerTask`` runs each body as part of its job: writes made by a job that
started before maintenance are continuations (``maintenance.integrity.job_writes``),
and a job an administrator requested runs under the admin bypass.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init
from sqlalchemy.orm import Session

from maintenance import EnhancedMaintenanceModeService, default_service
from maintenance.integrity import job_writes

from .db import CaptionerDatabase, database_url
from .integration import service_of_celery
from .jobs import job_running
from .models import Job, User

#: Stamped by the publish gate on a job's sub-publishes (``signals.stamping``).
CONTINUATION_HEADER = "maintenance_continuation"


class CaptionerRuntime:
    """What the tasks of one Celery app share: the database and the maintenance service."""

    def __init__(
        self,
        app: Celery,
        *,
        service: EnhancedMaintenanceModeService | None = None,
        database: CaptionerDatabase | None = None,
        db_url: str | None = None,
    ) -> None:
        self.app = app
        self._service = service
        self._database = database
        self._db_url = db_url
        self._lock = threading.Lock()

    @property
    def service(self) -> EnhancedMaintenanceModeService:
        """The service of the Celery hooks (built for this kind of process), else the default."""
        if self._service is None:
            self._service = service_of_celery(self.app) or default_service(kind="worker")
        return self._service

    @property
    def db(self) -> CaptionerDatabase:
        """The app database; its sessions are guarded (``maintenance.integrity``)."""
        if self._database is None:
            with self._lock:
                if self._database is None:
                    database = CaptionerDatabase(self._db_url or database_url())
                    database.guard(lambda: self.service)
                    self._database = database
        return self._database

    def after_fork(self) -> None:
        """Forget pooled connections of the parent (prefork pool children)."""
        if self._database is not None:
            self._database.after_fork()


_runtimes: weakref.WeakSet[CaptionerRuntime] = weakref.WeakSet()


@worker_process_init.connect(weak=False)
def _after_fork(**_: Any) -> None:
    for runtime in list(_runtimes):
        runtime.after_fork()


def register_runtime(runtime: CaptionerRuntime) -> None:
    """Dispose of ``runtime``'s pooled connections in each forked pool child."""
    _runtimes.add(runtime)


def runtime_of(app: Celery) -> CaptionerRuntime:
    """The ``CaptionerRuntime`` of a Celery app made by ``create_celery``."""
    return app.captioner


class CaptionerTask(Task):
    """Runs the task body as part of its job: continuation writes, admin bypass."""

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        runtime = runtime_of(self.app)
        service = runtime.service
        status = service.status
        request = self.request
        # The activation in force when this job started decides whether its
        # writes continue work from before maintenance (``integrity.job_writes``).
        started_under = status.activation_id if status.is_active else None
        if request.get(CONTINUATION_HEADER):
            started_under = None
        with ExitStack() as stack:
            stack.enter_context(job_writes(request.id or "local", started_under))
            admin = _admin_requester(runtime, kwargs.get("requested_by"))
            if admin is not None:
                stack.enter_context(service.bypass(admin))
            return super().__call__(*args, **kwargs)


def _admin_requester(runtime: CaptionerRuntime, user_id: int | None) -> User | None:
    if user_id is None:
        return None
    with runtime.db.sessions() as session:
        user = session.get(User, user_id)
        return user if user is not None and user.is_admin else None


@contextmanager
def job_session(task: CaptionerTask, job_id: int) -> Iterator[tuple[Session, Job | None]]:
    """A session and the task's job, marked running for the block (see ``job_running``)."""
    with (
        runtime_of(task.app).db.sessions() as session,
        job_running(
            session, job_id, task.request.id, rerun_safe=getattr(task, "rerun_safe", True)
        ) as job,
    ):
        yield session, job
