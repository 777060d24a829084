"""A minimal admin area: users, job overview, repairs (admins only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from sqlalchemy import func, select

from ..auth import admin_required, current_user
from ..models import Job, User
from .common import db, done, enqueue, fail, form, queued

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
@admin_required
def index() -> Any:
    """Users, jobs by state, maintenance status and the last consistency checks."""
    from maintenance.integrity import check_results

    from .common import ext

    session = db()
    users = session.scalars(select(User).order_by(User.id)).all()
    jobs = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    service = ext().service
    return render_template(
        "captioner/admin.html",
        users=users,
        jobs=jobs,
        status=service.get_maintenance_status(),
        checks=check_results(service, limit=20),
    )


@bp.post("/captions/purge-orphans")
@admin_required
def purge_orphans() -> Any:
    """Delete captions whose image is gone (Celery task ``captioner.purge_orphan_captions``)."""
    user = current_user()
    assert user is not None
    job = enqueue(user, "purge_orphans", "captioner.purge_orphan_captions", timed=False)
    return queued(job, f"Orphan purge queued (job {job.id}).")


@bp.post("/users/<int:user_id>/role")
@admin_required
def set_role(user_id: int) -> Any:
    """Make a user an admin or a regular user."""
    role = str(form().get("role", ""))
    if role not in ("admin", "user"):
        return fail("role must be admin or user.", "admin.index")
    user = db().get(User, user_id)
    if user is None:
        return fail("No such user.", "admin.index", code=404)
    user.role = role
    db().commit()
    return done(f"{user.username} is now {role}.", "admin.index")
