"""A backlog of the ledger's blocked jobs, on an app wired from the docs alone: its worker
takes it from the Redis queue in bulk (``signals.redis_sweep``), records every job once
in queue order, runs none, and after the window each runs exactly once. Real Redis, a
real prefork worker of the ledger app, SQLite."""

from __future__ import annotations

import uuid

import pytest

from maintenance.store.jobs import DEFERRED, JobStore
from tests.helpers import wait_for
from workers.records import original_order

from .conftest import Ledger

pytestmark = pytest.mark.slow
BACKLOG = 1_500


def _queue_empty(stack: Ledger, queue: str) -> bool:
    client = stack.service.redis
    prefix = stack.env["LEDGER_BROKER_PREFIX"]
    return not any(
        client.llen(name)
        for name in client.scan_iter(f"{prefix}{queue}*")
        if client.type(name) == b"list"
    )


def test_a_backlog_of_blocked_ledger_jobs_is_taken_in_bulk_and_runs_once_after(
    stack: Ledger,
) -> None:
    queue = f"{stack.env['LEDGER_PREFIX']}-backlog-{uuid.uuid4().hex[:6]}"
    post = stack.celery.tasks["ledger.post_entry"]
    before = stack.runs("ledger.post_entry")
    # Queued while nothing consumes the queue: the backlog a window meets.
    with stack.celery.producer_or_acquire() as producer, producer.batch(max_size=1000):
        ids = [post.apply_async((n,), queue=queue, producer=producer).id for n in range(BACKLOG)]
    result = stack.service.enable_maintenance("ledger upgrade", "30m", enabled_by="ops", wait=20)
    assert result.fenced, result.to_dict()
    store = JobStore(stack.service.db)
    names = [stack.worker.nodename]
    replies = stack.celery.control.add_consumer(queue, destination=names, reply=True, timeout=5)
    assert len(replies) == 1, replies
    try:
        wait_for(lambda: store.count(DEFERRED) >= BACKLOG, timeout=120, what="backlog deferred")
        wait_for(lambda: _queue_empty(stack, queue), timeout=30, what="queue emptied")
        records = [r for r in store.find(DEFERRED, limit=None) if r.queue == queue]
        assert [r.original_id for r in sorted(records, key=original_order)] == ids
        assert {r.operation for r in records} == {"ledger_posting"}
        assert stack.runs("ledger.post_entry") == before  # none ran in the window
        log = stack.worker.log.read_text(errors="replace")
        taken = [
            int(line.split("took ", 1)[1].split()[0])
            for line in log.splitlines()
            if f"from {queue} in bulk" in line
        ]
        assert sum(taken) > BACKLOG // 2, taken  # most of it in bulk, not one by one

        stack.service.disable_maintenance("ops", wait=20)
        wait_for(
            lambda: stack.runs("ledger.post_entry") >= before + BACKLOG,
            timeout=180,
            what="backlog ran after the window",
        )
        wait_for(lambda: _queue_empty(stack, queue), timeout=30, what="nothing left queued")
        assert stack.runs("ledger.post_entry") == before + BACKLOG  # each exactly once
        assert stack.service.get_maintenance_status().deferred_jobs_count == 0
    finally:
        stack.celery.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)
