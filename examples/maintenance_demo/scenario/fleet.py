"""The scenario's own fleet: the demo launcher on fresh databases and fresh Redis keys."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from maintenance import EnhancedMaintenanceModeService, Settings
from maintenance_demo.captioner.db import database_url
from maintenance_demo.captioner.jobs import HOLD_FILE_ENV
from maintenance_demo.captioner.tasks import create_celery

from ..launcher import DemoOptions, DemoStack


def _sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


@dataclass
class ScenarioFleet:
    """The demo stack of one run, plus what the scenario observes it with.

    Every run gets a directory of its own (``<data dir>/scenario/<run>``) for its
    SQLite files, logs and report, and Redis keys under a prefix of its own, so it
    never meets the state of an earlier run or of a demo running beside it.
    """

    options: DemoOptions
    base: Settings
    run_dir: Path
    stack: DemoStack = field(init=False)
    broker_prefix: str = field(init=False)
    _publisher: Celery | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        prefix = f"{self.base.redis_prefix}:scenario-{secrets.token_hex(3)}"
        control = self.base.database_url
        if _sqlite(control):
            control = f"sqlite:///{self.run_dir.absolute() / 'maintenance.db'}"
        app_db = database_url()
        if _sqlite(app_db) or _sqlite(control):
            app_db = f"sqlite:///{self.run_dir.absolute() / 'captioner.db'}"
        self.broker_prefix = f"{prefix}:broker:"
        settings = self.base.replace(database_url=control, redis_prefix=prefix)
        self.stack = DemoStack(
            self.options,
            settings,
            self.run_dir,
            app_db_url=app_db,
            extra_env={
                "CELERY_BROKER_KEYPREFIX": self.broker_prefix,
                HOLD_FILE_ENV: str(self.hold_file),
            },
        )

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> float:
        """Prepare the stores and start web, workers and beat; seconds it took."""
        started = time.monotonic()
        self.stack.prepare()
        self.stack.start(threading.Event())
        return time.monotonic() - started

    @property
    def hold_file(self) -> Path:
        """While it exists, the fleet's jobs run on past their duration (``held()``)."""
        return self.run_dir.absolute() / "hold-jobs"

    def hold(self) -> None:
        """Keep every job running (until it is told to stop, signalled or ``release``d)."""
        self.hold_file.touch()

    def release(self) -> None:
        """Let held jobs finish."""
        self.hold_file.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop every process and forget this run's Redis keys."""
        self.release()  # a warm shutdown waits for running jobs
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                self._publisher.close()
        self.stack.stop()
        redis_url = self.stack.redis_url
        if not redis_url or self.stack.started_redis:
            return  # the embedded server this run started is gone, and its keys with it
        with contextlib.suppress(redis.RedisError, OSError):
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(f"{self.stack.settings.redis_prefix}:*", count=1000))
            for chunk in range(0, len(keys), 500):
                client.delete(*keys[chunk : chunk + 500])

    def remove_databases(self) -> None:
        """Delete the run's SQLite files and beat schedule (logs and the report stay)."""
        for pattern in ("*.db", "*.db-*", "celerybeat-schedule*"):
            for path in self.run_dir.glob(pattern):
                with contextlib.suppress(OSError):
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink()

    # -- what the scenario looks at ---------------------------------------------------
    @property
    def service(self) -> EnhancedMaintenanceModeService:
        """The scenario's own view of the control plane (not a fenced node)."""
        assert self.stack.service is not None
        return self.stack.service

    @property
    def web_url(self) -> str:
        """Where the captioner answers."""
        return self.stack.web_url

    @property
    def env(self) -> dict[str, str]:
        """The environment every fleet process (and every typed command) runs with."""
        assert self.stack.supervisor is not None
        return self.stack.supervisor.env

    @property
    def publisher(self) -> Celery:
        """A Celery app with the maintenance hooks, on the fleet's broker (direct publishes)."""
        if self._publisher is None:
            transport: dict[str, Any] = {"global_keyprefix": self.broker_prefix}
            self._publisher = create_celery(
                {
                    "broker_url": self.stack.redis_url,
                    "result_backend": self.stack.redis_url,
                    "broker_transport_options": transport,
                    "result_backend_transport_options": transport,
                },
                service=self.service,
                db_url=self.stack.app_database_url,
                main="scenario",
            )
        return self._publisher

    def queued_ids(self, queue: str = "celery") -> set[str]:
        """Task ids of the messages waiting in ``queue`` on the broker."""
        import json

        raw = self.service.redis.lrange(f"{self.broker_prefix}{queue}", 0, -1)
        found = set()
        for message in raw:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                found.add(str(json.loads(message)["headers"]["id"]))
        return found
