"""The active-job registry and drain: what runs where, dead workers reaped, drain waits."""

from __future__ import annotations

import json
import signal
import uuid

import pytest

from maintenance.job_registry import JobRegistry
from tests.helpers import wait_for
from workers import wait_for_drain

from .conftest import Fleet

pytestmark = pytest.mark.slow


def _forget_unacked(fleet: Fleet, queue: str) -> None:
    """Drop the broker's unacked copies of a dead worker's messages (test hygiene only:
    the broker would redeliver them after the visibility timeout)."""
    unacked = f"{fleet.broker_prefix}unacked"
    for tag, raw in fleet.client.hgetall(unacked).items():
        if json.loads(raw)[2] == queue:
            fleet.client.hdel(unacked, tag)
            fleet.client.zrem(f"{fleet.broker_prefix}unacked_index", tag)


def test_sigkilled_worker_is_reaped_from_the_registry(clean_fleet: Fleet):
    """A worker killed mid-job (whole process group, SIGKILL) leaves no registry entry:
    the surviving workers reap it once its node stops heartbeating."""
    fleet = clean_fleet
    queue = f"{fleet.prefix}-doomed-{uuid.uuid4().hex[:6]}"
    hold, label = f"hold-{uuid.uuid4().hex[:6]}", f"doomed-{uuid.uuid4().hex[:6]}"
    doomed = fleet.start_worker("w3", [queue])
    try:
        task_id = fleet.tasks["generate_caption"].apply_async((label, hold), queue=queue).id
        wait_for(lambda: fleet.started(label), timeout=20, what="job started on w3")
        registry = JobRegistry(fleet.service.redis, fleet.service.keys)
        entry = registry.all()[task_id]
        assert entry.worker == doomed.nodename and entry.pid is not None
        assert fleet.service.get_maintenance_status().active_jobs_count >= 1

        doomed.kill(signal.SIGKILL)
        doomed.proc.wait(10)
        wait_for(
            lambda: task_id not in registry.all(),
            timeout=15,
            interval=0.1,
            what="dead worker's job reaped",
        )
        assert fleet.runs(label) == 0
    finally:
        doomed.stop()
        del fleet.workers["w3"]
        _forget_unacked(fleet, queue)


def test_drain_wait_shows_progress_and_exits_0_once_drained(clean_fleet: Fleet):
    """`maintenance drain --wait` follows the running job and exits 0 when it ends;
    without --wait it lists running work and exits 1; a short timeout exits 1."""
    fleet = clean_fleet
    hold, label = f"hold-{uuid.uuid4().hex[:6]}", f"draining-{uuid.uuid4().hex[:6]}"
    task_id = fleet.tasks["generate_caption"].delay(label, hold).id
    wait_for(lambda: fleet.started(label), timeout=20, what="job started")
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")

    snapshot = fleet.cli("drain", "--json")
    out, err = snapshot.communicate(timeout=60)
    assert snapshot.returncode == 1, err
    assert [j["task_id"] for j in json.loads(out)["running"]] == [task_id]

    active = fleet.cli("jobs", "--state", "active", "--json")
    out, _ = active.communicate(timeout=60)
    assert any(j["task_id"] == task_id and j["state"] == "running" for j in json.loads(out))

    short = fleet.cli("drain", "--wait", "--timeout", "0.5")
    out, err = short.communicate(timeout=60)
    assert short.returncode == 1 and "Timed out" in out, (out, err)

    waiting = fleet.cli("drain", "--wait", "--timeout", "60")
    assert not wait_for_drain(0.3, fleet.service)
    fleet.release(hold)
    out, err = waiting.communicate(timeout=90)
    assert waiting.returncode == 0, (out, err)
    assert "Drained" in out and "Draining" in err
    assert wait_for_drain(5, fleet.service)
    assert fleet.runs(label) == 1


def test_drain_with_maintenance_off_is_immediate(clean_fleet: Fleet):
    """Nothing is blocked when maintenance is off: drained at once."""
    assert wait_for_drain(1, clean_fleet.service)
    proc = clean_fleet.cli("drain", "--wait")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "nothing to drain" in out
