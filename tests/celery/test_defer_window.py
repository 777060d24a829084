"""The prefetch window a deferral opens, on RabbitMQ with a real prefork worker: it grows
while a backlog of blocked messages streams in, stays open between batches
(``signals.defer_batch.LINGER``), and closes once the stream ends -- the worker does not
keep reserving far beyond its own prefetch after the backlog is gone.

The worker's prefetch is read as Celery reports it (``inspect stats``: ``prefetch_count``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from maintenance.store.jobs import DEFERRED, JobStore
from signals.defer_batch import LIMIT
from tests.brokers import TestBroker
from tests.helpers import wait_for
from tests.support import delete_prefix

from .conftest import Fleet, close_fleet, fleet_environment, open_fleet

pytestmark = pytest.mark.slow

BACKLOG = 8000


@pytest.fixture
def rabbit_fleet(broker: TestBroker, redis_url: str, tmp_path: Path) -> Iterator[Fleet]:
    prefix = f"tw{uuid.uuid4().hex[:8]}"
    env = fleet_environment(tmp_path, prefix)
    env.update(broker.env())
    fleet = open_fleet(env)
    try:
        yield fleet
    finally:
        close_fleet(fleet)
        broker.delete_queue(fleet.default_queue)
        delete_prefix(redis_url, prefix)


def _prefetch(fleet: Fleet, node: str) -> int | None:
    replies = fleet.app.control.inspect(destination=[node], timeout=2).stats() or {}
    stats = replies.get(node)
    return None if stats is None else int(stats["prefetch_count"])


@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)
def test_the_window_a_backlog_opens_closes_when_the_stream_ends(
    rabbit_fleet: Fleet, broker: TestBroker
) -> None:
    fleet = rabbit_fleet
    worker = fleet.start_worker("w1", [fleet.default_queue])
    base = _prefetch(fleet, worker.nodename)
    assert base == fleet.concurrency * int(fleet.env["CELERY_PREFETCH_MULTIPLIER"])
    queue, labels, ids = fleet.queue_captions("win", BACKLOG)
    store = JobStore(fleet.service.db)
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    names = [worker.nodename]
    try:
        replies = fleet.app.control.add_consumer(queue, destination=names, reply=True, timeout=5)
        assert len(replies) == 1, replies
        seen: list[int] = []

        def all_deferred() -> bool:
            value = _prefetch(fleet, worker.nodename)
            if value is not None:
                seen.append(value)
            return store.count(DEFERRED) >= BACKLOG

        wait_for(all_deferred, timeout=120, interval=0.05, what="the backlog deferred")
        # The window grew while the backlog streamed in, and never beyond its bound:
        # two slots per held message (at most LIMIT of them) plus the batch before's.
        assert max(seen) > base, seen
        assert max(seen) <= base + 2 * 2 * LIMIT, seen
        # ... and closes once nothing more comes: back to the worker's own prefetch.
        wait_for(
            lambda: _prefetch(fleet, worker.nodename) == base,
            timeout=15,
            interval=0.1,
            what=f"the prefetch back to {base}",
        )
        assert broker.queue_length(queue) == 0
        records = store.find(DEFERRED, limit=None)
        assert sorted(r.original_id for r in records) == sorted(ids)
        assert not any(fleet.runs(label) for label in labels)
    finally:
        fleet.app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)
        broker.delete_queue(queue)
