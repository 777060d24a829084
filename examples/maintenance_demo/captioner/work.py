"""The bodies of the captioner's Celery tasks: each owns a job row and leaves countable rows."""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypeVar

from sqlalchemy import delete, func, select

from . import captioning, imaging
from .jobs import external_call, set_result, sigterm_held_off, simulate_work
from .models import Caption, Image, Job, PlatformConnection, Post, User
from .runtime import CaptionerTask
from .runtime import job_session as _job

T = TypeVar("T")


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
        image = _image(session, image_id)
        prefs = image.owner.settings
        chosen = platform or prefs["platform"]
        text = captioning.generate_caption(image.data, chosen, style or prefs["style"])
        caption = Caption(image_id=image.id, text=text, platform=chosen, job_id=job.id)
        session.add(caption)
        session.flush()
        _finish(job, 1, {"caption_id": caption.id})
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
        connection = _require(session, PlatformConnection, connection_id, "connection")
        ok = bool(connection.handle and connection.credential_hash)
        connection.last_test_ok = int(ok)
        connection.last_test_at = job.started_at
        connection.last_test_message = (
            f"connected to {connection.platform} as @{connection.handle}"
            if ok
            else "missing handle or credentials"
        )
        _finish(job, 1, {"ok": ok, "message": connection.last_test_message})
        return ok


def bulk_update_captions(
    self: CaptionerTask,
    job_id: int,
    caption_ids: list[int],
    text: str | None = None,
    platform: str | None = None,
    status: str | None = None,
    duration: float = 0.0,
    requested_by: int | None = None,
) -> int | None:
    """Apply one change to many captions of the job's owner (any, for an admin), in one
    transaction, after ``duration`` seconds of checking them."""
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        simulate_work(session, job, duration)
        query = select(Caption).where(Caption.id.in_(caption_ids))
        owner = session.get(User, job.owner_id)
        if owner is None or not owner.is_admin:
            query = query.join(Image).where(Image.owner_id == job.owner_id)
        captions = session.scalars(query).all()
        for caption in captions:
            if text is not None:
                caption.text = text
            if platform is not None:
                caption.platform = platform
            if status is not None:
                caption.status = status
        _finish(job, len(captions), {"updated": len(captions)})
        return len(captions)


def optimize_image(
    self: CaptionerTask,
    job_id: int,
    image_id: int,
    duration: float = 0.0,
    requested_by: int | None = None,
) -> int | None:
    """Re-encode a PNG at maximum compression when that makes it smaller; returns the size.

    The encoder is one blocking call (``duration`` seconds): it does not stop when an
    emergency asks, so the emergency's SIGTERM ends it; it is safe to run again.
    """
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        external_call(duration)
        image = _image(session, image_id)
        before = image.size_bytes
        pixels = imaging.decode_png(image.data)
        if pixels is not None:
            smaller = imaging.encode_png(pixels)
            if len(smaller) < before:
                image.data, image.size_bytes = smaller, len(smaller)
        image.optimized_size = image.size_bytes
        _finish(job, 1, {"before": before, "after": image.size_bytes})
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
        _finish(job, 1, analysis)
        return analysis


def post_to_platform(
    self: CaptionerTask,
    job_id: int,
    caption_id: int,
    duration: float = 0.0,
    requested_by: int | None = None,
) -> int | None:
    """Publish a caption on its platform (fake platforms: a ``Post`` row and a remote id).

    Two blocking calls of ``duration`` seconds each: the upload, then the wait for the
    platform to accept it. They must not be cut in half, so SIGTERM is held off while
    they run (an emergency's SIGKILL still ends them). Running it twice would post
    twice: the task is declared ``rerun_safe=False`` and is never requeued.
    """
    with _job(self, job_id) as (session, job):
        if job is None:
            return None
        caption = _require(session, Caption, caption_id, "caption")
        with sigterm_held_off():
            external_call(duration)  # upload the image and the caption
            external_call(duration)  # the platform processes the post
        remote = hashlib.sha1(f"{caption.platform}:{caption.id}:{job.id}".encode()).hexdigest()
        post = Post(caption_id=caption.id, platform=caption.platform, remote_id=remote[:16])
        post.job_id = job.id
        session.add(post)
        session.flush()
        _finish(job, 1, {"post_id": post.id, "remote_id": post.remote_id})
        return post.id


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
        user = _require(session, User, user_id, "user")
        connections = session.scalars(
            select(PlatformConnection).where(PlatformConnection.owner_id == user.id)
        ).all()
        for connection in connections:
            connection.signature = f"\u2014 {user.display_name or user.username}"
        _finish(job, len(connections), {"connections": len(connections)})
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
        _finish(job, len(ids), {"deleted": len(ids)})
        return len(ids)


def _require(session: Any, model: type[T], object_id: int, noun: str) -> T:
    """Row ``object_id`` of ``model``; LookupError if it does not exist."""
    found: T | None = session.get(model, object_id)
    if found is None:
        raise LookupError(f"{noun} {object_id} does not exist")
    return found


def _image(session: Any, image_id: int) -> Image:
    return _require(session, Image, image_id, "image")


def _finish(job: Job, n: int, result: Any) -> None:
    """Record a finished job: ``n`` of ``n`` steps done, and its result."""
    job.progress = job.total = n
    set_result(job, result)
