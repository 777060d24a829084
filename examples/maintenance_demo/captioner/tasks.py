"""The captioner's Celery app and tasks (``celery -A maintenance_demo.captioner.tasks worker``).

Every task names its maintenance operation type with the ``operation_type=``
task option (Celery keeps unknown options as task attributes), owns a job row,
and has side effects that can be counted in the database; one that must not
run twice says so with ``rerun_safe=False``. Configuration comes
from the environment: ``CELERY_BROKER_URL``, else ``REDIS_URL``, else the
embedded Redis of the control plane; ``CELERY_BROKER_KEYPREFIX`` namespaces
the broker's keys; ``CAPTIONER_DATABASE_URL`` names the app's database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from celery import Celery

from maintenance import EnhancedMaintenanceModeService, OperationType, Settings
from maintenance.redisconn import resolve_redis_url

from .db import CaptionerDatabase
from .integration import install_celery_hooks
from .runtime import CaptionerRuntime, CaptionerTask, register_runtime
from .work import (
    analyze_image,
    bulk_update_captions,
    check_platform_connection,
    generate_caption,
    optimize_image,
    post_to_platform,
    purge_orphan_captions,
    run_job,
    sync_profile,
)

Op = OperationType


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


#: Task name -> (body, maintenance operation type).
TASKS: dict[str, tuple[Any, OperationType]] = {
    "captioner.generate_caption": (generate_caption, Op.CAPTION_GENERATION),
    "captioner.run_job": (run_job, Op.JOB_CREATION),
    "captioner.test_platform_connection": (check_platform_connection, Op.PLATFORM_OPERATIONS),
    "captioner.post_to_platform": (post_to_platform, Op.PLATFORM_OPERATIONS),
    "captioner.bulk_update_captions": (bulk_update_captions, Op.BATCH_OPERATIONS),
    "captioner.optimize_image": (optimize_image, Op.IMAGE_PROCESSING),
    "captioner.analyze_image": (analyze_image, Op.IMAGE_PROCESSING),
    "captioner.sync_profile": (sync_profile, Op.USER_DATA_MODIFICATION),
    "captioner.purge_orphan_captions": (purge_orphan_captions, Op.ADMIN_OPERATIONS),
}

#: More task options by task name. A post that runs twice posts twice: after an
#: emergency it is listed for an operator instead of requeued.
TASK_OPTIONS: dict[str, dict[str, Any]] = {
    "captioner.post_to_platform": {"rerun_safe": False},
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
    register_runtime(runtime)
    for name, (body, operation) in TASKS.items():
        app.task(
            name=name,
            bind=True,
            base=CaptionerTask,
            shared=False,
            operation_type=operation.value,
            **TASK_OPTIONS.get(name, {}),
        )(body)
    install_celery_hooks(app, service)
    return app


#: The app ``celery -A maintenance_demo.captioner.tasks worker`` runs (configured from the env).
celery_app = create_celery(set_as_current=True)
