"""During an emergency, a job whose process holds off SIGTERM keeps running until SIGKILL;
the fleet's active-job registry must keep counting it until then."""

from __future__ import annotations

from typing import Any

import pytest
from maintenance_demo.captioner.models import Job
from maintenance_demo.captioner.seed import USER

from maintenance.emergency import PHASE_TERMINATED, PHASE_TERMINATING
from tests.captioner.conftest import Captioner
from tests.helpers import wait_for
from workers import EmergencyMaintenanceHandler, blocked_jobs_running

from .conftest import Ids

pytestmark = pytest.mark.slow


def _job(captioner: Captioner, job_id: int) -> Job:
    with captioner.db.sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def test_a_job_holding_off_sigterm_stays_in_the_registry_until_it_is_killed(
    fleet: Captioner, ids: Ids
) -> None:
    """An emergency with a 0.2 s grace and SIGKILL 4 s after SIGTERM meets a platform post
    (10 s long, SIGTERM held off while it uploads): once SIGTERM has been sent the post still
    runs, so ``blocked_jobs_running`` must still list it (else the fleet is reported
    drained while it runs); SIGKILL then ends it."""
    service = fleet.service
    fleet.app.config["CAPTIONER_TASK_DURATION"] = 5.0
    alice = fleet.client(USER)
    reply: Any = alice.post("/platform/post", json={"caption_id": ids.caption})
    assert reply.status_code == 202, reply.get_data(as_text=True)
    job_id = int(reply.json["job"]["id"])
    task_id = wait_for(
        lambda: (j := _job(fleet, job_id)).status == "running" and j.task_id,
        20,
        0.05,
        "the post to start",
    )
    handler = EmergencyMaintenanceHandler(service)
    try:
        handler.activate_emergency_mode("Storage failure", "e2e", 0.2, 4.0, watch=False)
        wait_for(
            lambda: service.get_maintenance_status().emergency_phase == PHASE_TERMINATING,
            10,
            0.05,
            "SIGTERM to be sent",
        )
        assert _job(fleet, job_id).status == "running"  # SIGTERM did not end it
        running = {j.task_id for j in blocked_jobs_running(service)}
        assert task_id in running
    finally:
        wait_for(
            lambda: service.get_maintenance_status().emergency_phase == PHASE_TERMINATED,
            20,
            0.1,
            "SIGKILL to end the post",
        )
        handler.deactivate_emergency_mode("e2e", requeue=False, force=True)
