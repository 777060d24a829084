"""Who is asking: admin detection for many user shapes, and the admin bypass context."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .errors import NotAuthorized

_bypass_user: ContextVar[Any | None] = ContextVar("maintenance_bypass_user", default=None)
#: The context variable behind ``current_bypass_user`` (hot paths read it directly).
BYPASS_USER = _bypass_user


def _roles(user: Any) -> set[str]:
    if isinstance(user, Mapping):
        role, roles = user.get("role"), user.get("roles")
    else:
        role, roles = getattr(user, "role", None), getattr(user, "roles", None)
    found: set[str] = set()
    if isinstance(role, str):
        found.add(role)
    elif role is not None and hasattr(role, "value"):
        found.add(str(role.value))
    if isinstance(roles, str):
        found.update(r.strip() for r in roles.split(","))
    elif roles:
        found.update(str(getattr(r, "value", getattr(r, "name", r))) for r in roles)
    return {r.lower() for r in found}


def _flag(user: Any, name: str) -> bool | None:
    value = user.get(name) if isinstance(user, Mapping) else getattr(user, name, None)
    if callable(value):
        value = value()
    return None if value is None else bool(value)


class RoleResolver:
    """Decides whether a user is an admin / a critical admin.

    Understands objects with ``is_admin``/``is_critical_admin`` attributes or
    ``role``/``roles`` (Flask-Login users, SQLAlchemy models), mappings with the
    same keys (session dicts), and ``None`` (anonymous). Replace it with any
    callable pair for other user models.
    """

    def __init__(
        self,
        admin_roles: tuple[str, ...] = ("admin",),
        critical_roles: tuple[str, ...] = ("critical",),
    ) -> None:
        self.admin_roles = {r.lower() for r in admin_roles}
        self.critical_roles = {r.lower() for r in critical_roles}
        self._any_admin = frozenset(self.admin_roles | self.critical_roles)

    def is_admin(self, user: Any) -> bool:
        """True for administrators (critical admins are admins too)."""
        if user is None or type(user) is str:
            return False
        if type(user) is dict and "is_admin" not in user and "roles" not in user:
            # The common shape (a session dict with one role), without ABC checks.
            role = user.get("role")
            return type(role) is str and role.lower() in self._any_admin
        flag = _flag(user, "is_admin")
        if flag is not None:
            return flag or self.is_critical_admin(user)
        roles = _roles(user)
        return bool(roles & self.admin_roles) or bool(roles & self.critical_roles)

    def is_critical_admin(self, user: Any) -> bool:
        """True for administrators flagged critical."""
        if user is None or type(user) is str:
            return False
        if type(user) is dict and "is_critical_admin" not in user and "roles" not in user:
            # The common shape (a session dict with one role), without ABC checks.
            role = user.get("role")
            return type(role) is str and role.lower() in self.critical_roles
        flag = _flag(user, "is_critical_admin")
        if flag is not None:
            return flag
        return bool(_roles(user) & self.critical_roles)


def user_label(user: Any) -> str | None:
    """A short printable identity for logs (never a secret)."""
    if user is None:
        return None
    if isinstance(user, str):
        return user
    for key in ("username", "name", "email", "id", "user_id"):
        value = user.get(key) if isinstance(user, Mapping) else getattr(user, key, None)
        if value is not None and not callable(value):
            return str(value)
    return type(user).__name__


def current_bypass_user() -> Any | None:
    """The admin whose bypass is in force in this context, if any."""
    return _bypass_user.get()


@contextmanager
def bypass_context(user: Any, is_admin: Callable[[Any], bool]) -> Iterator[Any]:
    """Within the block, checks run as ``user`` (who must be an admin)."""
    if not is_admin(user):
        raise NotAuthorized(f"{user_label(user) or 'anonymous'} is not an administrator")
    token = _bypass_user.set(user)
    try:
        yield user
    finally:
        _bypass_user.reset(token)
