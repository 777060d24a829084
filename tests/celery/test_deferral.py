"""Worker-side deferral: queued work of a blocked type is held, never started, then run once.

Backlog is built with a queue no worker consumes yet; workers are pointed at
it (``add_consumer``) once maintenance is on. Side effects are counted per
job in Redis; the broker's queue list and unacked hash prove nothing is left.
"""

from __future__ import annotations

import uuid

import pytest
from celery import Celery

from maintenance.store.jobs import DEFERRED, REQUEUED, JobStore
from tests.helpers import wait_for

from .conftest import Fleet

pytestmark = pytest.mark.slow


def _consume(fleet: Fleet, queue: str, workers: list[str] | None = None) -> None:
    names = [fleet.workers[w].nodename for w in workers or list(fleet.workers)]
    replies = fleet.app.control.add_consumer(queue, destination=names, reply=True, timeout=5)
    assert len(replies) == len(names), replies


def _stop_consuming(fleet: Fleet, queue: str) -> None:
    names = [w.nodename for w in fleet.workers.values()]
    fleet.app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)


def _broker_empty(fleet: Fleet, queue: str) -> bool:
    return fleet.queue_length(queue) == 0 and fleet.unacked() == 0


def test_backlog_of_50_is_deferred_then_each_job_runs_exactly_once(clean_fleet, event_state):
    """50 caption jobs queued before maintenance are deferred (recorded, acknowledged,
    DEFERRED in the event stream); disable requeues them under their own ids in their
    original queue and order; each runs exactly once and its id ends SUCCESS."""
    fleet: Fleet = clean_fleet
    queue = f"{fleet.prefix}-backlog-{uuid.uuid4().hex[:6]}"
    labels = [f"b{i:02d}-{uuid.uuid4().hex[:4]}" for i in range(50)]
    caption = fleet.tasks["generate_caption"]
    ids = [caption.apply_async((label,), queue=queue).id for label in labels]
    assert fleet.queue_length(queue) == 50

    activation = fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    _consume(fleet, queue)
    try:
        store = JobStore(fleet.service.db)
        wait_for(lambda: len(store.find(DEFERRED)) == 50, timeout=30, what="50 deferred")
        wait_for(lambda: _broker_empty(fleet, queue), timeout=10, what="backlog acknowledged")
        assert all(fleet.runs(label) == 0 for label in labels)
        assert fleet.service.get_maintenance_status().deferred_jobs_count == 50
        records = {r.original_id: r for r in store.find(DEFERRED)}
        assert set(records) == set(ids)
        sample = records[ids[0]]
        assert sample.queue == queue and sample.args == [labels[0]]
        assert sample.operation == "caption_generation" and sample.worker
        wait_for(
            lambda: all(_state(event_state, i) == "DEFERRED" for i in ids),
            timeout=15,
            what="DEFERRED in the event stream",
        )

        fleet.service.disable_maintenance("ops")  # requeues in this process
        wait_for(
            lambda: all(fleet.runs(label) == 1 for label in labels), timeout=60, what="all ran"
        )
        wait_for(lambda: _broker_empty(fleet, queue), timeout=10, what="queue drained")
    finally:
        _stop_consuming(fleet, queue)
    assert all(fleet.runs(label) == 1 for label in labels)  # and nothing left to run again
    requeued = {r.original_id: r for r in store.find(REQUEUED)}
    assert set(requeued) == set(ids)
    assert [requeued[i].requeued_id for i in ids] == ids  # never revoked: the same ids
    (event,) = fleet.service.history(
        5, kinds=("jobs_requeued",), activation_id=activation.status.activation_id
    )
    assert [old for old, _new in event.details["jobs"]] == ids  # original order
    status = fleet.service.get_maintenance_status()
    assert not status.recovery_pending and status.deferred_jobs_count == 0

    def requeued_then_succeeded() -> bool:
        for task_id in ids:
            task = event_state.tasks.get(task_id)
            if task is None or getattr(task, "requeued_id", None) != task_id:
                return False
            if task.state != "SUCCESS":  # the custom states do not outrank it
                return False
        return True

    wait_for(requeued_then_succeeded, timeout=20, what="requeued ids ended SUCCESS")
    results = [fleet.app.AsyncResult(i).get(timeout=10) for i in ids]
    assert results == labels
    # The requeue events came in the name of the workers that deferred the jobs: Flower
    # lists no phantom worker for the recovering process.
    workers = set(fleet.workers)
    assert {h.partition("@")[0] for h in event_state.workers} <= workers, event_state.workers


