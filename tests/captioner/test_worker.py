"""The captioner's tasks on a real prefork ``celery worker``, driven over HTTP."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from flask.testing import FlaskClient
from maintenance_demo.captioner.models import Caption, Image, Job, PlatformConnection, Post
from sqlalchemy import func, select

from maintenance import OperationBlocked
from maintenance.integrity import check_results
from maintenance.store.jobs import JobStore
from tests.helpers import wait_for

from .conftest import Captioner

pytestmark = pytest.mark.slow


def _job(captioner: Captioner, job_id: int) -> Job:
    with captioner.db.sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def _started(reply: Any) -> int:
    assert reply.status_code == 202, reply.get_data(as_text=True)
    return int(reply.json["job"]["id"])


def _finished(captioner: Captioner, reply_or_id: Any, timeout: float = 30) -> Job:
    job_id = reply_or_id if isinstance(reply_or_id, int) else _started(reply_or_id)
    job = wait_for(
        lambda: (j := _job(captioner, job_id)).status not in ("queued", "running") and j,
        timeout,
        0.05,
        f"job {job_id} to finish",
    )
    assert job.status == "done", job.error
    return job


def _scalar(captioner: Captioner, query: Any) -> Any:
    with captioner.db.sessions() as s:
        return s.scalar(query)


def test_every_task_runs_once_with_its_side_effects(
    captioner: Captioner,
    captioner_worker: subprocess.Popen[bytes],
    user_client: FlaskClient,
    admin_client: FlaskClient,
) -> None:
    """Generate, analyse, optimise, test a connection, bulk update, post, caption all, sync
    the profile, purge orphans: each job is done, ran once, and left exactly its rows."""
    image_id = _scalar(captioner, select(func.min(Image.id)))
    job = _finished(captioner, user_client.post("/caption/generate", json={"image_id": image_id}))
    assert job.runs == 1
    caption_id = job.result["caption_id"]
    assert "#" in _scalar(captioner, select(Caption.text).where(Caption.id == caption_id))

    _finished(captioner, user_client.post(f"/images/{image_id}/analyze", json={}))
    _finished(captioner, user_client.post(f"/images/{image_id}/optimize", json={}))
    with captioner.db.sessions() as s:
        image = s.get(Image, image_id)
        assert image is not None and image.analysis_count == 1
        assert image.analysis["orientation"] == "landscape"
        assert image.optimized_size == image.size_bytes

    _finished(
        captioner, user_client.post("/platform/test-connection", json={"platform": "instagram"})
    )
    assert _scalar(captioner, select(PlatformConnection.last_test_ok)) == 1

    bulk = {"caption_ids": [caption_id], "status": "approved"}
    assert _finished(captioner, user_client.post("/review/bulk", json=bulk)).result == {
        "updated": 1
    }
    post = _finished(captioner, user_client.post("/platform/post", json={"caption_id": caption_id}))
    with captioner.db.sessions() as s:
        posted = s.scalars(select(Post)).all()
    assert [(p.id, p.caption_id, p.job_id) for p in posted] == [
        (post.result["post_id"], caption_id, post.id)
    ]

    every = _finished(captioner, user_client.post("/jobs", json={"kind": "caption_all"}))
    assert every.result == {"captioned": 4, "platform": "instagram"}
    assert _scalar(captioner, select(func.count()).select_from(Caption)) == 5

    profile = user_client.post("/profile", json={"display_name": "Alice Liddell"})
    _finished(captioner, int(profile.json["job_id"]))
    assert _scalar(captioner, select(PlatformConnection.signature)) == "\u2014 Alice Liddell"

    with captioner.db.sessions() as s:
        s.add(Caption(image_id=9999, text="orphan", platform="x"))
        s.commit()
    purge = _finished(captioner, admin_client.post("/admin/captions/purge-orphans", json={}))
    assert purge.result == {"deleted": 1}


def test_job_started_before_maintenance_finishes_while_new_work_is_refused(
    captioner: Captioner,
    captioner_worker: subprocess.Popen[bytes],
    user_client: FlaskClient,
) -> None:
    """A 4-second caption job runs into NORMAL maintenance and still writes its caption
    (a continuation); new work is refused over HTTP and at the Celery publish; when
    maintenance ends the consistency checks run and pass."""
    captioner.app.config["CAPTIONER_TASK_DURATION"] = 4.0
    image_id = _scalar(captioner, select(func.min(Image.id)))
    job_id = _started(user_client.post("/caption/generate", json={"image_id": image_id}))
    wait_for(lambda: _job(captioner, job_id).status == "running", 20, 0.05, "the job to start")
    captioner.service.enable_maintenance("Database upgrade", "10m", enabled_by="ops", wait=5)
    activation = captioner.service.status.activation_id
    assert _job(captioner, job_id).status == "running"  # it really runs into maintenance

    assert user_client.post("/caption/generate", json={"image_id": image_id}).status_code == 503
    with pytest.raises(OperationBlocked):
        captioner.celery.send_task(
            "captioner.generate_caption", kwargs={"job_id": 0, "image_id": 0}
        )

    job = _finished(captioner, job_id)
    assert _scalar(captioner, select(func.count()).select_from(Caption)) == 1
    assert job.finished_at is not None

    captioner.service.disable_maintenance("ops")
    results = {r["check"]: r["ok"] for r in check_results(captioner.service, activation)}
    assert results == {
        "captioner.running_jobs_have_live_tasks": True,
        "captioner.captions_have_images": True,
    }


def test_emergency_refuses_a_running_jobs_writes_and_it_is_recorded_interrupted(
    captioner: Captioner,
    captioner_worker: subprocess.Popen[bytes],
    user_client: FlaskClient,
) -> None:
    """In EMERGENCY even a job from before maintenance may not write: its caption and its
    "done" are rolled back together; the job row says "interrupted" with the refusal, the
    control plane records the job as interrupted (to be requeued), and the consistency
    check run when maintenance ends finds no row claiming to run."""
    captioner.app.config["CAPTIONER_TASK_DURATION"] = 4.0
    image_id = _scalar(captioner, select(func.min(Image.id)))
    job_id = _started(user_client.post("/caption/generate", json={"image_id": image_id}))
    task_id = wait_for(
        lambda: (j := _job(captioner, job_id)).status == "running" and j.task_id, 20, 0.05
    )
    captioner.service.enable_maintenance("Outage", mode="emergency", enabled_by="ops", wait=5)
    activation = captioner.service.status.activation_id
    assert _job(captioner, job_id).status == "running"
    active = captioner.service.keys.active_jobs
    wait_for(lambda: not captioner.redis.hexists(active, task_id), 20, 0.05, "the task to end")

    assert _scalar(captioner, select(func.count()).select_from(Caption)) == 0
    row = _job(captioner, job_id)
    assert row.status == "interrupted" and "refused" in (row.error or ""), row.error
    refused = captioner.service.history(20, kinds=("data_modification_refused",))
    assert refused and refused[0].details["job_id"] == task_id

    store = JobStore(captioner.service.db)
    record = wait_for(lambda: store.get(task_id), 10, 0.05, "the job recorded as stopped")
    assert record.outcome == "interrupted" and record.state == "terminated", record
    assert record.reason and "caption_generation" in record.reason

    captioner.service.disable_maintenance("ops", requeue=False)
    results = {r["check"]: r for r in check_results(captioner.service, activation)}
    assert results["captioner.running_jobs_have_live_tasks"]["ok"] is True
