"""A job whose final write the transaction guard refuses during an emergency is stopped work,
not finished work: recorded as interrupted with the refusal, requeued exactly once at the
lift, and the app's own job row ends true (interrupted, then done when the rerun finished)."""

from __future__ import annotations

from typing import Any

import pytest
from maintenance_demo.captioner.models import Job
from maintenance_demo.captioner.seed import USER

from maintenance.domain.emergency_plan import OUTCOME_INTERRUPTED
from maintenance.store.jobs import REQUEUED, JobStore
from tests.captioner.conftest import Captioner
from tests.helpers import wait_for
from workers import EmergencyMaintenanceHandler

from .conftest import Ids

pytestmark = pytest.mark.slow

#: The encoder's time; the grace is far longer, so the job ends on its own inside it.
DURATION = 0.5
GRACE, KILL_AFTER = 10 * DURATION + 3.0, 2.0


def _job(captioner: Captioner, job_id: int) -> Job:
    with captioner.db.sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def test_a_job_whose_final_write_is_refused_is_requeued_once_and_its_row_ends_true(
    fleet: Captioner, ids: Ids
) -> None:
    service = fleet.service
    store = JobStore(service.db)
    fleet.app.config["CAPTIONER_TASK_DURATION"] = DURATION
    alice = fleet.client(USER)
    reply: Any = alice.post(
        f"/images/{ids.image}/optimize", json={}, headers={"Accept": "application/json"}
    )
    assert reply.status_code == 202, reply.get_data(as_text=True)
    job_id = int(reply.json["job"]["id"])
    task_id = wait_for(
        lambda: (j := _job(fleet, job_id)).status == "running" and j.task_id,
        20,
        0.01,
        "the optimisation to start",
    )
    handler = EmergencyMaintenanceHandler(service, fleet.celery)
    handler.activate_emergency_mode("Storage failure", "e2e", GRACE, KILL_AFTER, watch=False)
    try:
        record = wait_for(lambda: store.get(task_id), GRACE, 0.05, "the job recorded as stopped")
    finally:
        fleet.app.config["CAPTIONER_TASK_DURATION"] = 0.0
        termination = handler.terminate_running_jobs(timeout=GRACE + KILL_AFTER + 30)
    # The refused write is the job's last transaction: the image or the job row, whichever
    # the guard judged first.
    assert record.outcome == OUTCOME_INTERRUPTED, record
    assert record.reason and record.reason.startswith("maintenance refused"), record.reason
    row = _job(fleet, job_id)
    assert row.status == "interrupted" and "refused" in (row.error or ""), row.error
    assert row.runs == 1
    assert task_id not in termination.finished_on_their_own
    assert [j["original_id"] for j in termination.by_outcome[OUTCOME_INTERRUPTED]] == [task_id]
    lifted = handler.deactivate_emergency_mode("e2e")
    assert [old for old, _ in lifted.requeued] == [task_id]
    new_id = lifted.requeued[0][1]
    done = wait_for(
        lambda: (j := _job(fleet, job_id)).status == "done" and j, 30, 0.05, "the rerun to finish"
    )
    assert done.runs == 2 and done.task_id == new_id and done.error is None
    after = store.get(task_id)
    assert after is not None and after.state == REQUEUED and after.requeued_id == new_id
    # Nothing requeues it a second time: a later recovery finds nothing to do.
    assert store.requeueable() == []