def _state(state, task_id: str) -> str | None:  # type: ignore[no-untyped-def]
    task = state.tasks.get(task_id)
    return task.state if task is not None else None


def test_prefetched_messages_are_deferred_when_a_slot_frees(clean_fleet: Fleet):
    """Messages a worker reserved before maintenance (waiting for a busy pool) are judged
    when they would start: deferred, not run; the jobs that were running finish."""
    fleet = clean_fleet
    queue = f"{fleet.prefix}-w1only-{uuid.uuid4().hex[:6]}"
    hold = f"hold-{uuid.uuid4().hex[:6]}"
    caption = fleet.tasks["generate_caption"]
    running = [f"busy{i}-{hold}" for i in range(2)]
    waiting = [f"prefetched{i}-{hold}" for i in range(3)]
    _consume(fleet, queue, ["w1"])
    try:
        for label in running:
            caption.apply_async((label, hold), queue=queue)
        wait_for(lambda: all(fleet.started(x) for x in running), timeout=20, what="pool busy")
        waiting_ids = [caption.apply_async((label,), queue=queue).id for label in waiting]

        def reserved() -> bool:
            replies = fleet.app.control.inspect(
                destination=[fleet.workers["w1"].nodename], timeout=1
            ).reserved()
            held = {r["id"] for reply in (replies or {}).values() for r in reply}
            return set(waiting_ids) <= held

        wait_for(reserved, timeout=20, interval=0.2, what="messages prefetched by w1")
        assert fleet.queue_length(queue) == 0  # they left the broker: prefetched

        fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
        fleet.release(hold)
        store = JobStore(fleet.service.db)
        wait_for(
            lambda: {r.original_id for r in store.find(DEFERRED)} == set(waiting_ids),
            timeout=20,
            what="prefetched messages deferred",
        )
        wait_for(lambda: all(fleet.runs(x) == 1 for x in running), timeout=20, what="busy done")
        wait_for(lambda: _broker_empty(fleet, queue), timeout=10, what="acknowledged")
        assert all(fleet.runs(x) == 0 for x in waiting)
    finally:
        _stop_consuming(fleet, queue)


def test_straggler_from_an_ungated_publisher_is_deferred(clean_fleet: Fleet):
    """A publisher without the hooks (no gate, no stamps) gets a message in during
    maintenance: the worker defers it on receipt instead of running it."""
    fleet = clean_fleet
    ungated = Celery("ungated", set_as_current=False)
    ungated.conf.update(fleet.config)
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    label = f"straggler-{uuid.uuid4().hex[:6]}"
    task_id = ungated.send_task("captions.generate_caption", (label,)).id
    store = JobStore(fleet.service.db)
    wait_for(lambda: store.get(task_id) is not None, timeout=20, what="straggler deferred")
    record = store.get(task_id)
    assert record is not None and record.state == DEFERRED
    assert record.operation == "caption_generation"
    assert "normal maintenance" in (record.reason or "")
    wait_for(lambda: _broker_empty(fleet, fleet.default_queue), timeout=10, what="acknowledged")
    assert fleet.runs(label) == 0


def test_allow_operation_completion_lets_a_held_back_job_run(clean_fleet: Fleet):
    """An operator can let one specific queued job run during maintenance."""
    fleet = clean_fleet
    ungated = Celery("ungated", set_as_current=False)
    ungated.conf.update(fleet.config)
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    label = f"allowed-{uuid.uuid4().hex[:6]}"
    task_id = str(uuid.uuid4())
    fleet.service.allow_operation_completion(task_id)
    ungated.send_task("captions.generate_caption", (label,), task_id=task_id)
    wait_for(lambda: fleet.runs(label) == 1, timeout=20, what="allowed job ran")
    assert JobStore(fleet.service.db).get(task_id) is None
