"""Captions: the list, and caption generation (a Celery job per image)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from sqlalchemy import select

from ..auth import current_user, login_required
from ..captioning import PLATFORMS
from ..models import Caption, Image
from .common import db, enqueue, fail, form, owned, queued

bp = Blueprint("captions", __name__)


@bp.get("/captions")
@login_required
def index() -> Any:
    """Captions of the user's images, newest first, and the generation form."""
    user = current_user()
    assert user is not None
    session = db()
    captions = session.scalars(
        select(Caption).join(Image).where(Image.owner_id == user.id).order_by(Caption.id.desc())
    ).all()
    images = session.scalars(select(Image).where(Image.owner_id == user.id)).all()
    return render_template(
        "captioner/captions.html", captions=captions, images=images, platforms=PLATFORMS
    )


def _platform(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return str(value) if value in PLATFORMS else ""


@bp.post("/caption/generate")
@login_required
def start_caption_generation() -> Any:
    """Queue caption generation for one image (Celery task ``captioner.generate_caption``)."""
    user = current_user()
    assert user is not None
    data = form()
    try:
        image = owned(Image, int(data.get("image_id", 0)), user)
    except ValueError:
        return fail("image_id must be a number.", "captions.index")
    platform = _platform(data.get("platform"))
    if platform == "":
        return fail(f"Unknown platform; choose one of {', '.join(PLATFORMS)}.", "captions.index")
    job = enqueue(
        user,
        "caption_generation",
        "captioner.generate_caption",
        image_id=image.id,
        platform=platform,
        total=1,
    )
    return queued(job, f"Caption generation queued (job {job.id}).")


@bp.post("/captions/<int:caption_id>/regenerate")
@login_required
def regenerate_caption(caption_id: int) -> Any:
    """Queue a new draft for the image and platform of an existing caption."""
    user = current_user()
    assert user is not None
    caption = db().get(Caption, caption_id)
    if caption is None:
        return fail("No such caption.", "captions.index", code=404)
    owned(Image, caption.image_id, user)
    job = enqueue(
        user,
        "caption_generation",
        "captioner.generate_caption",
        image_id=caption.image_id,
        platform=caption.platform,
        total=1,
    )
    return queued(job, f"New caption queued (job {job.id}).")
