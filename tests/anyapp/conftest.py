"""Fixtures: the ledger app on a real Redis, a real ``celery worker`` (prefork) and a real
HTTP server (waitress), all under keys and files of their own; every process started
here is stopped and reaped."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from flask import Flask

from maintenance import EnhancedMaintenanceModeService, build_service
from tests.celery.conftest import WorkerProcess
from tests.helpers import wait_for
from tests.services import LiveServer, shared_redis_url
from tests.support import delete_prefix

from . import ledger

ROOT = Path(__file__).resolve().parents[2]


def ledger_env(directory: Path, prefix: str) -> dict[str, str]:
    """The environment the ledger's processes share."""
    url = shared_redis_url()
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": url,
        "CELERY_BROKER_URL": url,
        "LEDGER_PREFIX": prefix,
        "LEDGER_BROKER_PREFIX": f"{prefix}:b:",
        "LEDGER_QUEUE": f"{prefix}-ledger",
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "MAINTENANCE_DATABASE_URL": f"sqlite:///{directory / 'maintenance.db'}",
        "MAINTENANCE_DATA_DIR": str(directory / "data"),
        "MAINTENANCE_REVALIDATE_INTERVAL": "0.2",
        "MAINTENANCE_SQL_CHECK_INTERVAL": "0.5",
        "MAINTENANCE_HEARTBEAT_INTERVAL": "0.2",
        "MAINTENANCE_NODE_TTL": "3.0",
        "MAINTENANCE_ENABLE_WAIT": "10.0",
        "MAINTENANCE_SECRET_KEY": "ledger-test-secret",
    }


def start_worker(
    env: dict[str, str], directory: Path, name: str, service: EnhancedMaintenanceModeService
) -> WorkerProcess:
    """A ``celery -A tests.anyapp.ledger worker`` registered as a node and answering."""
    log = directory / f"{name}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.anyapp.ledger",
            "worker",
            "-P",
            "prefork",
            "-c",
            "1",
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            "-Q",
            env["LEDGER_QUEUE"],
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env={**env, "LEDGER_WORKER": "1"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = WorkerProcess(name, proc, log)

    def ready() -> bool:
        if not worker.alive():
            raise AssertionError(f"worker {name} exited:\n{worker.tail()}")
        return any(
            n.kind == "worker" and n.info.get("hostname") == worker.nodename
            for n in service.nodes().values()
        )

    try:
        wait_for(ready, timeout=90, interval=0.2, what=f"worker {name} registered")
    except AssertionError:
        worker.stop()
        raise
    return worker


@dataclass
class Ledger:
    """The ledger's running parts, as a test sees them."""

    env: dict[str, str]
    directory: Path
    service: EnhancedMaintenanceModeService
    celery: Celery
    app: Flask
    server: LiveServer
    worker: WorkerProcess

    @property
    def url(self) -> str:
        return self.server.url

    def runs(self, task: str) -> int:
        return ledger.runs(self.env, task)

    def off(self) -> None:
        if self.service.state.load().is_active:
            self.service.disable_maintenance("test-reset", requeue=False)


@pytest.fixture(scope="module")
def ledger_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """Service and web app in this process behind waitress, one prefork worker."""
    directory = tmp_path_factory.mktemp("ledger")
    prefix = f"la{uuid.uuid4().hex[:8]}"
    env = ledger_env(directory, prefix)
    service = build_service(ledger.settings(env), kind="web").start()
    celery = ledger.make_celery(env, service)
    app = ledger.create_app(
        service, celery, MAINTENANCE_STATIC_PAGE=str(directory / "www" / "maintenance.html")
    )
    # Headers as a server passes them on (waitress strips X-Forwarded-* by default):
    # the allowlist itself must refuse what untrusted peers claim.
    server = LiveServer(app, name="ledger-http", clear_untrusted_proxy_headers=False).start()
    cleanups: list[Callable[[], Any]] = [
        lambda: delete_prefix(env["REDIS_URL"], f"{prefix}:"),
        service.db.dispose,
        service.close,
        server.stop,
    ]
    try:
        worker = start_worker(env, directory, "ledger1", service)
        cleanups.append(worker.stop)
        yield Ledger(env, directory, service, celery, app, server, worker)
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


@pytest.fixture
def stack(ledger_stack: Ledger) -> Iterator[Ledger]:
    """The ledger with maintenance off before and after the test."""
    ledger_stack.off()
    yield ledger_stack
    ledger_stack.off()
