"""The captioner's Celery app and tasks (``celery -A examples.captioner.tasks worker``).

Every task names its maintenance operation type with the ``operation_type=``
task option (Celery keeps unknown options as task attributes), owns a job row,
and has side effects that can be counted in the database. Configuration comes
from the environment: ``CELERY_BROKER_URL``, else ``REDIS_URL``, else the
embedded Redis of the control plane; ``CELERY_BROKER_KEYPREFIX`` namespaces
the broker's keys; ``CAPTIONER_DATABASE_URL`` names the app's database.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from maintenance import EnhancedMaintenanceModeService, OperationType, Settings, default_service
from maintenance.integrity import job_writes
from maintenance.redisconn import resolve_redis_url

from . import captioning, imaging
from .db import CaptionerDatabase, database_url
from .integration import install_celery_hooks, service_of_celery
from .jobs import job_running, set_result, simulate_work
from .models import Caption, Image, Job, PlatformConnection, User

Op = OperationType
#: Stamped by the publish gate on a job's sub-publishes (``signals.stamping``).
CONTINUATION_HEADER = "maintenance_continuation"


class _EnvConfig(Mapping[str, Any]):
    """Celery settings from the environment, computed when Celery first reads them
    (so importing this module never starts the embedded Redis)."""

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self._values: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._values is None:
            self._values = {**_from_env(self.overrides), **self.overrides}
        return self._values

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def _from_env(overrides: Mapping[str, Any]) -> dict[str, Any]:
    env = os.environ
    broker = overrides.get("broker_url") or env.get("CELERY_BROKER_URL") or env.get("REDIS_URL")
    if not broker:
        broker = resolve_redis_url(Settings.from_env())
    transport: dict[str, Any] = {
        # With acks_late a job running longer than this would be delivered twice.
        "visibility_timeout": int(env.get("CELERY_VISIBILITY_TIMEOUT") or 3600),
    }
    if env.get("CELERY_BROKER_KEYPREFIX"):
        transport["global_keyprefix"] = env["CELERY_BROKER_KEYPREFIX"]
    values: dict[str, Any] = {
        "broker_url": broker,
        "result_backend": env.get("CELERY_RESULT_BACKEND") or broker,
        "broker_transport_options": transport,
        "result_backend_transport_options": {
            k: v for k, v in transport.items() if k == "global_keyprefix"
        },
        "broker_connection_retry_on_startup": True,
        # Only late-acknowledged jobs survive a worker shutdown (and can be requeued).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "result_expires": 3600,
    }
    schedule = _beat_schedule(float(env.get("MAINTENANCE_BEAT_INTERVAL") or 10))
    if schedule:
        values["beat_schedule"] = schedule
    return values


def _beat_schedule(interval: float) -> dict[str, Any]:
    try:
        from workers.beat import schedule_entry
    except ImportError:  # the Celery side of maintenance is optional for this app
        return {}
    return {"maintenance-status-check": schedule_entry(interval)}


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
def _job(task: CaptionerTask, job_id: int) -> Iterator[tuple[Session, Job | None]]:
    """A session and the task's job, marked running for the block (see ``job_running``)."""
    with (
        runtime_of(task.app).db.sessions() as session,
        job_running(session, job_id, task.request.id) as job,
    ):
        yield session, job


# -- task bodies -------------------------------------------------------------------
def generate_caption(
    self: CaptionerTask,
    job_id: int,
    image_id: int,
    platform: str | None = None,
    style: str | None = None,
    duration: float = 0.0,
    requested_by: int | None = None,
) -> int | None:
    """Write one draft caption for an image (after ``duration`` seconds of "model time")."""
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        simulate_work(session, job, duration)
        image = session.get(Image, image_id)
        if image is None:
            raise LookupError(f"image {image_id} does not exist")
        prefs = image.owner.settings
        chosen = platform or prefs["platform"]
        text = captioning.generate_caption(image.data, chosen, style or prefs["style"])
        caption = Caption(image_id=image.id, text=text, platform=chosen, job_id=job.id)
        session.add(caption)
        session.flush()
        job.progress = job.total = 1
        set_result(job, {"caption_id": caption.id})
        return caption.id


