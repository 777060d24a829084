"""Dashboard and health check."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template
from sqlalchemy import func, select

from ..auth import current_user, login_required
from ..models import Caption, Image, Job
from .common import db

bp = Blueprint("main", __name__)


@bp.get("/")
@login_required
def index() -> Any:
    """What the user has: images, captions by status, recent jobs."""
    user = current_user()
    assert user is not None
    session = db()
    images = session.scalar(select(func.count()).where(Image.owner_id == user.id))
    by_status = dict(
        session.execute(
            select(Caption.status, func.count())
            .join(Image)
            .where(Image.owner_id == user.id)
            .group_by(Caption.status)
        ).all()
    )
    jobs = session.scalars(
        select(Job).where(Job.owner_id == user.id).order_by(Job.id.desc()).limit(5)
    ).all()
    return render_template("captioner/index.html", images=images, by_status=by_status, jobs=jobs)


@bp.get("/health")
def health() -> Any:
    """Liveness: the app answers (never blocked by maintenance)."""
    return jsonify({"ok": True})
