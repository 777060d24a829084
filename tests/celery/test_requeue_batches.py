"""The recovery requeue publishes recorded jobs in batches, on Redis and RabbitMQ
(``workers.requeue``, ``workers.republish``, ``workers.route_check``):

* a batch mixing jobs some queue takes with jobs none does requeues the first, in their
  original order, and reports the others failed (RabbitMQ: each returned unroutable
  within a batch whose confirms are collected at once; Redis: no consumer bound), back
  in their deferred state for a later recovery -- across several batches;
* the message a recorded job is republished as is the message ``send_task`` would have
  published for it (every header, the body, priority and ``reply_to``), with the requeue's
  own headers and the publish gate's stamps;
* on RabbitMQ a batch's publishes do not read the socket one by one: its confirms and
  returns are read together when the batch is settled.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from kombu import Connection

import signals
from maintenance import EnhancedMaintenanceModeService
from maintenance.store.jobs import DEFERRED, REQUEUED, JobRecord, JobStore
from tests.brokers import TestBroker
from workers.headers import OPERATION, PUBLISHED_NS, REQUEUE_ATTEMPT, REQUEUED_FROM, VERSION
from workers.internal_publish import internal_publish
from workers.requeue import requeue_jobs

pytestmark = pytest.mark.slow
TASK = "captions.generate_caption"


@pytest.fixture
def app(broker: TestBroker, service: EnhancedMaintenanceModeService) -> Iterator[Celery]:
    """A Celery app on ``broker`` with the maintenance hooks (the publish gate's stamps)."""
    app = Celery("requeue-batches", set_as_current=False)
    app.conf.update(
        broker_url=broker.url,
        broker_transport_options=broker.transport_options,
        result_backend=broker.result_backend or broker.url,
    )
    signals.install(app, service)
    try:
        yield app
    finally:
        app.close()


def _record(store: JobStore, queue: str, label: str, at: float, **options: Any) -> JobRecord:
    store.record(
        JobRecord(
            original_id=f"orig-{label}",
            task_name=TASK,
            args=[label],
            kwargs={"size": 3},
            options={"published_at": at, **options},
            queue=queue,
            operation="caption_generation",
            reason="test",
        )
    )
    found = store.get(f"orig-{label}")
    assert found is not None
    return found


def _drain(broker: TestBroker, queue: str) -> list[Any]:
    """Every message waiting in ``queue``, in the order a consumer gets them."""
    found = []
    with Connection(broker.url, transport_options=broker.transport_options) as conn:
        simple = conn.SimpleQueue(queue, no_ack=True)
        try:
            while True:
                try:
                    found.append(simple.get(block=True, timeout=2))
                except simple.Empty:
                    return found
        finally:
            simple.close()


def test_a_batch_mixing_routable_and_unroutable_jobs_requeues_the_routable_in_order(
    broker: TestBroker, service: EnhancedMaintenanceModeService, app: Celery
) -> None:
    store = JobStore(service.db)
    tag = uuid.uuid4().hex[:6]
    bound, unbound = f"rb-{tag}", f"rb-{tag}-nobody"
    records = [
        _record(store, unbound if n % 3 == 1 else bound, f"{tag}-{n}", 1000.0 + n)
        for n in range(10)
    ]
    taken = [r for r in records if r.queue == bound]
    refused = [r for r in records if r.queue == unbound]
    broker.declare_queue(bound)  # a worker's binding; nothing ever declared ``unbound``
    try:
        report = requeue_jobs(app, service, actor="test", batch_size=4)  # three batches

        assert [old for old, _ in report.requeued] == [r.original_id for r in taken]
        assert sorted(old for old, _ in report.failed) == sorted(r.original_id for r in refused)
        for _, error in report.failed:
            assert "start a worker consuming it" in error, error
        assert not report.recovery_completed
        for record in taken:
            found = store.get(record.original_id)
            assert found is not None and found.state == REQUEUED
            assert found.requeued_id == record.original_id  # deferred: its own id
        for record in refused:
            found = store.get(record.original_id)
            assert found is not None and found.state == DEFERRED and found.requeued_id is None

        messages = _drain(broker, bound)
        assert [m.headers["id"] for m in messages] == [r.original_id for r in taken]
        assert [m.headers[REQUEUED_FROM] for m in messages] == [r.original_id for r in taken]
        assert len({m.headers[REQUEUE_ATTEMPT] for m in messages}) == len(taken)
        assert broker.queue_length(unbound) == 0
    finally:
        broker.delete_queue(bound)
        broker.delete_queue(unbound)


def test_a_requeued_message_is_the_message_send_task_would_publish(
    broker: TestBroker, service: EnhancedMaintenanceModeService, app: Celery
) -> None:
    store = JobStore(service.db)
    tag = uuid.uuid4().hex[:6]
    queue = f"rb-{tag}-same"
    callback = {"task": "captions.notify", "args": [1], "kwargs": {}, "options": {}}
    options: dict[str, Any] = {
        "link": [callback],
        "link_error": [dict(callback, task="captions.failed")],
        "group_id": f"group-{tag}",
        "group_index": 2,
        "root_id": f"root-{tag}",
        "parent_id": f"parent-{tag}",
        "retries": 2,
        "time_limit": 30,
        "soft_time_limit": 20,
        "shadow": "captions.shadowed",
        "priority": 3,
        "headers": {"x-tenant": "t1"},
    }
    record = _record(store, queue, f"{tag}-same", 1000.0, **options)
    broker.declare_queue(queue)
    try:
        report = requeue_jobs(app, service, actor="test")
        assert [old for old, _ in report.requeued] == [record.original_id], report.failed
        with internal_publish("recovery"):  # what the requeue published before, by hand
            app.send_task(
                TASK,
                args=record.args,
                kwargs=record.kwargs,
                task_id=f"by-send-task-{tag}",
                queue=queue,
                declare=[],
                **{**options, "headers": {**options["headers"], REQUEUED_FROM: "x"}},
            )
        requeued, by_send_task = _drain(broker, queue)

        assert requeued.headers["id"] == record.original_id
        assert requeued.headers[REQUEUED_FROM] == record.original_id
        assert requeued.headers[REQUEUE_ATTEMPT]
        assert requeued.headers[OPERATION] == "caption_generation"  # the gate's stamps
        assert requeued.headers[VERSION] == by_send_task.headers[VERSION]
        assert requeued.headers[PUBLISHED_NS] <= by_send_task.headers[PUBLISHED_NS]
        differ = {"id", "correlation_id", REQUEUED_FROM, REQUEUE_ATTEMPT, PUBLISHED_NS}
        same = {k: v for k, v in requeued.headers.items() if k not in differ}
        expected = {k: v for k, v in by_send_task.headers.items() if k not in differ}
        assert same == expected
        assert same["x-tenant"] == "t1" and same["timelimit"] == [30, 20]
        assert same["root_id"] == f"root-{tag}" and same["group"] == f"group-{tag}"
        assert requeued.payload == by_send_task.payload
        for key in ("priority", "reply_to", "content_type", "content_encoding"):
            assert requeued.properties.get(key) == by_send_task.properties.get(key), key
        assert requeued.properties.get("priority") == 3
    finally:
        broker.delete_queue(queue)


def test_a_coalesced_batch_reads_the_socket_once_for_its_confirms_not_per_publish(
    rabbitmq_url: str,
) -> None:
    """py-amqp reads the socket before every publish on a connection the broker may block
    (``connection.blocked``); inside ``CoalescedWrites`` it does not, and the batch's
    confirms and returns are all read at ``Confirms.wait``. The connection's own
    properties are back after the block, also when it raised."""
    from workers.route_check import CoalescedWrites, Confirms

    queue = f"coalesced-{uuid.uuid4().hex[:8]}"
    with Connection(rabbitmq_url) as conn:
        channel = conn.channel()
        channel.queue_declare(queue, auto_delete=True)
        amqp = conn.connection
        assert amqp.client_properties["capabilities"]["connection.blocked"] is True
        reads = 0
        real_drain = amqp.drain_events

        def counting_drain(*args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return real_drain(*args, **kwargs)

        amqp.drain_events = counting_drain
        confirms = Confirms(channel)
        ids = [f"job-{n}" for n in range(200)]
        reads = 0  # confirm_select waited for its answer
        with CoalescedWrites(conn):
            for n, task_id in enumerate(ids):
                routing_key = "nowhere" if n == 7 else queue
                body = channel.prepare_message(b"{}", properties={"correlation_id": task_id})
                channel.basic_publish(body, exchange="", routing_key=routing_key, mandatory=True)
                confirms.expect(task_id)
        assert reads == 0
        confirms.wait(conn, confirms.last)
        nacked, returned = confirms.take(ids)
        assert not nacked and set(returned) == {"job-7"}
        assert channel.queue_declare(queue, passive=True).message_count == 199
        assert amqp.client_properties["capabilities"]["connection.blocked"] is True
        with pytest.raises(RuntimeError), CoalescedWrites(conn):
            raise RuntimeError("a batch that failed")
        assert amqp.client_properties["capabilities"]["connection.blocked"] is True
        amqp.drain_events = real_drain
        channel.queue_delete(queue)
