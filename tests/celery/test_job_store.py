"""``JobStore`` on SQLite and PostgreSQL: insert-once records and exactly-once claims."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from maintenance.store.database import Database
from maintenance.store.jobs import (
    DEFERRED,
    DISCARDED,
    KIND_TERMINATED,
    REQUEUED,
    REQUEUEING,
    TERMINATED,
    JobRecord,
    JobStore,
)
from maintenance.store.migrations import upgrade


@pytest.fixture
def store(database_url: str) -> Iterator[JobStore]:
    db = Database(database_url)
    upgrade(db.engine)
    yield JobStore(db)
    db.dispose()


def _record(i: int = 0, **changes: object) -> JobRecord:
    values: dict[str, object] = {
        "original_id": f"job-{uuid.uuid4().hex[:8]}-{i}",
        "task_name": "captions.generate_caption",
        "args": [i],
        "kwargs": {"size": "large"},
        "options": {"link": [{"task": "notify", "args": [], "kwargs": {}, "options": {}}]},
        "queue": "captions",
        "operation": "caption_generation",
    }
    values.update(changes)
    return JobRecord(**values)  # type: ignore[arg-type]


def test_a_job_is_recorded_once_per_original_id(store: JobStore):
    """A redelivered message (same task id) never creates a second record."""
    job = _record()
    assert store.record(job) is True
    assert store.record(job) is False
    stored = store.get(job.original_id)
    assert stored is not None and stored.state == DEFERRED
    assert stored.args == [0] and stored.kwargs == {"size": "large"}
    assert stored.options["link"][0]["task"] == "notify"
    assert stored.created_at is not None and stored.created_at.tzinfo is not None
    assert len(store.find()) == 1


def test_only_one_of_many_concurrent_claims_wins(store: JobStore):
    """Eight threads claim the same record at once: exactly one succeeds."""
    store.record(_record())
    (job,) = store.requeueable()
    barrier = threading.Barrier(8)
    wins: list[str] = []

    def claim(n: int) -> None:
        barrier.wait()
        if store.claim_for_requeue(job, f"new-{n}"):
            wins.append(f"new-{n}")

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(wins) == 1
    claimed = store.get(job.original_id)
    assert claimed is not None and claimed.state == REQUEUEING and claimed.requeued_id == wins[0]
    assert store.mark_requeued(job) and not store.mark_requeued(job)
    final = store.get(job.original_id)
    assert final is not None and final.state == REQUEUED
    assert store.requeueable() == []


def test_a_failed_requeue_returns_the_job_to_its_kind(store: JobStore):
    """Releasing a claim puts deferred jobs back to deferred and terminated to terminated."""
    store.record(_record(1))
    store.record(_record(2, kind=KIND_TERMINATED, state=TERMINATED, outcome="sigterm"))
    for job in store.requeueable():
        assert store.claim_for_requeue(job, "x")
        assert store.release_claim(job, outcome="broker down")
    states = {j.kind: j.state for j in store.find()}
    assert states == {"deferred": DEFERRED, "terminated": TERMINATED}
    assert all(j.requeued_id is None for j in store.find())


def test_requeueable_is_in_order_and_skips_jobs_unsafe_to_rerun(store: JobStore):
    """Oldest first; a job marked rerun_safe=False, or whose args are not JSON, is left
    for an operator; a discarded one is gone from the list."""
    first, second, unsafe, odd = _record(1), _record(2), _record(3, rerun_safe=False), _record(4)
    odd = JobRecord(**{**odd.__dict__, "args": [object()]})
    for job in (first, second, unsafe, odd):
        store.record(job)
    assert [j.original_id for j in store.requeueable()] == [first.original_id, second.original_id]
    stored_odd = store.get(odd.original_id)
    assert stored_odd is not None and not stored_odd.rerun_safe
    assert "object" in stored_odd.args  # kept as its repr, for the operator
    (head,) = store.requeueable(limit=1)
    assert store.discard(head, "operator said no")
    assert [j.original_id for j in store.requeueable()] == [second.original_id]
    assert store.counts() == {DEFERRED: 3, DISCARDED: 1}
