"""The id a user was handed keeps working after an emergency: a terminated job is requeued
under a new id (Celery revoked the old one), ``AsyncResult(old_id)`` names the new id
(state ``REQUEUED``), and ``current_result`` follows it to the new result."""

from __future__ import annotations

import pytest

from maintenance.store.jobs import REQUEUED, JobStore
from tests.helpers import wait_for
from workers import EmergencyMaintenanceHandler, current_id, current_result
from workers.result_link import REQUEUED_AS, REQUEUED_STATE

from .conftest import EmergencyFleet, hold_id, labels

pytestmark = pytest.mark.slow

GRACE, KILL_AFTER = 0.5, 1.0


def test_asyncresult_of_a_terminated_and_requeued_job_leads_to_its_new_result(
    emergency_fleet: EmergencyFleet,
) -> None:
    ef = emergency_fleet
    ef.reset()
    fleet = ef.fleet
    label = labels("linked")["linked"]
    hold = hold_id()
    old_id = ef.start("stubborn", label, hold, "e1")
    handler = EmergencyMaintenanceHandler(fleet.service, fleet.app)
    handler.activate_emergency_mode("disk full", "alice", GRACE, KILL_AFTER, "person", watch=False)
    termination = handler.terminate_running_jobs(timeout=GRACE + KILL_AFTER + 40)
    assert [r["original_id"] for r in termination.by_outcome["terminated"]] == [old_id]
    assert fleet.app.AsyncResult(old_id).state == "REVOKED"
    fleet.release(hold)
    lifted = handler.deactivate_emergency_mode("alice")
    [(old, new_id)] = lifted.requeued
    assert old == old_id and new_id != old_id

    old = fleet.app.AsyncResult(old_id)
    assert old.state == REQUEUED_STATE and old.result == {REQUEUED_AS: new_id}
    assert current_id(fleet.app, old_id) == new_id
    assert current_result(fleet.app, old_id).get(timeout=60) == label
    assert ef.count("runs", label) == 1
    record = JobStore(fleet.service.db).get(old_id)
    assert record is not None and record.state == REQUEUED and record.requeued_id == new_id
    # An id that was never requeued is its own current id.
    assert current_id(fleet.app, new_id) == new_id
    wait_for(lambda: ef.count("runs", label) == 1, 5, what="ran once")
