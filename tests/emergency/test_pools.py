"""A pool that cannot terminate (threads) is reported as such, its job stays listed as
running, and the emergency is not lifted while it runs (unless forced)."""

from __future__ import annotations

import uuid

import pytest

from maintenance.emergency import DeactivationRefused
from tests.helpers import wait_for
from workers import EmergencyMaintenanceHandler

from .conftest import EmergencyFleet, hold_id, labels

pytestmark = pytest.mark.slow


def test_threads_pool_job_is_reported_unterminable_and_blocks_the_lift(
    emergency_fleet: EmergencyFleet,
) -> None:
    ef = emergency_fleet
    ef.reset()
    fleet = ef.fleet
    name = f"t{uuid.uuid4().hex[:4]}"
    queue = f"{fleet.prefix}-{name}"
    worker = fleet.start_worker(name, [queue], pool="threads")
    try:
        label, hold = labels("threads")["threads"], hold_id()
        task_id = str(fleet.app.send_task("emergency.stubborn", (label, hold), queue=queue).id)
        wait_for(lambda: fleet.started(label), timeout=20, what="threads job started")
        handler = EmergencyMaintenanceHandler(fleet.service, fleet.app)
        handler.activate_emergency_mode("disk failing", "bob", 0.5, 0.5, watch=False)
        result = handler.terminate_running_jobs(0.5, 0.5, timeout=30)
        assert result.finished
        assert result.unterminable == [
            {"task_id": task_id, "worker": worker.nodename, "pool": "threads"}
        ]
        assert [r["task_id"] for r in result.still_running] == [task_id]
        assert not any(result.by_outcome.values())
        with pytest.raises(DeactivationRefused) as refused:
            handler.deactivate_emergency_mode("bob")
        assert any(
            task_id in p and "still marked running" in p for p in refused.value.check.problems
        )
        assert fleet.service.state.load().is_active

        fleet.release(hold)
        wait_for(lambda: ef.count("runs", label) == 1, timeout=20, what="threads job done")
        lifted = handler.deactivate_emergency_mode("bob")
        assert lifted.check.ok and not lifted.requeued
        assert ef.count("starts", label) == 1  # it ran once, to completion, never again
    finally:
        worker.stop()
        del fleet.workers[name]
