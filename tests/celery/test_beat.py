"""The beat status check: windows, overdue, pending recovery, drain -- run as the real task."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from datetime import datetime

import pytest

from maintenance import build_service
from maintenance.domain.status import utcnow
from maintenance.store.jobs import JobRecord, JobStore
from tests.helpers import wait_for
from tests.support import MAINTENANCE_CLI
from workers.beat import STATUS_CHECK_TASK, status_check

from .conftest import ROOT, Fleet, WorkerProcess, watch_events

pytestmark = pytest.mark.slow


def _run_check(fleet: Fleet) -> None:
    """Publish the status check like beat does and wait for a worker to finish it."""
    result = fleet.app.send_task(STATUS_CHECK_TASK, ignore_result=False)
    result.get(timeout=30)


def test_status_check_is_in_the_beat_schedule_and_registered_on_workers(clean_fleet: Fleet):
    """celeryconfig schedules the check; the workers (hooks from celeryconfig) know it."""
    fleet = clean_fleet
    schedule = fleet.config["beat_schedule"]
    assert schedule["maintenance-status-check"]["task"] == STATUS_CHECK_TASK
    registered = fleet.app.control.inspect(timeout=2).registered() or {}
    assert len(registered) >= 2
    assert all(STATUS_CHECK_TASK in names for names in registered.values())


def test_scheduled_window_is_started_and_ended_by_the_check(clean_fleet: Fleet):
    """`maintenance schedule` stores a window; the check (running in a worker, during
    maintenance too: it is an admin task) starts it, then ends it when its time is up."""
    fleet = clean_fleet
    proc = subprocess.run(
        [
            MAINTENANCE_CLI,
            *("schedule", "--start", "now", "--end", "+3s", "--reason", "window test", "--json"),
        ],
        cwd=ROOT,
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    window_end = datetime.fromisoformat(json.loads(proc.stdout)["end_at"])
    _run_check(fleet)
    status = fleet.service.state.load()
    assert status.is_active and status.reason == "window test"
    assert status.enabled_by is not None and status.enabled_by.startswith("schedule #")
    assert status.estimated_completion is not None
    assert status.estimated_completion >= window_end
    wait_for(lambda: utcnow() > window_end, timeout=10, interval=0.1, what="window end passed")
    _run_check(fleet)
    assert not fleet.service.state.load().is_active
    kinds = [e.kind for e in fleet.service.history(10)]
    assert "maintenance_enabled" in kinds and "maintenance_disabled" in kinds


def test_overdue_maintenance_is_flagged_once(clean_fleet: Fleet):
    """Past its estimated end, maintenance is flagged overdue in status and log, once."""
    fleet = clean_fleet
    status = fleet.service.enable_maintenance("db upgrade", "1s", enabled_by="ops").status
    end = status.estimated_completion
    assert end is not None
    wait_for(lambda: utcnow() > end, timeout=10, interval=0.1, what="estimated end passed")
    first = status_check(fleet.service, fleet.app)
    second = status_check(fleet.service, fleet.app)
    assert first.overdue_flagged and not second.overdue_flagged
    assert fleet.service.state.load().overdue
    overdue = fleet.service.history(20, kinds=("maintenance_overdue",))
    assert len(overdue) == 1 and overdue[0].activation_id == status.activation_id


def test_check_finishes_a_recovery_the_disabling_node_could_not_do(clean_fleet: Fleet):
    """Disabled by a process without a Celery app: recovery stays pending until the
    check (in a worker) requeues the deferred jobs; each then runs once."""
    fleet = clean_fleet
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    tag = uuid.uuid4().hex[:6]
    labels = [f"pending-{tag}-{i}" for i in range(3)]
    store = JobStore(fleet.service.db)
    for i, label in enumerate(labels):
        store.record(
            JobRecord(
                original_id=f"pending-{tag}-{i}",
                task_name="captions.generate_caption",
                args=[label],
                queue=fleet.default_queue,
                operation="caption_generation",
            )
        )
    plain = build_service(fleet.settings, kind="web", register=False)  # no Celery app here
    try:
        plain.disable_maintenance("ops")
    finally:
        plain.close()
    assert fleet.service.state.load().recovery_pending
    assert all(fleet.runs(label) == 0 for label in labels)
    _run_check(fleet)
    wait_for(
        lambda: all(fleet.runs(lb) == 1 for lb in labels), timeout=30, what="requeued jobs ran"
    )
    assert not fleet.service.state.load().recovery_pending


def test_check_announces_the_drain_once(clean_fleet: Fleet):
    """With nothing of a blocked type running, maintenance is announced drained exactly once
    (by whichever of the check and the workers' monitors gets there first)."""
    fleet = clean_fleet
    status = fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops").status
    _run_check(fleet)
    status_check(fleet.service, fleet.app)
    drained = fleet.service.history(10, kinds=("drained",), activation_id=status.activation_id)
    assert len(drained) == 1


_RECEIVED_CHECK = re.compile(rf"{re.escape(STATUS_CHECK_TASK)}\[([0-9a-f-]{{36}})\] received")


def test_a_real_beat_publishes_the_check_without_a_task_sent_event(clean_fleet: Fleet, tmp_path):
    """With ``task_send_sent_event`` on (celeryconfig), a real ``celery beat`` publishing the
    check every 0.5 s sends no ``task-sent`` for it (nor do the workers send any event of
    it), while an app job's publish still sends its ``task-sent``: Celery's event ``State``
    fed by a real receiver -- what Flower shows -- knows the job and none of the checks."""
    fleet = clean_fleet
    assert fleet.config["task_send_sent_event"]
    log = tmp_path / "beat.log"
    with watch_events(fleet) as state:
        proc = subprocess.Popen(
            [
                sys.executable,
                *("-m", "celery", "-A", fleet.app_module, "beat"),
                *("-s", str(tmp_path / "schedule"), "--loglevel", "INFO"),
            ],
            cwd=ROOT,
            env={**fleet.env, "MAINTENANCE_BEAT_INTERVAL": "0.5"},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        beat = WorkerProcess("beat", proc, log)
        try:

            def checks_received() -> set[str]:
                found: set[str] = set()
                for worker in fleet.workers.values():
                    found.update(_RECEIVED_CHECK.findall(worker.log.read_text(errors="replace")))
                return found

            before = checks_received()
            wait_for(
                lambda: len(checks_received() - before) >= 3,
                timeout=60,
                interval=0.2,
                what=f"three checks from beat received by the workers\n{beat.tail()}",
            )
        finally:
            beat.stop()
        checks = checks_received() - before
        # Sent after the checks: its task-sent arrives after any of theirs would have.
        job = fleet.tasks["generate_caption"].apply_async((f"sent-{uuid.uuid4().hex[:6]}",))
        wait_for(
            lambda: job.id in state.tasks and state.tasks[job.id].sent is not None,
            timeout=20,
            interval=0.05,
            what="the job's task-sent event",
        )
        job.get(timeout=30)
        assert not checks & set(state.tasks)
        assert not [t for t in state.tasks.values() if t.name == STATUS_CHECK_TASK]
