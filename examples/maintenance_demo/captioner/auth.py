"""Login state, role checks and CSRF protection for the captioner's pages.

The logged-in user lives in the (cookie) session as ``user_id``, ``username``
and ``role``; ``current_user()`` loads them in a short session of its own, so
the returned object survives rollbacks of the request's session.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, current_app, g, redirect, request, session, url_for

from maintenance.web import protects_itself

from .models import User

F = TypeVar("F", bound=Callable[..., Any])
_CSRF_KEY = "_csrf"


def current_user() -> User | None:
    """The logged-in user of this request, or None."""
    uid = session.get("user_id")
    if uid is None:
        return None
    cached: User | None = g.get("_captioner_user")
    if cached is not None and cached.id == uid:
        return cached
    with current_app.extensions["captioner"].db.sessions() as s:
        user = s.get(User, uid)
    if user is None:  # deleted since login
        session.clear()
        return None
    g._captioner_user = user
    return user


def cached_user() -> User | None:
    """The user ``current_user`` already loaded for this request (never queries)."""
    user: User | None = g.get("_captioner_user")
    return user if user is not None and user.id == session.get("user_id") else None


def log_in(user: User) -> None:
    """Start a fresh session for ``user``."""
    session.clear()
    session["user_id"] = user.id
    session["username"] = user.username
    session["role"] = user.role
    g._captioner_user = user


def log_out() -> None:
    """End the session."""
    session.clear()
    g.pop("_captioner_user", None)


def wants_json() -> bool:
    """Whether the client sent or asked for JSON."""
    return request.is_json or request.accept_mimetypes.best == "application/json"


def _anonymous() -> Any:
    if wants_json():
        abort(401)
    return redirect(url_for("auth.login", next=request.full_path))


def login_required(view: F) -> F:
    """Only for logged-in users."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return _anonymous()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def admin_required(view: F) -> F:
    """Only for administrators."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None:
            return _anonymous()
        if not user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def csrf_token() -> str:
    """The session's CSRF token (Jinja global for every form)."""
    token = session.get(_CSRF_KEY)
    if token is None:
        token = session[_CSRF_KEY] = secrets.token_urlsafe(24)
    return str(token)


def check_csrf() -> None:
    """Refuse form posts without the session's token. JSON posts need no token: a
    browser cannot send ``application/json`` cross-site without a CORS preflight.
    The maintenance panel and API check their own (``protects_itself``)."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.is_json:
        return
    if protects_itself():
        return
    if current_app.config.get("CAPTIONER_CSRF") is False:
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get(_CSRF_KEY, "")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        abort(400, "missing or stale form token; reload the page and try again")
