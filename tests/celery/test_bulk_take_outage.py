"""Redis goes away while a worker takes a blocked backlog in bulk (``signals.redis_sweep``).

A real prefork worker reaches Redis (its broker and its control plane) through a TCP
proxy. The test makes the cut land at the worst moment: it holds the SQLite store's write
lock until a bulk take has moved messages into kombu's unacknowledged index and waits on
its SQL write, cuts every Redis connection, then lets the write through -- so the jobs
are recorded and their acknowledgement fails. The worker keeps running; once Redis is
back and kombu has restored what was delivered and never acknowledged
(``restore_visible``, as any worker does once the visibility timeout passed), every job
is recorded exactly once, none runs and the broker keeps nothing.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit, urlunsplit

import pytest
from kombu import Connection

from maintenance.store.jobs import DEFERRED, JobStore
from tests.helpers import wait_for
from tests.services import TcpProxy

from .conftest import Fleet

pytestmark = pytest.mark.slow
BACKLOG = 20_000
#: Deferred before the cut: the bulk take is well under way.
CUT_AFTER = 2_000
#: Messages in kombu's unacknowledged index that only a bulk take holds (a worker's own
#: deliveries are at most its prefetch, 2 x 4 here).
TAKEN = 50


def _via(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))


def _sqlite_path(fleet: Fleet) -> str:
    return fleet.env["MAINTENANCE_DATABASE_URL"].removeprefix("sqlite:///")


def _restore_unacknowledged(fleet: Fleet) -> None:
    """kombu's own restore of messages delivered and not acknowledged, as a worker runs it
    once their visibility timeout (here 1 s) has passed."""
    options = {"global_keyprefix": fleet.broker_prefix, "visibility_timeout": 1}
    with Connection(fleet.env["CELERY_BROKER_URL"], transport_options=options) as conn:
        conn.default_channel.qos.restore_visible(num=BACKLOG, interval=0)


def test_redis_cut_mid_bulk_take_loses_nothing_and_records_nothing_twice(
    clean_fleet: Fleet,
) -> None:
    fleet = clean_fleet
    queue, labels, ids = fleet.queue_captions("ct", BACKLOG)
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    store = JobStore(fleet.service.db)
    target = urlsplit(fleet.env["REDIS_URL"])
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    url = _via(proxy, fleet.env["REDIS_URL"])
    worker = fleet.start_worker("cut1", [queue], env={"REDIS_URL": url, "CELERY_BROKER_URL": url})
    try:
        wait_for(lambda: store.count(DEFERRED) >= CUT_AFTER, timeout=60, what="bulk take under way")
        lock = sqlite3.connect(_sqlite_path(fleet), isolation_level=None, timeout=15)
        try:
            lock.execute("BEGIN IMMEDIATE")  # the next SQL write waits (busy timeout 15 s)
            wait_for(lambda: fleet.unacked() >= TAKEN, timeout=10, what="a take waits on SQL")
            proxy.cut()
        finally:
            lock.close()  # the write goes through; its acknowledgement cannot
        wait_for(
            lambda: (
                "the bulk take of a Redis queue failed" in worker.log.read_text(errors="replace")
            ),
            timeout=30,
            what="the take saw the outage",
        )
        assert store.count(DEFERRED) < BACKLOG  # cut mid-backlog
        proxy.restore()

        def settled() -> bool:
            if not worker.alive():
                raise AssertionError(f"the worker died:\n{worker.tail()}")
            if fleet.queue_length(queue) == 0:
                _restore_unacknowledged(fleet)  # what the cut left delivered, back
            return (
                store.count(DEFERRED) == BACKLOG
                and fleet.queue_length(queue) == 0
                and (fleet.unacked() == 0)
            )

        wait_for(settled, timeout=180, interval=0.5, what="every job recorded, broker empty")
        records = store.find(DEFERRED, limit=None)
        assert sorted(r.original_id for r in records) == sorted(ids)  # each exactly once
        values = fleet.client.mget([f"{fleet.prefix}:runs:{label}" for label in labels])
        assert not any(values)  # none ran
        assert worker.alive()
    finally:
        worker.stop()
        fleet.workers.pop("cut1", None)
        proxy.cut()
