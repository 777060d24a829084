"""Deferral in batches, with real prefork workers: a backlog of a few thousand blocked
messages on a mixed queue goes to SQL exactly once, in publish order, and a SQL write
that fails loses nothing (the batch goes back to the broker and is deferred later).

The SQL failure is a real one: a trigger on the fleet's SQLite store aborts every insert
into ``maintenance_jobs`` until the test drops it.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from maintenance.store.jobs import DEFERRED, REQUEUED, JobStore
from tests.helpers import wait_for
from workers.records import original_order

from .conftest import Fleet

pytestmark = pytest.mark.slow

BLOCKED = 3000
#: One allowed job (a read) after every this many blocked ones.
ALLOWED_EVERY = 10
#: The backlog a worker is stopped in the middle of: more than a few bulk takes
#: (``signals.redis_sweep``) can clear before the stop lands.
STOPPED = 30_000
BREAK_INSERTS = sa.text(
    "CREATE TRIGGER test_break_jobs BEFORE INSERT ON maintenance_jobs "
    "BEGIN SELECT RAISE(ABORT, 'test: the SQL store refuses writes'); END"
)
HEAL_INSERTS = sa.text("DROP TRIGGER IF EXISTS test_break_jobs")


def _runs(fleet: Fleet, labels: list[str]) -> list[int]:
    values = fleet.client.mget([f"{fleet.prefix}:runs:{label}" for label in labels])
    return [int(v or 0) for v in values]


def _broker_empty(fleet: Fleet, queue: str) -> bool:
    return fleet.queue_length(queue) == 0 and fleet.unacked() == 0


def _refused_batches(fleet: Fleet) -> list[int]:
    """Sizes of the batches the worker could not defer (from its log)."""
    sizes = []
    for line in fleet.workers["w1"].log.read_text(errors="replace").splitlines():
        marker = "maintenance: could not defer "
        if marker in line:
            sizes.append(int(line.split(marker, 1)[1].split()[0]))
    return sizes


def test_a_mixed_queue_backlog_is_deferred_in_batches_once_in_order_and_a_failed_write_loses_nothing(  # noqa: E501
    clean_fleet: Fleet,
) -> None:
    """3,000 blocked jobs with allowed reads between them, queued before the window; the
    worker starts consuming while SQL refuses every insert: allowed jobs run, blocked
    batches (more than one message each) are rejected back and none runs or is lost.
    Once SQL is back every blocked job is recorded once, in publish order, and the
    broker keeps nothing; at the lift each runs exactly once, requeued in that order."""
    fleet = clean_fleet
    queue = f"{fleet.prefix}-mixed-{uuid.uuid4().hex[:6]}"
    caption, report = fleet.tasks["generate_caption"], fleet.tasks["build_report"]
    tag = uuid.uuid4().hex[:6]
    blocked = [f"bb{i:05d}-{tag}" for i in range(BLOCKED)]
    allowed = [f"ok{i:05d}-{tag}" for i in range(BLOCKED // ALLOWED_EVERY)]
    ids = []
    for i, label in enumerate(blocked):
        ids.append(caption.apply_async((label,), queue=queue).id)
        if i % ALLOWED_EVERY == ALLOWED_EVERY - 1:
            report.apply_async((allowed[i // ALLOWED_EVERY],), queue=queue)
    assert fleet.queue_length(queue) == BLOCKED + len(allowed)
    # The session fleet's event log holds earlier tests' recoveries: judge only ours.
    before = fleet.service.history(1)
    first_event = (before[0].id or 0) + 1 if before else 0

    engine = fleet.service.db.engine
    store = JobStore(fleet.service.db)
    with engine.begin() as conn:
        conn.execute(BREAK_INSERTS)
    names = [fleet.workers["w1"].nodename]
    try:
        fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
        replies = fleet.app.control.add_consumer(queue, destination=names, reply=True, timeout=5)
        assert len(replies) == 1, replies
        wait_for(lambda: all(n == 1 for n in _runs(fleet, allowed)), timeout=60, what="allowed ran")
        wait_for(lambda: len(_refused_batches(fleet)) >= 3, timeout=30, what="refused batches")
        assert max(_refused_batches(fleet)) > 1  # deferred in batches, not one by one
        assert store.count(DEFERRED) == 0
        assert not any(_runs(fleet, blocked))
        assert fleet.queue_length(queue) + fleet.unacked() > 0  # all still in the broker
    finally:
        with engine.begin() as conn:
            conn.execute(HEAL_INSERTS)

    try:
        wait_for(lambda: store.count(DEFERRED) == BLOCKED, timeout=120, what="all deferred")
        wait_for(lambda: _broker_empty(fleet, queue), timeout=30, what="all acknowledged")
        records = store.find(DEFERRED, limit=None)
        assert len(records) == BLOCKED and {r.original_id for r in records} == set(ids)
        assert [r.original_id for r in sorted(records, key=original_order)] == ids
        assert not any(_runs(fleet, blocked))

        fleet.service.disable_maintenance("ops")  # requeues in this process
        wait_for(lambda: all(n == 1 for n in _runs(fleet, blocked)), timeout=180, what="all ran")
        wait_for(lambda: _broker_empty(fleet, queue), timeout=30, what="queue drained")
    finally:
        fleet.app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)
    assert _runs(fleet, blocked) == [1] * BLOCKED and _runs(fleet, allowed) == [1] * len(allowed)
    assert {r.original_id for r in store.find(REQUEUED, limit=None)} == set(ids)
    # Publish order within each recovery that requeued (the disable's, and any other
    # that found records left, e.g. a worker's status check).
    events = [
        event
        for event in fleet.service.history(10, kinds=("jobs_requeued",))
        if (event.id or 0) >= first_event
    ]
    position = {task_id: i for i, task_id in enumerate(ids)}
    assert events
    for event in events:
        published = [position[old] for old, _new in event.details["jobs"]]
        assert published == sorted(published), event.actor


def test_a_worker_stopped_while_deferring_a_backlog_leaves_nothing_lost_or_twice(
    clean_fleet: Fleet,
) -> None:
    """A worker deferring a backlog is shut down (warm) while batches are open: what it
    held is deferred or back in the broker; another worker defers the rest. Every job
    ends recorded exactly once, nothing stays in the broker, none runs."""
    fleet = clean_fleet
    queue, labels, ids = fleet.queue_captions("st", STOPPED)
    store = JobStore(fleet.service.db)
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    stopping = fleet.start_worker("w3", [queue])
    try:
        wait_for(lambda: store.count(DEFERRED) >= 200, timeout=60, what="deferral under way")
        stopping.stop()
    finally:
        fleet.workers.pop("w3", None)
        stopping.stop()
    assert store.count(DEFERRED) < STOPPED  # stopped part-way
    names = [fleet.workers["w1"].nodename]
    replies = fleet.app.control.add_consumer(queue, destination=names, reply=True, timeout=5)
    assert len(replies) == 1, replies
    try:
        wait_for(lambda: store.count(DEFERRED) == STOPPED, timeout=120, what="all deferred")
        wait_for(lambda: _broker_empty(fleet, queue), timeout=30, what="all acknowledged")
    finally:
        fleet.app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)
    records = store.find(DEFERRED, limit=None)
    assert sorted(r.original_id for r in records) == sorted(ids)
    assert [r.original_id for r in sorted(records, key=original_order)] == ids
    assert not any(_runs(fleet, labels))


def test_a_backlog_from_a_publisher_without_the_hooks_is_taken_in_bulk_in_queue_order(
    clean_fleet: Fleet,
) -> None:
    """On the Redis broker the worker takes a blocked backlog from the queue in bulk
    (``signals.redis_sweep``). Messages published without the gate carry no publish
    time, so their recovery order is the order they were recorded in: it must still be
    queue order, with allowed jobs between them left in place and run, none twice."""
    fleet = clean_fleet
    queue = f"{fleet.prefix}-bulk-{uuid.uuid4().hex[:6]}"
    tag = uuid.uuid4().hex[:6]
    amqp = fleet.app.amqp
    caption, report = fleet.tasks["generate_caption"], fleet.tasks["build_report"]
    blocked = [f"ub{i:05d}-{tag}" for i in range(BLOCKED)]
    allowed = [f"uo{i:05d}-{tag}" for i in range(BLOCKED // ALLOWED_EVERY)]
    ids: list[str] = []
    with fleet.app.producer_or_acquire() as producer, producer.batch(max_size=1000):
        for i, label in enumerate(blocked):
            # Built and sent as a foreign publisher would: no ``send_task``, no stamp.
            task_id = str(uuid.uuid4())
            message = amqp.as_task_v2(task_id, caption.name, args=(label,))
            amqp.send_task_message(producer, caption.name, message, queue=queue)
            ids.append(task_id)
            if i % ALLOWED_EVERY == ALLOWED_EVERY - 1:
                label = allowed[i // ALLOWED_EVERY]
                message = amqp.as_task_v2(str(uuid.uuid4()), report.name, args=(label,))
                amqp.send_task_message(producer, report.name, message, queue=queue)
    assert fleet.queue_length(queue) == BLOCKED + len(allowed)
    store = JobStore(fleet.service.db)
    names = [fleet.workers["w1"].nodename]
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    replies = fleet.app.control.add_consumer(queue, destination=names, reply=True, timeout=5)
    assert len(replies) == 1, replies
    try:
        wait_for(lambda: store.count(DEFERRED) == BLOCKED, timeout=120, what="all deferred")
        wait_for(lambda: all(n == 1 for n in _runs(fleet, allowed)), timeout=60, what="allowed ran")
        wait_for(lambda: _broker_empty(fleet, queue), timeout=30, what="all acknowledged")
    finally:
        fleet.app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)
    records = store.find(DEFERRED, limit=None)
    assert all(r.options.get("published_at") is None for r in records)  # really unstamped
    assert [r.original_id for r in sorted(records, key=original_order)] == ids
    assert not any(_runs(fleet, blocked))
    log = fleet.workers["w1"].log.read_text(errors="replace")
    taken = [
        int(line.split("took ", 1)[1].split()[0])
        for line in log.splitlines()
        if f"from {queue} in bulk" in line
    ]
    assert sum(taken) > BLOCKED // 2, taken  # most of it in bulk, not one by one
