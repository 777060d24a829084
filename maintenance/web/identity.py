"""Who is making this request: Flask-Login's ``current_user``, a plain session role, or
whatever the app plugs in, reduced to a ``WebIdentity`` the core's ``RoleResolver`` reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app, g, request, session
from flask import globals as flask_globals
from flask.globals import request_ctx

from ..roles import user_label

if TYPE_CHECKING:
    from ..roles import RoleResolver
    from .config import WebConfig

#: The current request context, through Flask's public proxy (looked up once: the gate
#: calls it on every request).
_request_context: Callable[[], Any] = request_ctx._get_current_object  # type: ignore[attr-defined]
#: The same, straight from Flask's context variable where there is one (Flask 2.2+):
#: no proxy in between (the gate's fast path runs inside a request).
current_request_context: Callable[[], Any] = getattr(
    getattr(flask_globals, "_cv_request", None), "get", _request_context
)
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


def raw_session() -> Any:
    """This request's session without marking it accessed (None outside a request).

    Flask 3.1.3+ marks the session accessed (``Vary: Cookie``) whenever the
    ``session`` proxy is touched, and offers no public way to look without
    touching: a peek on every request must not change the caching headers of
    responses that do not depend on the session, so this reads the request
    context's private slot (``_session``; ``session`` before Flask 3.1.3).
    """
    try:
        state = _request_context().__dict__
    except RuntimeError:  # outside a request
        return None
    return state.get("_session") or state.get("session")


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
    """``MAINTENANCE_CURRENT_USER``, else Flask-Login's user, else the session role."""
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


UserCheck = Callable[[Any], bool]


class IdentityResolver:
    """Who is asking, for one app: its user lookup and admin checks, decided once per request.

    The checks are, first to last: an override given here (the extension's
    subclass methods), the app's ``MAINTENANCE_*`` hooks, the core's ``roles``.
    """

    def __init__(
        self,
        config: WebConfig,
        roles: RoleResolver,
        *,
        current_user: Callable[[], Any] | None = None,
        is_admin: UserCheck | None = None,
        is_critical_admin: UserCheck | None = None,
    ) -> None:
        self.config = config
        #: The app's own rules: ``MAINTENANCE_IS_ADMIN`` / ``..._CRITICAL_ADMIN``, else ``roles``.
        self.admin_check: UserCheck = config.is_admin or roles.is_admin
        self.critical_check: UserCheck = config.is_critical_admin or roles.is_critical_admin
        self._current_user = current_user
        self._is_admin = is_admin or self.admin_check
        self._is_critical = is_critical_admin or self.critical_check
        # Without a way to find a user other than the session and Flask-Login, a
        # request with neither is anonymous before anything is loaded.
        self._custom_lookup = current_user is not None or config.current_user is not None

    def current_user(self) -> Any | None:
        """The app's user for this request, or None when anonymous."""
        if self._current_user is not None:
            return self._current_user()
        return default_current_user(self.config)

    def is_admin(self, user: Any) -> bool:
        """Whether ``user`` is an administrator (None: no)."""
        return user is not None and bool(self._is_admin(user))

    def is_critical_admin(self, user: Any) -> bool:
        """Whether ``user`` is an administrator flagged critical (None: no)."""
        return user is not None and bool(self._is_critical(user))

    def identity_of(self, user: Any) -> WebIdentity:
        """A ``WebIdentity`` for any user object (None: anonymous)."""
        if user is None:
            return ANONYMOUS
        return build_identity(
            user,
            is_admin=self.is_admin(user),
            is_critical_admin=self.is_critical_admin(user),
            via=via_of(user, self.config),
        )

    def identity(self) -> WebIdentity:
        """The current request's identity (resolved once per request)."""
        found = cached()
        if found is None:
            if self._surely_anonymous():
                found = remember(ANONYMOUS)
            else:
                found = remember(self.identity_of(self.current_user()))
        return found

    def _surely_anonymous(self) -> bool:
        # No session, no Flask-Login remember cookie or request loader, no custom
        # user hook: nobody can be logged in, and nothing needs to be loaded.
        if self._custom_lookup or raw_session():
            return False
        manager = getattr(current_app, "login_manager", None)
        if manager is None:
            return True
        if getattr(manager, "_request_callback", None) or getattr(
            manager, "_header_callback", None
        ):
            return False
        return (
            current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") not in request.cookies
        )


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
