"""Who is making this request: Flask-Login's ``current_user``, a plain session role, or
whatever the app plugs in, reduced to a ``WebIdentity`` the core's ``RoleResolver`` reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app, g, session

from ..roles import user_label

if TYPE_CHECKING:
    from .config import WebConfig

_G_KEY = "_maintenance_identity"
_G_FORMER = "_maintenance_former_identity"


@dataclass(frozen=True)
class WebIdentity:
    """The caller as the control plane sees it.

    ``is_admin`` / ``is_critical_admin`` are plain attributes, so the core's
    ``RoleResolver`` (and therefore ``service.bypass`` and the Celery publish
    gate) treats this object exactly as the web side decided.
    """

    user: Any = None
    username: str | None = None
    is_admin: bool = False
    is_critical_admin: bool = False
    authenticated: bool = False
    via: str = "anonymous"  # flask-login | session | custom | bypass | anonymous


ANONYMOUS = WebIdentity()


def flask_login_user() -> Any | None:
    """The authenticated Flask-Login user, if Flask-Login is installed and set up on this app."""
    if not hasattr(current_app, "login_manager"):
        return None
    try:
        from flask_login import current_user
    except ImportError:  # Flask-Login is optional
        return None
    user = current_user._get_current_object()
    return user if getattr(user, "is_authenticated", False) else None


def session_user(config: WebConfig) -> Mapping[str, Any] | None:
    """A mapping for a plain session login (``session[role_key]``), or None."""
    role = session.get(config.role_key)
    roles = session.get("roles")
    if role is None and not roles:
        return None
    return {
        "role": role,
        "roles": roles,
        "username": session.get(config.user_key) or session.get("user_id"),
    }


def default_current_user(config: WebConfig) -> Any | None:
    """Flask-Login's user when someone is logged in through it, else the session role."""
    if config.current_user is not None:
        return config.current_user()
    return flask_login_user() or session_user(config)


def build_identity(
    user: Any,
    *,
    is_admin: bool,
    is_critical_admin: bool,
    via: str,
) -> WebIdentity:
    """A ``WebIdentity`` for ``user`` (None: anonymous)."""
    if user is None:
        return ANONYMOUS
    return WebIdentity(
        user=user,
        username=user_label(user),
        is_admin=is_admin or is_critical_admin,
        is_critical_admin=is_critical_admin,
        authenticated=True,
        via=via,
    )


def via_of(user: Any, config: WebConfig) -> str:
    """How ``user`` was found (for logs and the sessions sample)."""
    if config.current_user is not None:
        return "custom"
    return "session" if isinstance(user, Mapping) else "flask-login"


def cached() -> WebIdentity | None:
    """The identity already resolved for this request, if any."""
    return g.get(_G_KEY)


def remember(identity: WebIdentity) -> WebIdentity:
    """Keep ``identity`` for the rest of this request."""
    setattr(g, _G_KEY, identity)
    return identity


def remember_former(identity: WebIdentity) -> None:
    """Whom this request was logged out from (blocked attempts stay attributed)."""
    setattr(g, _G_FORMER, identity)


def former() -> WebIdentity | None:
    """The identity this request's session was logged out from, if any."""
    return g.get(_G_FORMER)


def forget() -> None:
    """Drop the cached identity (after logging the session out)."""
    g.pop(_G_KEY, None)
