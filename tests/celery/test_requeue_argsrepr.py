"""What a publisher chose to show of a job's arguments (``argsrepr``, ``kwargsrepr``: a
masked secret) survives its deferral and requeue: the message a recovery publishes shows
the same, not the arguments themselves. A real prefork worker defers it; the requeued
message is read back from the Redis queue."""

from __future__ import annotations

import uuid

import pytest

from maintenance.store.jobs import DEFERRED, JobStore
from tests.helpers import wait_for
from workers.requeue import requeue_jobs

from .conftest import Fleet

pytestmark = pytest.mark.slow
MASKED_ARGS, MASKED_KWARGS = "('<card number>',)", "{'hold': '<masked>'}"


def test_a_masked_argument_stays_masked_through_deferral_and_requeue(clean_fleet: Fleet) -> None:
    fleet = clean_fleet
    queue = f"{fleet.prefix}-masked-{uuid.uuid4().hex[:6]}"
    secret = f"4111-{uuid.uuid4().hex[:8]}"
    sent = fleet.tasks["generate_caption"].apply_async(
        (secret,), queue=queue, argsrepr=MASKED_ARGS, kwargsrepr=MASKED_KWARGS
    )
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    store = JobStore(fleet.service.db)
    names = [fleet.workers["w1"].nodename]
    replies = fleet.app.control.add_consumer(queue, destination=names, reply=True, timeout=5)
    assert len(replies) == 1, replies
    try:
        wait_for(lambda: store.count(DEFERRED) == 1, timeout=30, what="the job deferred")
    finally:
        fleet.app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)
    wait_for(lambda: fleet.unacked() == 0, timeout=30, what="the delivery acknowledged")
    fleet.service.disable_maintenance("ops", requeue=False)

    report = requeue_jobs(fleet.app, fleet.service, actor="test")
    assert report.requeued == [(sent.id, sent.id)] and not report.failed
    (message,) = fleet.queued_messages(queue)
    headers = message["headers"]
    assert (headers["argsrepr"], headers["kwargsrepr"]) == (MASKED_ARGS, MASKED_KWARGS)
    assert secret not in str(headers) and secret not in str(message["properties"])
