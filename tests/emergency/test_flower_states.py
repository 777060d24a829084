"""Jobs that maintenance stopped tell it in Flower and in the result backend: a job that
stopped when told (``should_abort()``, outcome ``aborted``) and one whose publish was
refused (outcome ``interrupted``) end ``STOPPED`` with their reason -- never ``SUCCESS`` or
``FAILURE`` -- and after the lift their old ids say ``REQUEUED`` naming the new id, which
runs once. Watched on two real prefork workers by Celery's event ``State`` fed by a real
receiver (what Flower builds on) and by a real ``celery flower`` process."""

from __future__ import annotations

import pytest
from celery.events.state import State

from maintenance.store.jobs import REQUEUED, JobRecord, JobStore
from tests.celery.conftest import watch_events
from tests.celery.flower import running_flower, task_info, task_state, wait_until_listening
from tests.helpers import wait_for
from workers import EmergencyMaintenanceHandler
from workers.emergency.stopped import STOPPED_STATE
from workers.result_link import REQUEUED_AS, REQUEUED_STATE

from .conftest import EmergencyFleet, hold_id, labels

pytestmark = pytest.mark.slow

#: Far longer than either job needs to stop: both end on their own, none is SIGTERMed.
GRACE, KILL_AFTER = 30.0, 2.0


def _event_state(state: State, task_id: str) -> str | None:
    task = state.tasks.get(task_id)
    return task.state if task is not None else None


def test_stopped_jobs_show_stopped_with_their_reason_then_requeued(
    emergency_fleet: EmergencyFleet,
) -> None:
    ef = emergency_fleet
    ef.reset()
    fleet = ef.fleet
    store = JobStore(fleet.service.db)
    label = labels("coop", "refused")
    coop_hold, refused_hold = hold_id(), hold_id()

    def probe(name: str) -> str:
        return str(
            fleet.app.send_task("captions.generate_caption", args=(name,), queue=ef.queue("e1")).id
        )

    with watch_events(fleet) as state, running_flower(fleet) as flower:
        wait_until_listening(flower, probe)
        ids = {"coop": ef.start("cooperative", label["coop"], coop_hold, "e1")}
        ids["refused"] = str(
            fleet.app.send_task(
                "emergency.publisher",
                args=(label["refused"], refused_hold, ef.queue("e2")),
                queue=ef.queue("e2"),
            ).id
        )
        wait_for(lambda: fleet.started(label["refused"]), 20, what="the publisher started")
        handler = EmergencyMaintenanceHandler(fleet.service, fleet.app)
        activation = handler.activate_emergency_mode(
            "disk full", "alice", GRACE, KILL_AFTER, "person", watch=False
        )
        fleet.release(refused_hold)  # its publish comes now, during the emergency
        termination = handler.terminate_running_jobs(timeout=GRACE + KILL_AFTER + 30)
        assert not termination.timed_out
        records: dict[str, JobRecord] = {}
        for job, task_id in ids.items():
            record = wait_for(lambda t=task_id: store.get(t), 20, what=f"{job} recorded")
            records[job] = record
        assert records["coop"].outcome == "aborted"
        assert records["coop"].reason == f"stopped on request ({activation.emergency_id})"
        assert records["refused"].outcome == "interrupted"
        assert (records["refused"].reason or "").startswith("maintenance refused ")

        for job, task_id in ids.items():
            record = records[job]
            shown = f"{record.outcome}: {record.reason}"
            # Celery's event state: STOPPED with the reason, no succeeded/failed event.
            wait_for(
                lambda t=task_id: _event_state(state, t) == STOPPED_STATE,
                20,
                0.05,
                f"{job} STOPPED in the event state",
            )
            task = state.tasks[task_id]
            assert task.result == shown and task.reason == record.reason
            assert task.outcome == record.outcome
            assert task.emergency_id == activation.emergency_id
            assert task.succeeded is None and task.failed is None
            # A real Flower shows the same.
            wait_for(
                lambda t=task_id: task_state(flower, t) == STOPPED_STATE,
                20,
                0.1,
                f"{job} STOPPED in Flower",
            )
            assert task_info(flower, task_id)["result"] == shown
            # The result backend: STOPPED with the outcome and the reason.
            result = fleet.app.AsyncResult(task_id)
            assert result.state == STOPPED_STATE
            assert result.result == {
                "outcome": record.outcome,
                "reason": record.reason,
                "emergency_id": activation.emergency_id,
            }
        assert ef.count("aborted", label["coop"]) == 1
        assert ef.count("runs", label["coop"]) == 0 and ef.count("runs", label["refused"]) == 0

        fleet.release(coop_hold)  # so that its copy completes
        lifted = handler.deactivate_emergency_mode("alice")
        requeued = dict(lifted.requeued)
        assert set(requeued) == set(ids.values())
        for job, task_id in ids.items():
            new_id = requeued[task_id]
            wait_for(
                lambda t=task_id: _event_state(state, t) == REQUEUED_STATE,
                20,
                0.05,
                f"{job} REQUEUED in the event state",
            )
            wait_for(
                lambda t=task_id: task_state(flower, t) == REQUEUED_STATE,
                20,
                0.1,
                f"{job} REQUEUED in Flower",
            )
            assert task_info(flower, task_id)["result"] == f"requeued as {new_id}"
            old = fleet.app.AsyncResult(task_id)
            assert old.state == REQUEUED_STATE and old.result == {REQUEUED_AS: new_id}
            assert fleet.app.AsyncResult(new_id).get(timeout=60) == label[job]
            record = store.get(task_id)
            assert record is not None and record.state == REQUEUED
        for job in ids:
            assert ef.count("runs", label[job]) == 1  # the copy ran, once
        # Every event came in a real worker's name: no phantom worker in Flower.
        assert set(state.workers) <= {w.nodename for w in fleet.workers.values()}
        wait_for(lambda: fleet.runs(f"{label['refused']}-child") == 1, 30, what="child ran")


def test_a_job_that_retries_on_a_refusal_is_retried_not_stopped(
    emergency_fleet: EmergencyFleet,
) -> None:
    """A job that catches a maintenance refusal and retries (``self.retry``) is Celery
        running it again: not recorded interrupted (the lift would run it a second time), not
    ``STOPPED``, and it runs once."""
    ef = emergency_fleet
    ef.reset()
    fleet = ef.fleet
    store = JobStore(fleet.service.db)
    label, hold = labels("retry")["retry"], hold_id()
    task_id = ef.start("retrying", label, hold, "e1")
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    fleet.release(hold)
    result = fleet.app.AsyncResult(task_id)
    wait_for(lambda: result.state == "RETRY", 20, 0.05, "the refused attempt retried")
    wait_for(
        lambda: ef.count("runs", label) == 1 or store.get(task_id) is not None,
        30,
        0.05,
        "the retry (a continuation, 1 s later) ran or was held back",
    )
    pattern = fleet.service.keys.emergency_handoff("*")
    # Whatever the pool children handed over is in SQL before the lift looks at it.
    wait_for(lambda: not list(fleet.service.redis.scan_iter(pattern)), 20, 0.05, "handoffs written")
    fleet.service.disable_maintenance("ops")
    assert result.get(timeout=60) == label
    record = store.get(task_id)
    assert record is None or record.outcome != "interrupted", record
    assert ef.count("runs", label) == 1
