"""Login and logout (admins can always log in; users not while logins are blocked)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request
from sqlalchemy import select

from ..auth import current_user, log_in, log_out
from ..models import User
from .common import done, ext, fail, form, wants_json

bp = Blueprint("auth", __name__)


@bp.get("/login")
def login_form() -> Any:
    """The login page."""
    return render_template("captioner/login.html", next=request.args.get("next", ""))


@bp.post("/login")
def login() -> Any:
    """Check the password, ask maintenance whether this user may log in now, log in."""
    data = form()
    username = str(data.get("username", "")).strip()
    password = str(data.get("password", ""))
    with ext().db.sessions() as session:
        user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.check_password(password):
        return fail("Wrong username or password.", "auth.login_form", code=401)
    refusal = ext().maintenance.sessions.check_login(user)  # type: ignore[union-attr]
    if refusal is not None:
        return refusal
    log_in(user)
    target = str(data.get("next") or "")
    if target.startswith("/") and not target.startswith("//") and not wants_json():
        return redirect(target)
    return done(
        f"Welcome, {user.display_name or user.username}.",
        "main.index",
        data={"user": {"id": user.id, "username": user.username, "role": user.role}},
    )


@bp.post("/logout")
def logout() -> Any:
    """End the session."""
    was = current_user()
    log_out()
    return done(f"Goodbye{', ' + was.username if was else ''}.", "auth.login_form")
