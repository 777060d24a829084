"""Review: approve or reject many drafts at once, and bulk caption updates (Celery)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from sqlalchemy import select

from ..auth import current_user, login_required
from ..captioning import PLATFORMS
from ..models import Caption, Image
from .common import db, done, enqueue, fail, form, ids, queued

bp = Blueprint("review", __name__)
DECISIONS = {"approve": "approved", "reject": "rejected", "reopen": "draft"}
STATUSES = ("draft", "approved", "rejected")


@bp.get("/review")
@login_required
def index() -> Any:
    """Drafts waiting for review, and every caption for bulk updates."""
    user = current_user()
    assert user is not None
    captions = (
        db()
        .scalars(select(Caption).join(Image).where(Image.owner_id == user.id).order_by(Caption.id))
        .all()
    )
    return render_template(
        "captioner/review.html", captions=captions, platforms=PLATFORMS, statuses=STATUSES
    )


@bp.post("/review/batch")
@login_required
def batch_review() -> Any:
    """Approve, reject or reopen the selected captions in one transaction."""
    user = current_user()
    assert user is not None
    data = form()
    decision = str(data.get("decision", ""))
    selected = ids(data.get("caption_ids"))
    if decision not in DECISIONS or not selected:
        return fail("Select captions and approve, reject or reopen them.", "review.index")
    session = db()
    captions = session.scalars(
        select(Caption).join(Image).where(Caption.id.in_(selected), Image.owner_id == user.id)
    ).all()
    for caption in captions:
        caption.status = DECISIONS[decision]
    session.commit()
    return done(
        f"{len(captions)} caption(s) {DECISIONS[decision]}.",
        "review.index",
        data={"updated": len(captions)},
    )


@bp.post("/review/bulk")
@login_required
def bulk_update_captions() -> Any:
    """Queue one change (text, platform or status) to many captions
    (Celery task ``captioner.bulk_update_captions``)."""
    user = current_user()
    assert user is not None
    data = form()
    selected = ids(data.get("caption_ids"))
    changes = {k: str(data[k]) for k in ("text", "platform", "status") if data.get(k)}
    if not selected or not changes:
        return fail("Select captions and a change to apply.", "review.index")
    if changes.get("platform", PLATFORMS[0]) not in PLATFORMS:
        return fail("Unknown platform.", "review.index")
    if changes.get("status", STATUSES[0]) not in STATUSES:
        return fail("Unknown status.", "review.index")
    job = enqueue(
        user,
        "bulk_update",
        "captioner.bulk_update_captions",
        caption_ids=selected,
        total=len(selected),
        text=changes.get("text"),
        platform=changes.get("platform"),
        status=changes.get("status"),
    )
    return queued(job, f"Bulk update of {len(selected)} caption(s) queued (job {job.id}).")
