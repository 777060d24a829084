"""The captioner's consistency checks, run when maintenance ends and by ``maintenance check``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from maintenance import EnhancedMaintenanceModeService
from maintenance.integrity import CheckRegistry

from .db import CaptionerDatabase, database_url
from .models import Caption, Image, Job


def running_jobs_have_live_tasks(
    service: EnhancedMaintenanceModeService,
) -> Callable[[Session], list[str]]:
    """A check against the fleet's active-job registry (kept by the Celery hooks in Redis)."""

    def check(session: Session) -> list[str]:
        """No job is marked running without a live task."""
        running = session.execute(
            select(Job.id, Job.task_id, Job.task_name).where(Job.status == "running")
        ).all()
        if not running:
            return []
        live = {k.decode() if isinstance(k, bytes) else k for k in _live_task_ids(service)}
        return [
            f"job {job_id} ({name}) is marked running but task {task_id} runs nowhere"
            for job_id, task_id, name in running
            if task_id not in live
        ]

    return check


def _live_task_ids(service: EnhancedMaintenanceModeService) -> list[bytes | str]:
    return list(service.redis.hkeys(service.keys.active_jobs))


def captions_have_images(session: Session) -> list[str]:
    """Every caption belongs to an image."""
    orphans = session.execute(
        select(Caption.id, Caption.image_id).outerjoin(Image).where(Image.id.is_(None))
    ).all()
    return [f"caption {cid} points at image {iid}, which does not exist" for cid, iid in orphans]


def register_checks(
    registry: CheckRegistry, service: EnhancedMaintenanceModeService, db: CaptionerDatabase
) -> None:
    """Register the captioner's checks over ``db`` in ``registry``."""
    registry.register(
        "captioner.running_jobs_have_live_tasks",
        running_jobs_have_live_tasks(service),
        bind=db.sessions,
    )
    registry.register("captioner.captions_have_images", captions_have_images, bind=db.sessions)


def register(registry: CheckRegistry, service: EnhancedMaintenanceModeService) -> None:
    """``maintenance.checks`` entry point: the checks, when the captioner's database exists."""
    url = database_url()
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return
    db = CaptionerDatabase(url)
    if not db.has_schema():
        db.dispose()
        return
    register_checks(registry, service, db)
