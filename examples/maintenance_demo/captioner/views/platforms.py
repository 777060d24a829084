"""Platforms: switch the active one, test a connection and post a caption (Celery), update
credentials."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from sqlalchemy import select

from ..auth import current_user, login_required
from ..captioning import PLATFORMS
from ..models import Caption, Image, PlatformConnection, User
from .common import db, done, enqueue, fail, form, me, owned, queued

bp = Blueprint("platforms", __name__)


def _connection(user: User, platform: str) -> PlatformConnection:
    session = db()
    found = session.scalar(
        select(PlatformConnection).where(
            PlatformConnection.owner_id == user.id, PlatformConnection.platform == platform
        )
    )
    if found is None:
        found = PlatformConnection(owner_id=user.id, platform=platform)
        session.add(found)
    return found


@bp.get("/platform")
@login_required
def index() -> Any:
    """The user's connection to every platform."""
    user = current_user()
    assert user is not None
    rows = (
        db().scalars(select(PlatformConnection).where(PlatformConnection.owner_id == user.id)).all()
    )
    connections = {c.platform: c for c in rows}
    return render_template("captioner/platforms.html", platforms=PLATFORMS, connections=connections)


def _chosen(data: dict[str, Any]) -> str | None:
    platform = str(data.get("platform", ""))
    return platform if platform in PLATFORMS else None


@bp.post("/platform/switch")
@login_required
def switch_platform() -> Any:
    """Make one platform the active one (and the default for new captions)."""
    user = current_user()
    assert user is not None
    platform = _chosen(form())
    if platform is None:
        return fail(f"Choose one of {', '.join(PLATFORMS)}.", "platforms.index")
    session = db()
    for connection in session.scalars(
        select(PlatformConnection).where(PlatformConnection.owner_id == user.id)
    ):
        connection.is_active = int(connection.platform == platform)
    _connection(user, platform).is_active = 1
    account = me()
    account.settings = {**account.settings, "platform": platform}
    session.commit()
    return done(f"Now publishing to {platform}.", "platforms.index", data={"platform": platform})


@bp.post("/platform/test-connection")
@login_required
def test_connection() -> Any:
    """Queue a connection test (Celery task ``captioner.test_platform_connection``)."""
    user = current_user()
    assert user is not None
    platform = _chosen(form())
    if platform is None:
        return fail(f"Choose one of {', '.join(PLATFORMS)}.", "platforms.index")
    connection = _connection(user, platform)
    db().commit()
    job = enqueue(
        user,
        "connection_test",
        "captioner.test_platform_connection",
        connection_id=connection.id,
        total=1,
    )
    return queued(job, f"Testing the {platform} connection (job {job.id}).")


@bp.post("/platform/credentials")
@login_required
def update_credentials() -> Any:
    """Store a handle and an access token (hashed) for a platform."""
    user = current_user()
    assert user is not None
    data = form()
    platform = _chosen(data)
    handle = str(data.get("handle", "")).strip().lstrip("@")
    token = str(data.get("token", ""))
    if platform is None:
        return fail(f"Choose one of {', '.join(PLATFORMS)}.", "platforms.index")
    if not handle or len(handle) > 120:
        return fail("A handle of 1 to 120 characters is required.", "platforms.index")
    if len(token) < 8:
        return fail("The access token must have at least 8 characters.", "platforms.index")
    connection = _connection(user, platform)
    connection.handle = handle
    connection.set_credential(token)
    db().commit()
    return done(
        f"Credentials for {platform} saved.",
        "platforms.index",
        data={"platform": platform, "hint": connection.credential_hint},
    )


@bp.post("/platform/post")
@login_required
def post_caption() -> Any:
    """Publish a caption on its platform (Celery task ``captioner.post_to_platform``)."""
    user = current_user()
    assert user is not None
    try:
        caption = db().get(Caption, int(form().get("caption_id", 0)))
    except (TypeError, ValueError):
        return fail("caption_id must be a number.", "review.index")
    if caption is None:
        return fail("No such caption.", "review.index", code=404)
    owned(Image, caption.image_id, user)
    if caption.status == "rejected":
        return fail("A rejected caption cannot be posted.", "review.index", code=409)
    job = enqueue(user, "post", "captioner.post_to_platform", caption_id=caption.id, total=1)
    return queued(job, f"Posting caption {caption.id} to {caption.platform} (job {job.id}).")
