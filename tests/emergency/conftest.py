"""Fixtures: a fleet of two real prefork ``celery worker`` processes running the emergency
test tasks, each on its own queue, on the real Redis broker (the Celery suite's ``Fleet``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from maintenance.job_registry import JobRegistry
from tests.celery.conftest import Fleet, close_fleet, delete_prefix, fleet_environment, open_fleet
from tests.helpers import wait_for

WORKERS = ("e1", "e2")


class EmergencyFleet:
    """The fleet plus helpers to start held jobs on a chosen worker."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def queue(self, worker: str) -> str:
        """The queue only ``worker`` consumes."""
        return f"{self.fleet.prefix}-{worker}"

    def start(self, task: str, label: str, hold: str, worker: str) -> str:
        """Publish ``emergency.<task>`` to ``worker``; return its task id once it runs."""
        result = self.fleet.app.send_task(
            f"emergency.{task}", args=(label, hold), queue=self.queue(worker)
        )
        wait_for(lambda: self.fleet.started(label), timeout=20, what=f"{label} started")
        return str(result.id)

    def count(self, what: str, label: str) -> int:
        """``starts``, ``runs`` or ``aborted`` of ``label``."""
        return int(self.fleet.client.get(f"{self.fleet.prefix}:{what}:{label}") or 0)

    def pid(self, label: str) -> int:
        """The pool child that started ``label`` (last start)."""
        return int(self.fleet.client.get(f"{self.fleet.prefix}:started:{label}") or 0)

    def reset(self) -> None:
        """Maintenance off, no held-back jobs, no holds, nothing left running."""
        self.fleet.reset()
        service = self.fleet.service
        registry = JobRegistry(service.redis, service.keys)
        wait_for(lambda: registry.count() == 0, timeout=30, what="no job running")


@pytest.fixture(scope="session")
def emergency_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmergencyFleet]:
    """Workers ``e1`` and ``e2`` (prefork, 4 processes each), one queue each."""
    prefix = f"te{uuid.uuid4().hex[:8]}"
    env = fleet_environment(tmp_path_factory.mktemp("emergency-fleet"), prefix)
    env["CELERY_PREFETCH_MULTIPLIER"] = "1"
    fleet = open_fleet(env, app_module="tests.emergency.app", concurrency=4)
    wrapped = EmergencyFleet(fleet)
    try:
        for name in WORKERS:
            fleet.start_worker(name, [wrapped.queue(name)])
        yield wrapped
    finally:
        close_fleet(fleet)
        delete_prefix(env["REDIS_URL"], prefix)


def hold_id() -> str:
    """A fresh hold name (released by ``fleet.release``)."""
    return f"hold-{uuid.uuid4().hex[:8]}"


def labels(*names: str) -> dict[str, Any]:
    """Unique labels for side-effect counters."""
    tag = uuid.uuid4().hex[:6]
    return {name: f"{name}-{tag}" for name in names}
