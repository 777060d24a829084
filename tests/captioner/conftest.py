"""Fixtures: the captioner on real Redis and SQL, with its own broker keys and databases.

``captioner`` is the web app built by ``create_app`` with the test's control
plane, a Celery publisher on the real Redis broker (its keys under a prefix of
their own) and a seeded SQLite database; ``captioner_worker`` adds a real
``celery worker`` (prefork) process running ``maintenance_demo.captioner.tasks``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient
from maintenance_demo.captioner import create_app
from maintenance_demo.captioner.db import CaptionerDatabase
from maintenance_demo.captioner.seed import ADMIN, USER, seed
from maintenance_demo.captioner.tasks import create_celery

from maintenance import EnhancedMaintenanceModeService
from tests.celery.conftest import WorkerProcess
from tests.helpers import wait_for
from tests.support import delete_prefix

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Captioner:
    """The app under test and the real parts around it."""

    app: Flask
    db: CaptionerDatabase
    celery: Celery
    service: EnhancedMaintenanceModeService
    broker_prefix: str
    redis: redis.Redis
    env: dict[str, str]

    def client(self, login: Any = None) -> FlaskClient:
        """A test client, logged in as ``login`` (a seed ``Login``) when given."""
        client = self.app.test_client()
        if login is not None:
            reply = client.post(
                "/login", json={"username": login.username, "password": login.password}
            )
            assert reply.status_code == 200, reply.get_data(as_text=True)
        return client

    def queued(self, queue: str = "celery") -> int:
        """Messages waiting in ``queue`` on the broker."""
        return int(self.redis.llen(f"{self.broker_prefix}{queue}"))


def build_captioner(
    service: EnhancedMaintenanceModeService, redis_url: str, prefix: str, directory: Path
) -> Captioner:
    """The captioner on ``service`` (a started web node): its own broker keys under
    ``prefix``, its databases in ``directory``, seeded."""
    control_url = service.settings.database_url
    app_url = f"sqlite:///{directory / 'captioner.db'}"
    broker_prefix = f"{prefix}:broker:"
    transport = {"global_keyprefix": broker_prefix}
    celery = create_celery(
        {
            "broker_url": redis_url,
            "result_backend": redis_url,
            "broker_transport_options": transport,
            "result_backend_transport_options": transport,
        },
        service=service,
        db_url=app_url,
    )
    db = CaptionerDatabase(app_url)
    seed(db)
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "MAINTENANCE_SERVICE": service,
            "CAPTIONER_DATABASE": db,
            "CAPTIONER_CELERY": celery,
        }
    )
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_BROKER_KEYPREFIX": broker_prefix,
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "MAINTENANCE_DATABASE_URL": control_url,
        "CAPTIONER_DATABASE_URL": app_url,
        "MAINTENANCE_HEARTBEAT_INTERVAL": "0.2",
        "MAINTENANCE_REVALIDATE_INTERVAL": "0.2",
        "MAINTENANCE_NODE_TTL": "1.0",
    }
    client = redis.Redis.from_url(redis_url)
    return Captioner(app, db, celery, service, broker_prefix, client, env)


def close_captioner(captioner: Captioner) -> None:
    """Close the app and its Celery publisher; delete its broker keys."""
    captioner.app.extensions["captioner"].close()
    captioner.celery.close()
    delete_prefix(captioner.env["REDIS_URL"], captioner.broker_prefix)


@pytest.fixture
def captioner(make_service, redis_url: str, prefix: str, tmp_path: Path) -> Iterator[Captioner]:  # type: ignore[no-untyped-def]
    service = make_service(database_url=f"sqlite:///{tmp_path / 'control.db'}", kind="web").start()
    found = build_captioner(service, redis_url, prefix, tmp_path)
    yield found
    close_captioner(found)


@pytest.fixture
def user_client(captioner: Captioner) -> FlaskClient:
    """Alice, a regular user."""
    return captioner.client(USER)


@pytest.fixture
def admin_client(captioner: Captioner) -> FlaskClient:
    """The administrator."""
    return captioner.client(ADMIN)


@contextlib.contextmanager
def captioner_worker_process(
    captioner: Captioner, log: Path, concurrency: int = 2
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker -P prefork`` running the captioner's tasks, registered as
    a node before the block starts; stopped (warm, then killed) and reaped after it."""
    name = f"cap{uuid.uuid4().hex[:6]}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "maintenance_demo.captioner.tasks",
                "worker",
                "-P",
                "prefork",
                "-c",
                str(concurrency),
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=captioner.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(name, proc, log)
    try:
        wait_for(
            lambda: not worker.alive() or _worker_registered(captioner),
            30,
            0.1,
            "the worker to register as a node",
        )
        assert worker.alive(), worker.tail()
        yield proc
    finally:
        worker.stop(timeout=20)


@pytest.fixture
def captioner_worker(captioner: Captioner, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker -P prefork -c 2`` running the captioner's tasks."""
    with captioner_worker_process(captioner, tmp_path / "worker.log") as proc:
        yield proc


def _worker_registered(captioner: Captioner) -> bool:
    return any(n.kind == "worker" for n in captioner.service.nodes().values())
