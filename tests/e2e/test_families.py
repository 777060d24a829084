"""Each operation family of the plan (3.1, 3.2, 4.1, 4.2, 5.1, 5.2) end to end, on the real
captioner with a real prefork worker, through NORMAL maintenance."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from maintenance_demo.captioner.models import Job
from maintenance_demo.captioner.seed import ADMIN, USER
from sqlalchemy import func, select

from maintenance import OperationBlocked
from maintenance.web.responses import OPERATION_TITLES
from tests.captioner.conftest import Captioner
from tests.helpers import wait_for

from .conftest import Ids
from .families import FAMILIES, Family

pytestmark = pytest.mark.slow
REASON = "Database upgrade"


def _job_of(reply: Any) -> int:
    assert reply.status_code in (200, 202), reply.get_data(as_text=True)
    body = reply.json
    return int(body["job"]["id"] if "job" in body else body["job_id"])


def _job(captioner: Captioner, job_id: int) -> Job:
    with captioner.db.sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def _finished(captioner: Captioner, job_id: int, timeout: float = 30) -> Job:
    job = wait_for(
        lambda: (j := _job(captioner, job_id)).status not in ("queued", "running") and j,
        timeout,
        0.05,
        f"job {job_id} to finish",
    )
    assert job.status == "done", job.error
    return job


def _broker_ids(captioner: Captioner) -> list[bytes]:
    return captioner.redis.lrange(f"{captioner.broker_prefix}celery", 0, -1)


def _post(client: FlaskClient, request: tuple[str, dict[str, Any]]) -> Any:
    path, body = request
    return client.post(path, json=body, headers={"Accept": "application/json"})


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.id)
def test_family_is_refused_for_users_allowed_for_admins_and_running_work_completes(
    fleet: Captioner, ids: Ids, family: Family
) -> None:
    """A job of the family started before maintenance is running when NORMAL maintenance
    comes into force (fenced); then every request of the family from a user is a 503 naming
    the family, the reason and the expected end; a Celery publish of the family's task
    raises ``OperationBlocked`` for that family and leaves the broker untouched; the admin's
    request is accepted and its task runs; and the job from before finishes and leaves its
    rows in the database."""
    service = fleet.service
    alice = fleet.client(USER)
    admin = fleet.client(ADMIN)
    fleet.app.config["CAPTIONER_TASK_DURATION"] = family.step_seconds
    before = _job_of(_post(alice, family.before(ids)))
    wait_for(lambda: _job(fleet, before).status == "running", 20, 0.05, "the job to start")

    result = service.enable_maintenance(REASON, "20m", enabled_by="e2e", wait=10)
    assert result.propagation == "fenced"
    assert _job(fleet, before).status == "running"  # it really runs into maintenance
    fleet.app.config["CAPTIONER_TASK_DURATION"] = 0.0

    for request in family.requests(ids):
        refused = _post(alice, request)
        assert refused.status_code == 503, (request, refused.get_data(as_text=True))
        body = refused.json
        assert body["operation"] == family.operation.value, request
        assert body["title"] == OPERATION_TITLES[family.operation]
        assert REASON in body["message"] and body["mode"] == "normal"
        assert int(refused.headers["Retry-After"]) > 0

    queued_before = _broker_ids(fleet)
    task_id = str(uuid.uuid4())
    name, kwargs = family.task(ids)
    with pytest.raises(OperationBlocked) as refusal:
        fleet.celery.send_task(name, kwargs=kwargs, task_id=task_id)
    assert refusal.value.operation is family.operation
    assert REASON in refusal.value.message
    queued_after = _broker_ids(fleet)
    assert queued_after == queued_before
    assert not any(task_id.encode() in message for message in queued_after)

    allowed = _job_of(_post(admin, family.admin(ids)))
    admin_job = _finished(fleet, allowed)
    assert admin_job.runs == 1
    assert family.admin_effect(fleet, admin_job)

    finished = _finished(fleet, before)
    assert finished.runs == 1
    assert family.effect(fleet, finished)
    assert service.get_maintenance_status().deferred_jobs_count == 0


def test_no_job_ran_twice(fleet: Captioner) -> None:
    """Across every family's run, no job of the module ran more than once."""
    with fleet.db.sessions() as s:
        assert s.scalar(select(func.max(Job.runs))) in (None, 1)
