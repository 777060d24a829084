"""Shared test plumbing: fast settings, Redis prefixes of a test's own, the CLI's path,
Flask-Session on Redis."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from maintenance import Settings

if TYPE_CHECKING:
    from flask import Flask

#: The ``maintenance`` console script of the running interpreter's environment.
MAINTENANCE_CLI = str(Path(sys.executable).with_name("maintenance"))


def fast_settings(redis_url: str, database_url: str, prefix: str, **overrides: Any) -> Settings:
    """Settings with short intervals, so tests see changes quickly; ``overrides`` win."""
    values: dict[str, Any] = {
        "revalidate_interval": 0.2,
        "sql_check_interval": 0.5,
        "heartbeat_interval": 0.2,
        # Generous: a loaded CI machine can starve a heartbeat thread for a second.
        "node_ttl": 3.0,
        "enable_wait": 2.0,
        "secret_key": "test-secret",
        "base_url": "http://localhost",
        **overrides,
    }
    return Settings(redis_url=redis_url, database_url=database_url, redis_prefix=prefix, **values)


def delete_prefix(redis_url: str, prefix: str) -> None:
    """Remove every key whose name starts with ``prefix``."""
    with redis.Redis.from_url(redis_url) as client:
        names = list(client.scan_iter(f"{prefix}*", count=1000))
        for start in range(0, len(names), 500):
            client.delete(*names[start : start + 500])


@contextmanager
def redis_prefix(redis_url: str, head: str = "t") -> Iterator[str]:
    """A fresh Redis key prefix (``head`` and 10 hex digits); its keys are deleted after."""
    value = f"{head}{uuid.uuid4().hex[:10]}"
    try:
        yield value
    finally:
        delete_prefix(redis_url, f"{value}:")


def with_redis_sessions(app: Flask, redis_url: str, prefix: str) -> Flask:
    """``app`` on Flask-Session's Redis server-side sessions, keys under ``prefix:session:``."""
    from flask_session import Session

    app.config.update(
        SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis.from_url(redis_url),
        SESSION_KEY_PREFIX=f"{prefix}:session:",
    )
    Session(app)
    return app


def session_keys(redis_url: str, prefix: str) -> set[str]:
    """The server-side session keys ``with_redis_sessions`` stored under ``prefix``."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    return set(client.scan_iter(f"{prefix}:session:*"))