def run_job(
    self: CaptionerTask, job_id: int, duration: float = 0.0, requested_by: int | None = None
) -> dict[str, Any] | None:
    """A multi-step job: ``caption_all`` (a caption for every image lacking one, one
    commit per image, so a rerun continues where it stopped) or ``export``."""
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        if job.kind == "export":
            result = _export(session, job)
        else:
            result = _caption_all(session, job, duration)
        set_result(job, result)
        return result


def _caption_all(session: Any, job: Job, duration: float) -> dict[str, Any]:
    owner = session.get(User, job.owner_id)
    prefs = owner.settings
    platform = job.params.get("platform") or prefs["platform"]
    has_caption = select(Caption.image_id).where(Caption.platform == platform)
    todo = session.scalars(
        select(Image)
        .where(Image.owner_id == owner.id, Image.id.not_in(has_caption))
        .order_by(Image.id)
    ).all()
    job.total = job.progress + len(todo)
    session.commit()
    for image in todo:
        simulate_work(session, job, duration)
        text = captioning.generate_caption(image.data, platform, prefs["style"])
        session.add(Caption(image_id=image.id, text=text, platform=platform, job_id=job.id))
        job.progress += 1
        session.commit()
    return {"captioned": job.progress, "platform": platform}


def _export(session: Any, job: Job) -> dict[str, Any]:
    rows = session.execute(
        select(Caption.platform, func.count())
        .join(Image)
        .where(Image.owner_id == job.owner_id, Caption.status == "approved")
        .group_by(Caption.platform)
    ).all()
    job.progress = job.total = 1
    return {"approved": {platform: int(n) for platform, n in rows}}


def check_platform_connection(
    self: CaptionerTask,
    job_id: int,
    connection_id: int,
    duration: float = 0.0,
    requested_by: int | None = None,
) -> bool | None:
    """Check a platform connection (fake platforms: a handle and a credential make it work)."""
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        simulate_work(session, job, duration)
        connection = session.get(PlatformConnection, connection_id)
        if connection is None:
            raise LookupError(f"connection {connection_id} does not exist")
        ok = bool(connection.handle and connection.credential_hash)
        connection.last_test_ok = int(ok)
        connection.last_test_at = job.started_at
        connection.last_test_message = (
            f"connected to {connection.platform} as @{connection.handle}"
            if ok
            else "missing handle or credentials"
        )
        job.progress = job.total = 1
        set_result(job, {"ok": ok, "message": connection.last_test_message})
        return ok


def bulk_update_captions(
    self: CaptionerTask,
    job_id: int,
    caption_ids: list[int],
    text: str | None = None,
    platform: str | None = None,
    status: str | None = None,
    requested_by: int | None = None,
) -> int | None:
    """Apply one change to many captions of the job's owner, in one transaction."""
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        captions = session.scalars(
            select(Caption)
            .join(Image)
            .where(Caption.id.in_(caption_ids), Image.owner_id == job.owner_id)
        ).all()
        for caption in captions:
            if text is not None:
                caption.text = text
            if platform is not None:
                caption.platform = platform
            if status is not None:
                caption.status = status
        job.progress = job.total = len(captions)
        set_result(job, {"updated": len(captions)})
        return len(captions)


def optimize_image(
    self: CaptionerTask,
    job_id: int,
    image_id: int,
    duration: float = 0.0,
    requested_by: int | None = None,
) -> int | None:
    """Re-encode a PNG at maximum compression when that makes it smaller; returns the size."""
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        simulate_work(session, job, duration)
        image = _image(session, image_id)
        before = image.size_bytes
        pixels = imaging.decode_png(image.data)
        if pixels is not None:
            smaller = imaging.encode_png(pixels)
            if len(smaller) < before:
                image.data, image.size_bytes = smaller, len(smaller)
        image.optimized_size = image.size_bytes
        job.progress = job.total = 1
        set_result(job, {"before": before, "after": image.size_bytes})
        return image.size_bytes


