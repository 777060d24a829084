"""Profile, settings and password."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from ..auth import current_user, login_required
from ..captioning import PLATFORMS, STYLES
from ..models import User
from .common import db, done, enqueue, fail, form

bp = Blueprint("account", __name__)


def _me() -> User:
    user = current_user()
    assert user is not None
    found = db().get(User, user.id)
    assert found is not None
    return found


@bp.get("/profile")
@login_required
def profile() -> Any:
    """Profile, settings and password forms."""
    return render_template("captioner/account.html", user=_me(), platforms=PLATFORMS, styles=STYLES)


@bp.get("/settings")
@login_required
def settings() -> Any:
    """The same page, at the settings form."""
    return profile()


@bp.post("/profile")
@login_required
def update_profile() -> Any:
    """Change display name, e-mail and bio; carry the name to platform signatures (Celery)."""
    data = form()
    me = _me()
    name = str(data.get("display_name", me.display_name)).strip()
    email = str(data.get("email", me.email)).strip()
    if len(name) > 120 or (email and "@" not in email):
        return fail(
            "A display name of at most 120 characters and a valid e-mail, please.",
            "account.profile",
        )
    me.display_name, me.email = name, email
    me.bio = str(data.get("bio", me.bio))[:2000]
    db().commit()
    job = enqueue(me, "profile_sync", "captioner.sync_profile", user_id=me.id)
    return done("Profile saved.", "account.profile", data={"job_id": job.id})


@bp.post("/settings")
@login_required
def update_settings() -> Any:
    """Default platform and caption style."""
    data = form()
    me = _me()
    platform = str(data.get("platform", me.settings["platform"]))
    style = str(data.get("style", me.settings["style"]))
    if platform not in PLATFORMS or style not in STYLES:
        return fail(
            f"Platform: {', '.join(PLATFORMS)}; style: {', '.join(STYLES)}.", "account.profile"
        )
    me.settings = {**me.settings, "platform": platform, "style": style}
    db().commit()
    return done("Settings saved.", "account.profile", data={"settings": me.settings})


@bp.post("/password")
@login_required
def change_password() -> Any:
    """Change the password (the current one is required)."""
    data = form()
    me = _me()
    new = str(data.get("new_password", ""))
    if not me.check_password(str(data.get("current_password", ""))):
        return fail("The current password is wrong.", "account.profile", code=403)
    if len(new) < 8 or new != str(data.get("confirm_password", new)):
        return fail(
            "The new password needs 8+ characters, typed twice the same.", "account.profile"
        )
    me.set_password(new)
    db().commit()
    return done("Password changed.", "account.profile")
