"""The lift check against jobs that end while it looks: the registry and the workers'
``inspect().active()`` disagree for a moment about every job that just ended (its pool child
removed the entry; the main process still reports it), and that must never refuse a lift.

Two real prefork workers run a stream of short jobs; the lift check runs 50 times meanwhile.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from maintenance.job_registry import JobRegistry
from tests.celery.conftest import Fleet
from tests.helpers import wait_for
from workers.emergency.handler import CeleryFleet

from .conftest import WORKERS, EmergencyFleet, hold_id

pytestmark = pytest.mark.slow

ATTEMPTS = 50


def _ran(fleet: Fleet, published: list[str]) -> int:
    return sum(fleet.runs(label) for label in list(published))


def test_lift_checks_racing_job_completions_find_nothing_wrong(
    emergency_fleet: EmergencyFleet,
) -> None:
    ef = emergency_fleet
    ef.reset()
    fleet = ef.fleet
    hold = hold_id()
    fleet.release(hold)  # every job ends as soon as it starts
    stop = threading.Event()
    published: list[str] = []

    def publish() -> None:
        n = 0
        while not stop.is_set():
            worker = WORKERS[n % len(WORKERS)]
            label = f"race-{uuid.uuid4().hex[:8]}"
            fleet.app.send_task("emergency.stubborn", args=(label, hold), queue=ef.queue(worker))
            published.append(label)
            n += 1
            # Keep the queues short so each check sees jobs starting and ending.
            wait_for(
                lambda: sum(fleet.queue_length(ef.queue(w)) for w in WORKERS) < 8,
                timeout=30,
                what="the workers keep up",
            )

    publisher = threading.Thread(target=publish, name="race-publisher", daemon=True)
    check = CeleryFleet(fleet.app)
    refusals: list[list[str]] = []
    publisher.start()
    try:
        wait_for(lambda: len(published) >= 8, timeout=30, what="jobs flowing")
        # At least ATTEMPTS checks, and on until at least ATTEMPTS jobs ended while they ran
        # (a check takes milliseconds; jobs take longer to flow through).
        checks = 0
        deadline = time.monotonic() + 180
        while checks < ATTEMPTS or _ran(fleet, published) < ATTEMPTS:
            assert time.monotonic() < deadline, (
                f"{_ran(fleet, published)} job(s) ended in {checks} checks"
            )
            what, problems = check.check(fleet.service)
            assert what == "workers"
            if problems:
                refusals.append(problems)
            checks += 1
    finally:
        stop.set()
        publisher.join(60)
    assert refusals == [], f"{len(refusals)} of {checks} checks refused: {refusals[:3]}"
    registry = JobRegistry(fleet.service.redis, fleet.service.keys)
    wait_for(lambda: registry.count() == 0, timeout=30, what="every job ended")


def test_a_job_no_registry_knows_is_named(emergency_fleet: EmergencyFleet) -> None:
    """A real inconsistency still refuses, naming the job and its worker."""
    ef = emergency_fleet
    ef.reset()
    fleet = ef.fleet
    hold = hold_id()
    task_id = ef.start("stubborn", f"ghost-{uuid.uuid4().hex[:6]}", hold, "e1")
    registry = JobRegistry(fleet.service.redis, fleet.service.keys)
    try:
        registry.remove(task_id)  # as if its task_prerun never reached Redis
        _, problems = CeleryFleet(fleet.app).check(fleet.service)
        assert any(task_id in p and "e1@" in p and "not in the registry" in p for p in problems)
    finally:
        fleet.release(hold)
    wait_for(lambda: registry.count() == 0, timeout=30, what="the job ended")
