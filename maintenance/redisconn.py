"""Redis clients with the short timeouts a control plane needs, URL resolution, replies as text.

Every client of the control plane is built here, so each one follows a
Sentinel failover: for a ``redis+sentinel://`` URL the client asks the
sentinels for the current master whenever it opens a connection, and a
connection the old master dropped (or one refused with READONLY after a
demotion) fails with a ``ConnectionError`` that callers treat as "Redis
unavailable right now"; the next connection finds the promoted replica.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from .redisurl import SentinelURL, canonical_redis_url, is_sentinel_url, parse_sentinel_url
from .settings import Settings


def resolve_redis_url(settings: Settings) -> str:
    """``settings.redis_url`` in the form ``make_client`` takes (Celery's sentinel
    spelling rewritten, ``ValidationError`` when malformed), or the shared embedded
    server (started on demand)."""
    if settings.redis_url:
        return canonical_redis_url(settings.redis_url, settings.redis_sentinel_master)
    from .embedded import ensure_embedded_redis

    return ensure_embedded_redis(settings.data_dir)


def make_client(url: str, *, timeout: float = 1.0, blocking: bool = False) -> redis.Redis:
    """A client for ``url``; ``blocking`` clients (pub/sub) have no read timeout."""
    options: dict[str, Any] = dict(
        socket_connect_timeout=timeout,
        socket_timeout=None if blocking else timeout,
        health_check_interval=0 if blocking else 30,
        retry_on_timeout=False,
    )
    if is_sentinel_url(url):
        target = parse_sentinel_url(url)
        return _sentinels(target, timeout).master_for(
            target.service,
            db=target.db,
            username=target.username,
            password=target.password,
            **options,
        )
    return redis.Redis.from_url(url, **options)


def as_text(value: str | bytes) -> str:
    """A Redis reply as text (clients built here return bytes)."""
    return value.decode() if isinstance(value, bytes) else value


# One Sentinel manager per deployment and timeout in a process: each holds a
# connection to every sentinel, and a reconnecting cache thread asks for a
# fresh client every second while Redis is away. redis-py's pools reset
# themselves in a forked child, so sharing across fork() is safe.
# A sentinel that does not answer is skipped for the next one, never retried:
# redis-py's default (10 retries with backoff, per sentinel) turned one
# "no master right now" into seven seconds of a blocked request.
_managers: dict[tuple[Any, ...], Sentinel] = {}
_managers_lock = threading.Lock()


def _sentinels(target: SentinelURL, timeout: float) -> Sentinel:
    key = (target.sentinels, target.sentinel_password, timeout)
    with _managers_lock:
        manager = _managers.get(key)
        if manager is None:
            manager = _managers[key] = Sentinel(
                list(target.sentinels),
                sentinel_kwargs={
                    "socket_connect_timeout": timeout,
                    "socket_timeout": timeout,
                    "password": target.sentinel_password,
                    "retry": Retry(NoBackoff(), 0),
                },
            )
        return manager


#: Exceptions meaning "Redis is unreachable or misbehaving right now"
#: (``MasterNotFoundError`` during a failover is a ``ConnectionError``).
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


def describe_redis_error(exc: BaseException) -> str:
    """One short line saying why Redis failed, for status and logs."""
    if isinstance(exc, MasterNotFoundError):
        # redis-py appends the repr of every sentinel client: hundreds of characters.
        what = str(exc).split(" : ", 1)[0]
        return f"{what}: the sentinels know no reachable master (failover in progress?)"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
