"""Work that started before maintenance finishes; new work cannot hide inside it.

Real prefork workers: jobs are held inside the task body until the test
releases them, so maintenance is switched on while they are mid-run.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from celery import chain, chord

from maintenance import events as maintenance_events
from maintenance.job_registry import JobRegistry
from tests.helpers import wait_for
from workers.emergency.stopped import STOPPED_STATE

from .conftest import ADMIN, Fleet

pytestmark = pytest.mark.slow


def _hold() -> str:
    return f"hold-{uuid.uuid4().hex[:8]}"


def _label(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def test_job_started_before_enable_completes_and_the_fleet_drains(clean_fleet: Fleet):
    """A caption job running when maintenance starts finishes once; the registry shows it
    while it runs, then the drain is announced (Redis channel and event log)."""
    fleet = clean_fleet
    hold, label = _hold(), _label("running")
    fleet.tasks["generate_caption"].delay(label, hold)
    wait_for(lambda: fleet.started(label), timeout=20, what="job started")

    result = fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    assert result.fenced
    assert len([n for n in result.applied_nodes if n.startswith("worker@")]) == 2
    status = fleet.service.get_maintenance_status()
    assert status.active_jobs_count == 1
    (entry,) = JobRegistry(fleet.service.redis, fleet.service.keys).all().values()
    assert entry.operation == "caption_generation"
    assert entry.worker in {w.nodename for w in fleet.workers.values()}
    assert entry.node in fleet.service.nodes()

    drained: list[str] = []
    maintenance_events.drained.connect(lambda _s, **kw: drained.append(kw["activation_id"]))
    fleet.release(hold)
    wait_for(lambda: fleet.runs(label) == 1, timeout=20, what="job finished")
    wait_for(
        lambda: fleet.service.get_maintenance_status().active_jobs_count == 0,
        timeout=10,
        what="registry empty",
    )
    wait_for(lambda: fleet.service.history(5, kinds=("drained",)), timeout=10, what="drain logged")
    assert fleet.client.exists(fleet.service.keys.drain_announced(status.activation_id))


def test_chain_started_before_completes_every_step(clean_fleet: Fleet):
    """Steps 2 and 3 are published during maintenance by the chain itself: they run."""
    fleet = clean_fleet
    step = fleet.tasks["step"]
    hold = _hold()
    labels = [_label(f"chain{i}") for i in (1, 2, 3)]
    chain(step.s(None, labels[0], hold), step.s(labels[1]), step.s(labels[2])).apply_async()
    wait_for(lambda: fleet.started(labels[0]), timeout=20, what="first step started")
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    fleet.release(hold)
    wait_for(lambda: all(fleet.runs(lb) == 1 for lb in labels), timeout=30, what="all steps ran")
    assert fleet.service.get_maintenance_status().deferred_jobs_count == 0


def test_retry_and_chord_body_of_running_work_complete(clean_fleet: Fleet):
    """A retry and a chord body published by jobs that started before maintenance are
    continuations: allowed in NORMAL mode. (At most two jobs are held, so both surely
    run at once whichever worker reserves them.)"""
    fleet = clean_fleet
    t = fleet.tasks
    hold = _hold()
    retry, body = _label("retry"), _label("chord-body")
    held_head, quick_head = _label("head-held"), _label("head-quick")
    t["retry_once"].delay(retry, hold)
    chord(
        [t["generate_caption"].s(held_head, hold), t["generate_caption"].s(quick_head)],
        t["collect"].s(body),
    ).apply_async()
    wait_for(
        lambda: (
            all(fleet.started(x) for x in (f"{retry}-attempt", held_head))
            and fleet.runs(quick_head) == 1
        ),
        timeout=20,
        what="jobs running",
    )
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    fleet.release(hold)
    expected = [retry, body, held_head, quick_head]
    wait_for(
        lambda: all(fleet.runs(x) == 1 for x in expected), timeout=30, what="continuations ran"
    )
    assert fleet.service.get_maintenance_status().deferred_jobs_count == 0


def test_sub_tasks_of_running_job_complete(clean_fleet: Fleet):
    """Sub-tasks a job that started before maintenance publishes during it all run."""
    fleet = clean_fleet
    hold, parent = _hold(), _label("fanout")
    fleet.tasks["fan_out"].delay(parent, 3, hold)
    wait_for(lambda: fleet.started(parent), timeout=20, what="job running")
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    fleet.release(hold)
    expected = [parent] + [f"{parent}-child-{i}" for i in range(3)]
    wait_for(lambda: all(fleet.runs(x) == 1 for x in expected), timeout=30, what="children ran")
    assert fleet.service.get_maintenance_status().deferred_jobs_count == 0


def _assert_interrupted(result: Any, what: str) -> None:
    """The job ended on the refusal of its sub-publish: not a success or a failure, but
    ``STOPPED`` in the result backend, outcome ``interrupted``, the refusal its reason."""
    wait_for(lambda: result.state == STOPPED_STATE, timeout=20, what=f"{what} stopped")
    assert result.info["outcome"] == "interrupted"
    assert "was not queued" in result.info["reason"]


def test_job_started_during_maintenance_cannot_publish_blocked_work(clean_fleet: Fleet):
    """A read-only job (allowed) that publishes caption work during maintenance is not a
    continuation: the sub-publish is refused, nothing of it runs, and the job ends
    interrupted (``STOPPED``)."""
    fleet = clean_fleet
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    label = _label("report")
    result = fleet.tasks["build_then_caption"].delay(label)
    _assert_interrupted(result, "report")
    assert fleet.runs(label) == 1
    assert fleet.runs(f"{label}-caption") == 0
    assert fleet.service.get_maintenance_status().deferred_jobs_count == 0


def test_admin_bypass_job_completes_with_its_sub_tasks(clean_fleet: Fleet):
    """A job an admin publishes during maintenance runs, and so does the work it fans out."""
    fleet = clean_fleet
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    parent = _label("admin-fanout")
    with fleet.service.bypass(ADMIN):
        fleet.tasks["fan_out"].delay(parent, 2)
    expected = [parent, f"{parent}-child-0", f"{parent}-child-1"]
    wait_for(lambda: all(fleet.runs(x) == 1 for x in expected), timeout=30, what="admin work ran")


def test_emergency_refuses_continuations(clean_fleet: Fleet):
    """In EMERGENCY mode a running job's sub-tasks are refused: only the job itself ran."""
    fleet = clean_fleet
    hold, parent = _hold(), _label("em-fanout")
    result = fleet.tasks["fan_out"].delay(parent, 2, hold)
    wait_for(lambda: fleet.started(parent), timeout=20, what="job running")
    fleet.service.enable_maintenance("fire", "30m", mode="emergency", enabled_by="ops")
    fleet.release(hold)
    _assert_interrupted(result, "job")
    assert fleet.runs(parent) == 1
    assert fleet.runs(f"{parent}-child-0") == 0


def test_unblocked_types_keep_running(clean_fleet: Fleet):
    """During NORMAL maintenance a task declared read-only runs at once, nothing deferred."""
    fleet = clean_fleet
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    label = _label("report")
    fleet.tasks["build_report"].delay(label)
    wait_for(lambda: fleet.runs(label) == 1, timeout=20, what="report ran")
    assert fleet.service.get_maintenance_status().deferred_jobs_count == 0
