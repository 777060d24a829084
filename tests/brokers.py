"""The Celery brokers tests run on: the Redis broker (keys under a prefix of their own)
and RabbitMQ (``pyamqp://``, a private vhost per test run where ``rabbitmqctl`` can make
one). RabbitMQ tests are skipped, with the reason, where no server answers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from kombu import Connection, Exchange, Queue

MACHINE_RABBITMQ = os.environ.get("TEST_RABBITMQ_URL", "pyamqp://guest:guest@127.0.0.1:5672//")
BROKERS = ("redis", "rabbitmq")


def rabbitmq_reachable(url: str = MACHINE_RABBITMQ) -> bool:
    try:
        with Connection(url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


def _rabbitmqctl(*args: str) -> bool:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return False
    try:
        done = subprocess.run([ctl, *args], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@dataclass
class RabbitVhost:
    """A vhost of this test run (deleted at the end), or the server's own when it cannot
    be made (then queue names, which carry the run's prefix, keep runs apart)."""

    base: str = MACHINE_RABBITMQ
    name: str | None = None
    user: str = "guest"

    def open(self) -> RabbitVhost:
        name = f"test-{uuid.uuid4().hex[:8]}"
        if _rabbitmqctl("add_vhost", name):
            if _rabbitmqctl("set_permissions", "-p", name, self.user, ".*", ".*", ".*"):
                self.name = name
            else:
                _rabbitmqctl("delete_vhost", name)
        return self

    @property
    def url(self) -> str:
        if self.name is None:
            return self.base
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc}/{self.name}"

    def close(self) -> None:
        if self.name is not None:
            _rabbitmqctl("delete_vhost", self.name)
            self.name = None


@dataclass
class TestBroker:
    """One broker as the tests see it: its environment for ``celeryconfig``, and probes."""

    kind: str  # "redis" or "rabbitmq"
    url: str
    #: Redis broker: every key under this prefix (``global_keyprefix``).
    keyprefix: str = ""
    #: Where results go when the broker cannot hold them (RabbitMQ: the test Redis).
    result_backend: str | None = None
    _client: Any = field(default=None, repr=False)

    __test__ = False  # not a test class

    @property
    def transport_options(self) -> dict[str, str]:
        """kombu transport options reaching this broker's keys (``global_keyprefix``)."""
        return {"global_keyprefix": self.keyprefix} if self.kind == "redis" else {}

    def env(self) -> dict[str, str]:
        """``CELERY_*`` variables for ``celeryconfig``."""
        env = {"CELERY_BROKER_URL": self.url, "CELERY_BROKER_KEYPREFIX": self.keyprefix}
        if self.result_backend:
            env["CELERY_RESULT_BACKEND"] = self.result_backend
        return env

    def queue_length(self, queue: str) -> int:
        """Messages waiting (not delivered) in ``queue``; 0 if it does not exist."""
        if self.kind == "redis":
            client = self._redis()
            total = 0
            for name in client.scan_iter(f"{self.keyprefix}{queue}*", count=500):
                if client.type(name) == b"list":
                    total += int(client.llen(name))
            return total
        with Connection(self.url) as conn:
            channel = conn.default_channel
            try:
                return int(channel.queue_declare(queue, passive=True).message_count)
            except Exception:
                return 0

    def unacked(self) -> int:
        """Messages delivered to a worker and not yet acknowledged (RabbitMQ: -1, unknown
        without the management API; callers wait on their own side effects instead)."""
        if self.kind == "redis":
            return int(self._redis().hlen(f"{self.keyprefix}unacked"))
        return -1

    def declare_queue(self, queue: str) -> None:
        """Declare ``queue`` and its binding as a worker consuming it (``-Q``) would."""
        with Connection(self.url, transport_options=self.transport_options) as conn:
            Queue(queue, Exchange(queue), routing_key=queue)(conn.default_channel).declare()

    def delete_queue(self, queue: str) -> None:
        if self.kind == "redis":
            client = self._redis()
            for name in client.scan_iter(f"{self.keyprefix}{queue}*", count=500):
                client.delete(name)
            return
        with contextlib.suppress(Exception), Connection(self.url) as conn:
            conn.default_channel.queue_delete(queue)

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url)
        return self._client
