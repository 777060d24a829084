"""Holding a queue in the broker (``MAINTENANCE_HOLD_QUEUES=auto``), on Redis and RabbitMQ.

One prefork worker (``-c 1``, prefetch 4, so order is the order jobs start) consumes two
queues of ``bench/support/backlog_app.py``: one only blocked work is routed to, one shared
by blocked and allowed work. During the window the first is held in the broker -- the
worker stops consuming it, what it had prefetched goes back to the head, no SQL row is
written -- while the second still defers to SQL. A worker started during the window does
not consume the held queue. After the lift every job runs exactly once, in queue order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from bench.support.backlog_app import (
    CAPTION,
    CAPTION_MIXED,
    REPORT,
    held_queue,
    mixed_queue,
    publish,
    ran_key,
    register,
)
from maintenance.store.jobs import DEFERRED, JobStore
from tests.brokers import TestBroker
from tests.helpers import wait_for
from tests.support import delete_prefix
from workers.queue_hold import INFO_KEY

from .conftest import Fleet, close_fleet, fleet_environment, open_fleet

pytestmark = pytest.mark.slow
N = 200


@pytest.fixture
def hold_fleet(
    broker: TestBroker, redis_url: str, tmp_path: Path
) -> Iterator[tuple[Fleet, Celery]]:
    prefix = f"th{uuid.uuid4().hex[:8]}"
    env = fleet_environment(tmp_path, prefix)
    env.update(broker.env())
    env.update(
        BACKLOG_WORKER="1",
        BACKLOG_PREFIX=prefix,
        BACKLOG_COUNTER_URL=redis_url,
        MAINTENANCE_HOLD_QUEUES="auto",
    )
    fleet = open_fleet(env, app_module="bench.support.backlog_app", concurrency=1)
    publisher = Celery("backlog_publisher", set_as_current=False)
    publisher.conf.update(fleet.config)
    register(publisher)
    try:
        yield fleet, publisher
    finally:
        close_fleet(fleet)
        publisher.close()
        for queue in (held_queue(prefix), mixed_queue(prefix)):
            broker.delete_queue(queue)
        delete_prefix(redis_url, prefix)


def _ran(fleet: Fleet, queue: str) -> list[int]:
    return [int(x) for x in fleet.client.lrange(ran_key(queue, fleet.prefix), 0, -1)]


def _held_by(fleet: Fleet, nodename: str) -> list[str]:
    for node in fleet.service.nodes().values():
        if node.kind == "worker" and node.info.get("hostname") == nodename:
            return list(node.info.get(INFO_KEY) or [])
    return []


def test_blocked_queue_waits_in_the_broker_and_runs_once_in_order(
    hold_fleet: tuple[Fleet, Celery], broker: TestBroker
) -> None:
    fleet, publisher = hold_fleet
    held, mixed = held_queue(fleet.prefix), mixed_queue(fleet.prefix)
    release = f"{fleet.prefix}:release"
    w1 = fleet.start_worker("w1", [held, mixed])
    assert _held_by(fleet, w1.nodename) == []

    # Job 0 occupies the only pool process; the worker prefetches more behind it.
    publish(publisher, CAPTION, held, [0], wait=release)
    publish(publisher, CAPTION, held, range(1, N))
    wait_for(lambda: fleet.client.exists(f"{fleet.prefix}:waiting:0"), timeout=30, what="job 0")

    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    wait_for(lambda: _held_by(fleet, w1.nodename) == [held], timeout=10, what="queue held")
    fleet.client.set(release, 1)
    # What it had prefetched went back: every job but 0 waits in the broker.
    wait_for(lambda: broker.queue_length(held) == N - 1, timeout=30, what="backlog in broker")
    wait_for(lambda: _ran(fleet, held) == [0], timeout=30, what="job 0 finished")

    # The mixed queue is still consumed: its blocked jobs defer to SQL, reads run.
    publish(publisher, CAPTION_MIXED, mixed, range(N))
    publish(publisher, REPORT, mixed, range(5))
    store = JobStore(fleet.service.db)
    wait_for(lambda: len(store.find(DEFERRED)) == N, timeout=60, what="mixed queue deferred")
    wait_for(lambda: len(_ran(fleet, f"{mixed}:reports")) == 5, timeout=30, what="reads ran")
    assert {r.queue for r in store.find(DEFERRED)} == {mixed}  # nothing of the held queue
    assert broker.queue_length(held) == N - 1 and _ran(fleet, held) == [0]

    # A worker started during the window starts with the queue cancelled.
    w1.stop()
    w2 = fleet.start_worker("w2", [held, mixed])
    wait_for(lambda: _held_by(fleet, w2.nodename) == [held], timeout=10, what="w2 holds")
    publish(publisher, REPORT, mixed, range(5, 10))
    wait_for(lambda: len(_ran(fleet, f"{mixed}:reports")) == 10, timeout=30, what="w2 consumes")
    assert broker.queue_length(held) == N - 1 and _ran(fleet, held) == [0]

    fleet.service.disable_maintenance("ops")  # requeues the mixed queue's deferred jobs
    wait_for(lambda: len(_ran(fleet, held)) >= N, timeout=120, what="held backlog ran")
    wait_for(lambda: len(_ran(fleet, mixed)) >= N, timeout=120, what="deferred jobs ran")
    wait_for(lambda: broker.queue_length(held) == 0, timeout=10, what="held queue empty")
    assert _held_by(fleet, w2.nodename) == []
    assert _ran(fleet, held) == list(range(N))  # none lost, none twice, in queue order
    assert _ran(fleet, mixed) == list(range(N))
