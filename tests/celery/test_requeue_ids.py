"""Requeued jobs keep working ids and go only where a worker takes them, on Redis and
RabbitMQ, with a real prefork worker:

* a deferred job is requeued under its original id: ``AsyncResult(original_id).get()``
  returns its result, and Celery's event state (what Flower shows) ends ``SUCCESS``;
* a job requeued under its own id and held back again in the next window is recorded
  and requeued again, and runs exactly once;
* a terminated job (its id revoked) runs under a new id that its old id leads to;
* a job sent through an exchange of its own is requeued through it (same exchange,
  same routing key), reaching the queue it came from;
* a requeue to a queue nothing is bound to is reported failed (``maintenance recover``
  exits 1), publishes nothing, and succeeds once a worker consumes that queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kombu import Exchange, Queue

from maintenance.store.jobs import DEFERRED, REQUEUED, JobRecord, JobStore
from tests.brokers import BROKERS, TestBroker
from tests.emergency.conftest import EmergencyFleet, hold_id
from tests.helpers import wait_for
from tests.support import delete_prefix
from workers import EmergencyMaintenanceHandler, current_id, current_result
from workers.requeue import requeue_jobs
from workers.result_link import REQUEUED_AS, REQUEUED_STATE

from .conftest import Fleet, close_fleet, fleet_environment, open_fleet, watch_events

pytestmark = pytest.mark.slow
WORKER = "i1"
GRACE, KILL_AFTER = 0.5, 1.0


@pytest.fixture(scope="module", params=BROKERS)
def ids_fleet(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EmergencyFleet, TestBroker]]:
    """One prefork worker (the Celery and emergency test tasks) on each broker in turn."""
    prefix = f"ti{uuid.uuid4().hex[:8]}"
    if request.param == "rabbitmq":
        url = request.getfixturevalue("rabbitmq_url")
        broker = TestBroker("rabbitmq", url, keyprefix=f"{prefix}:r:", result_backend=redis_url)
    else:
        broker = TestBroker("redis", redis_url, keyprefix=f"{prefix}:b:")
    env = fleet_environment(tmp_path_factory.mktemp(f"ids-{request.param}"), prefix)
    env.update(broker.env())
    env["CELERY_PREFETCH_MULTIPLIER"] = "1"
    fleet = open_fleet(env, app_module="tests.emergency.app", concurrency=2)
    ef = EmergencyFleet(fleet)
    try:
        fleet.start_worker(WORKER, [ef.queue(WORKER)])
        yield ef, broker
    finally:
        close_fleet(fleet)
        broker.delete_queue(ef.queue(WORKER))
        delete_prefix(redis_url, prefix)


@pytest.fixture
def ids(
    ids_fleet: tuple[EmergencyFleet, TestBroker],
) -> Iterator[tuple[EmergencyFleet, TestBroker]]:
    ef, broker = ids_fleet
    ef.reset()
    yield ef, broker
    ef.reset()


def _consume(fleet: Fleet, queue: str) -> None:
    fleet.app.control.add_consumer(
        queue, destination=[f.nodename for f in fleet.workers.values()], reply=True, timeout=5
    )


def _stop(fleet: Fleet, broker: TestBroker, queue: str) -> None:
    fleet.app.control.cancel_consumer(
        queue, destination=[f.nodename for f in fleet.workers.values()], reply=True, timeout=5
    )
    broker.delete_queue(queue)


def _held_back(fleet: Fleet, queue: str, label: str) -> str:
    """Publish a caption job to ``queue`` (nobody consuming yet), turn maintenance on and
    let the worker take ``queue``: it defers the job. Returns its id."""
    job = fleet.tasks["generate_caption"].apply_async((label,), queue=queue)
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops", wait=5)
    _consume(fleet, queue)
    store = JobStore(fleet.service.db)
    wait_for(lambda: _state(store, job.id) == DEFERRED, 30, what=f"{job.id} deferred")
    return str(job.id)


def _state(store: JobStore, task_id: str) -> str | None:
    record = store.get(task_id)
    return record.state if record is not None else None


def test_a_deferred_job_is_requeued_under_its_own_id_and_its_result_comes_back(
    ids: tuple[EmergencyFleet, TestBroker],
) -> None:
    ef, broker = ids
    fleet = ef.fleet
    queue = f"{fleet.prefix}-keep-{uuid.uuid4().hex[:6]}"
    label = f"keep-{uuid.uuid4().hex[:6]}"
    with watch_events(fleet) as events:
        try:
            task_id = _held_back(fleet, queue, label)
            wait_for(
                lambda: task_id in events.tasks and events.tasks[task_id].state == "DEFERRED",
                30,
                what="DEFERRED in the event state",
            )
            fleet.service.disable_maintenance("ops")  # requeues in this process
            assert fleet.app.AsyncResult(task_id).get(timeout=60) == label
            assert fleet.app.AsyncResult(task_id).state == "SUCCESS"
            assert current_id(fleet.app, task_id) == task_id
            record = JobStore(fleet.service.db).get(task_id)
            assert record is not None and record.state == REQUEUED
            assert record.requeued_id == task_id
            # Flower's view: the requeue came through, and the rerun's SUCCESS stands.
            wait_for(
                lambda: (
                    getattr(events.tasks[task_id], "requeued_id", None) == task_id
                    and events.tasks[task_id].state == "SUCCESS"
                ),
                30,
                what="REQUEUED then SUCCESS in the event state",
            )
            assert label in str(events.tasks[task_id].result)
            assert fleet.runs(label) == 1
        finally:
            _stop(fleet, broker, queue)


def test_a_job_sent_through_its_own_exchange_is_requeued_through_it(
    ids: tuple[EmergencyFleet, TestBroker],
) -> None:
    ef, broker = ids
    fleet = ef.fleet
    tag = uuid.uuid4().hex[:6]
    exchange, key = f"{fleet.prefix}-jobs-{tag}", f"work.{tag}"
    queue = Queue(f"{fleet.prefix}-ex-{tag}", Exchange(exchange, "direct"), routing_key=key)
    nodes = [f.nodename for f in fleet.workers.values()]
    label = f"ex-{tag}"
    try:
        job = fleet.tasks["generate_caption"].apply_async(
            (label,), exchange=exchange, routing_key=key, declare=[queue]
        )
        fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops", wait=5)
        fleet.app.control.add_consumer(
            queue.name,
            exchange=exchange,
            exchange_type="direct",
            routing_key=key,
            destination=nodes,
            reply=True,
            timeout=5,
        )
        store = JobStore(fleet.service.db)
        wait_for(lambda: _state(store, job.id) == DEFERRED, 30, what=f"{job.id} deferred")
        record = store.get(job.id)
        assert record is not None
        assert (record.options["exchange"], record.options["routing_key"]) == (exchange, key)
        fleet.service.disable_maintenance("ops")  # requeues through the exchange
        assert fleet.app.AsyncResult(job.id).get(timeout=60) == label
        assert _state(store, job.id) == REQUEUED
        assert fleet.runs(label) == 1
    finally:
        _stop(fleet, broker, queue.name)


def test_a_job_held_back_in_two_windows_is_requeued_each_time_and_runs_once(
    ids: tuple[EmergencyFleet, TestBroker],
) -> None:
    ef, broker = ids
    fleet = ef.fleet
    service = fleet.service
    store = JobStore(service.db)
    queue = f"{fleet.prefix}-twice-{uuid.uuid4().hex[:6]}"
    label = f"twice-{uuid.uuid4().hex[:6]}"
    try:
        task_id = _held_back(fleet, queue, label)
        first = store.get(task_id)
        assert first is not None
        service.disable_maintenance("ops", requeue=False)
        service.enable_maintenance("db upgrade, part 2", "30m", enabled_by="ops", wait=5)
        second_window = service.state.load().activation_id
        assert second_window != first.activation_id
        # Requeued under its own id while the second window is on: held back again.
        report = requeue_jobs(fleet.app, service, actor="ops", force=True)
        assert report.requeued == [(task_id, task_id)] and not report.failed
        wait_for(
            lambda: (
                (r := store.get(task_id)) is not None
                and r.state == DEFERRED
                and r.activation_id == second_window
            ),
            30,
            what="recorded again in the second window",
        )
        assert fleet.runs(label) == 0
        service.disable_maintenance("ops")  # requeues it again, under the same id
        assert fleet.app.AsyncResult(task_id).get(timeout=60) == label
        again = requeue_jobs(fleet.app, service, actor="ops")
        assert not again.requeued and not again.failed
        wait_for(lambda: broker.queue_length(queue) == 0, 10, what="nothing left queued")
        assert fleet.runs(label) == 1
        record = store.get(task_id)
        assert record is not None and record.state == REQUEUED and record.requeued_id == task_id
        assert [r.original_id for r in store.find(limit=None)] == [task_id]
    finally:
        _stop(fleet, broker, queue)


def test_a_terminated_job_runs_under_a_new_id_its_old_id_leads_to(
    ids: tuple[EmergencyFleet, TestBroker],
) -> None:
    ef, _broker = ids
    fleet = ef.fleet
    label, hold = f"linked-{uuid.uuid4().hex[:6]}", hold_id()
    old_id = ef.start("stubborn", label, hold, WORKER)
    handler = EmergencyMaintenanceHandler(fleet.service, fleet.app)
    handler.activate_emergency_mode("disk full", "alice", GRACE, KILL_AFTER, "person", watch=False)
    termination = handler.terminate_running_jobs(timeout=GRACE + KILL_AFTER + 40)
    assert [r["original_id"] for r in termination.by_outcome["terminated"]] == [old_id]
    fleet.release(hold)
    lifted = handler.deactivate_emergency_mode("alice")
    [(old, new_id)] = lifted.requeued
    assert old == old_id and new_id != old_id
    old_result = fleet.app.AsyncResult(old_id)
    assert old_result.state == REQUEUED_STATE and old_result.result == {REQUEUED_AS: new_id}
    assert current_result(fleet.app, old_id).get(timeout=60) == label
    assert ef.count("runs", label) == 1


def test_a_requeue_nothing_is_bound_to_fails_and_succeeds_once_a_worker_takes_the_queue(
    ids: tuple[EmergencyFleet, TestBroker],
) -> None:
    ef, broker = ids
    fleet = ef.fleet
    store = JobStore(fleet.service.db)
    queue = f"{fleet.prefix}-unbound-{uuid.uuid4().hex[:6]}"
    label = f"unbound-{uuid.uuid4().hex[:6]}"
    task_id, bound_id = f"orig-{label}", f"orig-bound-{label}"
    for i, (original_id, to) in enumerate([(task_id, queue), (bound_id, ef.queue(WORKER))]):
        store.record(
            JobRecord(
                original_id=original_id,
                task_name="captions.generate_caption",
                args=[f"{label}-{i}" if i else label],
                options={"published_at": 1000.0 + i},
                queue=to,
                operation="caption_generation",
                reason="test",
            )
        )
    try:
        proc = fleet.cli("recover", "--by", "ops")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (out, err)
        failed = [line for line in out.splitlines() if "FAILED" in line]
        assert len(failed) == 1 and task_id in failed[0] and queue in failed[0], out
        # The next job, published after the returned one, is confirmed and runs.
        assert "Requeued 1 job(s)" in out and f"{bound_id} -> {bound_id}" in out
        assert fleet.app.AsyncResult(bound_id).get(timeout=60) == f"{label}-1"
        assert _state(store, task_id) == DEFERRED  # released for a later recovery
        assert broker.queue_length(queue) == 0  # nothing declared, nothing stranded
        assert fleet.runs(label) == 0

        _consume(fleet, queue)
        proc = fleet.cli("recover", "--by", "ops")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (out, err)
        assert f"{task_id} -> {task_id}" in out
        assert fleet.app.AsyncResult(task_id).get(timeout=60) == label
        assert fleet.runs(label) == 1
        assert _state(store, task_id) == REQUEUED
    finally:
        _stop(fleet, broker, queue)