def analyze_image(
    self: CaptionerTask,
    job_id: int,
    image_id: int,
    duration: float = 0.0,
    requested_by: int | None = None,
) -> dict[str, Any] | None:
    """Store the image's size and colour statistics."""
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        simulate_work(session, job, duration)
        image = _image(session, image_id)
        analysis = captioning.analyse(image.data).to_dict()
        image.analysis_json = json.dumps(analysis, sort_keys=True)
        image.analysis_count += 1
        job.progress = job.total = 1
        set_result(job, analysis)
        return analysis


def sync_profile(
    self: CaptionerTask,
    job_id: int,
    user_id: int,
    duration: float = 0.0,
    requested_by: int | None = None,
) -> int | None:
    """Carry a user's display name to the signature of every platform connection."""
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        simulate_work(session, job, duration)
        user = session.get(User, user_id)
        if user is None:
            raise LookupError(f"user {user_id} does not exist")
        connections = session.scalars(
            select(PlatformConnection).where(PlatformConnection.owner_id == user.id)
        ).all()
        for connection in connections:
            connection.signature = f"\u2014 {user.display_name or user.username}"
        job.progress = job.total = len(connections)
        set_result(job, {"connections": len(connections)})
        return len(connections)


def purge_orphan_captions(
    self: CaptionerTask, job_id: int, requested_by: int | None = None
) -> int | None:
    """Admin repair: delete captions whose image no longer exists."""
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        orphans = select(Caption.id).outerjoin(Image).where(Image.id.is_(None))
        ids = list(session.scalars(orphans).all())
        if ids:
            session.execute(delete(Caption).where(Caption.id.in_(ids)))
        job.progress = job.total = len(ids)
        set_result(job, {"deleted": len(ids)})
        return len(ids)


def _image(session: Any, image_id: int) -> Image:
    image = session.get(Image, image_id)
    if image is None:
        raise LookupError(f"image {image_id} does not exist")
    return image


#: Task name -> (body, maintenance operation type).
TASKS: dict[str, tuple[Any, OperationType]] = {
    "captioner.generate_caption": (generate_caption, Op.CAPTION_GENERATION),
    "captioner.run_job": (run_job, Op.JOB_CREATION),
    "captioner.test_platform_connection": (check_platform_connection, Op.PLATFORM_OPERATIONS),
    "captioner.bulk_update_captions": (bulk_update_captions, Op.BATCH_OPERATIONS),
    "captioner.optimize_image": (optimize_image, Op.IMAGE_PROCESSING),
    "captioner.analyze_image": (analyze_image, Op.IMAGE_PROCESSING),
    "captioner.sync_profile": (sync_profile, Op.USER_DATA_MODIFICATION),
    "captioner.purge_orphan_captions": (purge_orphan_captions, Op.ADMIN_OPERATIONS),
}


def create_celery(
    config: Mapping[str, Any] | None = None,
    *,
    service: EnhancedMaintenanceModeService | None = None,
    database: CaptionerDatabase | None = None,
    db_url: str | None = None,
    main: str = "captioner",
    set_as_current: bool = False,
) -> Celery:
    """A Celery app with the captioner's tasks and the maintenance hooks installed.

    ``config`` overrides the environment's settings (``broker_url``, ...);
    ``service``/``database`` are built lazily from the environment when omitted.
    """
    app = Celery(main, set_as_current=set_as_current)
    app.config_from_object(_EnvConfig(config))
    runtime = CaptionerRuntime(app, service=service, database=database, db_url=db_url)
    app.captioner = runtime
    _runtimes.add(runtime)
    for name, (body, operation) in TASKS.items():
        app.task(
            name=name,
            bind=True,
            base=CaptionerTask,
            shared=False,
            operation_type=operation.value,
        )(body)
    install_celery_hooks(app, service)
    return app


#: The app ``celery -A examples.captioner.tasks worker`` runs, configured from the environment.
celery_app = create_celery(set_as_current=True)
