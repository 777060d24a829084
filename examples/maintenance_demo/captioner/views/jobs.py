"""Jobs: list, detail, create (``caption_all`` or ``export``) and cancel."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template
from sqlalchemy import select

from ..auth import current_user, login_required
from ..captioning import PLATFORMS
from ..jobs import OPEN_STATES
from ..models import Job, utcnow
from .common import db, done, enqueue, ext, fail, form, job_data, owned, queued, wants_json

bp = Blueprint("jobs", __name__)
JOB_KINDS = ("caption_all", "export")


@bp.get("/jobs")
@login_required
def list_jobs() -> Any:
    """The user's jobs (every job for admins), newest first."""
    user = current_user()
    assert user is not None
    query = select(Job).order_by(Job.id.desc()).limit(200)
    if not user.is_admin:
        query = query.where(Job.owner_id == user.id)
    jobs = db().scalars(query).all()
    if wants_json():
        return jsonify({"jobs": [job_data(j)["job"] for j in jobs]})
    return render_template("captioner/jobs.html", jobs=jobs, kinds=JOB_KINDS, platforms=PLATFORMS)


@bp.get("/jobs/<int:job_id>")
@login_required
def job_detail(job_id: int) -> Any:
    """One job: state, progress, result."""
    user = current_user()
    assert user is not None
    job = owned(Job, job_id, user)
    if wants_json():
        return jsonify(job_data(job))
    return render_template("captioner/job.html", job=job)


@bp.post("/jobs")
@login_required
def create_job() -> Any:
    """Start a job: ``caption_all`` captions every image lacking one; ``export`` counts
    approved captions per platform (Celery task ``captioner.run_job``)."""
    user = current_user()
    assert user is not None
    data = form()
    kind = str(data.get("kind", ""))
    if kind not in JOB_KINDS:
        return fail(f"kind must be one of {', '.join(JOB_KINDS)}.", "jobs.list_jobs")
    platform = str(data.get("platform") or user.settings["platform"])
    if platform not in PLATFORMS:
        return fail(f"Unknown platform {platform!r}.", "jobs.list_jobs")
    job = enqueue(user, kind, "captioner.run_job", params={"platform": platform})
    return queued(job, f"Job {job.id} ({kind}) queued.")


@bp.post("/jobs/<int:job_id>/cancel")
@login_required
def cancel_job(job_id: int) -> Any:
    """Cancel a queued or running job (a running one stops at its next step)."""
    user = current_user()
    assert user is not None
    job = owned(Job, job_id, user)
    if job.status not in OPEN_STATES:
        return fail(
            f"Job {job.id} is {job.status}; only queued or running jobs can be cancelled.",
            "jobs.job_detail",
            code=409,
            job_id=job.id,
        )
    job.status = "cancelled"
    job.finished_at = utcnow()
    db().commit()
    ext().celery.control.revoke(job.task_id)
    return done(f"Job {job.id} cancelled.", "jobs.job_detail", data=job_data(job), job_id=job.id)
