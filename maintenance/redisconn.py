"""Redis clients with the short timeouts a control plane needs, URL resolution, replies as text."""

from __future__ import annotations

import redis

from .settings import Settings


def resolve_redis_url(settings: Settings) -> str:
    """``settings.redis_url`` or the shared embedded server (started on demand)."""
    if settings.redis_url:
        return settings.redis_url
    from .embedded import ensure_embedded_redis

    return ensure_embedded_redis(settings.data_dir)


def make_client(url: str, *, timeout: float = 1.0, blocking: bool = False) -> redis.Redis:
    """A client for ``url``; ``blocking`` clients (pub/sub) have no read timeout."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=None if blocking else timeout,
        health_check_interval=0 if blocking else 30,
        retry_on_timeout=False,
    )


def as_text(value: str | bytes) -> str:
    """A Redis reply as text (clients built here return bytes)."""
    return value.decode() if isinstance(value, bytes) else value


#: Exceptions meaning "Redis is unreachable or misbehaving right now".
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
