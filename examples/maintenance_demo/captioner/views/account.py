"""Profile, settings and password."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from ..auth import login_required
from ..captioning import PLATFORMS, STYLES
from .common import db, done, enqueue, fail, form, me

bp = Blueprint("account", __name__)


@bp.get("/profile")
@login_required
def profile() -> Any:
    """Profile, settings and password forms."""
    return render_template("captioner/account.html", user=me(), platforms=PLATFORMS, styles=STYLES)


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
    user = me()
    name = str(data.get("display_name", user.display_name)).strip()
    email = str(data.get("email", user.email)).strip()
    if len(name) > 120 or (email and "@" not in email):
        return fail(
            "A display name of at most 120 characters and a valid e-mail, please.",
            "account.profile",
        )
    user.display_name, user.email = name, email
    user.bio = str(data.get("bio", user.bio))[:2000]
    db().commit()
    job = enqueue(user, "profile_sync", "captioner.sync_profile", user_id=user.id)
    return done("Profile saved.", "account.profile", data={"job_id": job.id})


@bp.post("/settings")
@login_required
def update_settings() -> Any:
    """Default platform and caption style."""
    data = form()
    user = me()
    platform = str(data.get("platform", user.settings["platform"]))
    style = str(data.get("style", user.settings["style"]))
    if platform not in PLATFORMS or style not in STYLES:
        return fail(
            f"Platform: {', '.join(PLATFORMS)}; style: {', '.join(STYLES)}.", "account.profile"
        )
    user.settings = {**user.settings, "platform": platform, "style": style}
    db().commit()
    return done("Settings saved.", "account.profile", data={"settings": user.settings})


@bp.post("/password")
@login_required
def change_password() -> Any:
    """Change the password (the current one is required)."""
    data = form()
    user = me()
    new = str(data.get("new_password", ""))
    if not user.check_password(str(data.get("current_password", ""))):
        return fail("The current password is wrong.", "account.profile", code=403)
    if len(new) < 8 or new != str(data.get("confirm_password", new)):
        return fail(
            "The new password needs 8+ characters, typed twice the same.", "account.profile"
        )
    user.set_password(new)
    db().commit()
    return done("Password changed.", "account.profile")
