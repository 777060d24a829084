"""``JobStore`` on SQLite and PostgreSQL: insert-once records and exactly-once claims."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
import sqlalchemy.exc

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


def test_stopped_jobs_not_safe_to_rerun_need_action_until_dealt_with(store: JobStore) -> None:
    """Listed (and counted) while terminated and never rerun; a discard settles it."""
    unsafe = _record(1, kind=KIND_TERMINATED, state=TERMINATED, rerun_safe=False)
    safe = _record(2, kind=KIND_TERMINATED, state=TERMINATED, outcome="interrupted")
    deferred = _record(3, rerun_safe=False)
    for record in (unsafe, safe, deferred):
        assert store.record(record)
    assert [r.original_id for r in store.needing_action()] == [unsafe.original_id]
    assert store.count_needing_action() == 1
    stored = store.get(unsafe.original_id)
    assert stored is not None and store.discard(stored, "posted by hand")
    assert store.needing_action() == [] and store.count_needing_action() == 0


def test_a_job_requeued_under_its_own_id_and_held_back_again_is_recorded_again_once(
    store: JobStore,
):
    """Held back again in a later window (the same message, requeued under its own id),
    a job's record is re-armed with that window's details: once, however many workers or
    redeliveries see it. A record requeued under another id is never re-armed."""
    job = _record(activation_id="window-1")
    assert store.record(job)
    first = store.get(job.original_id)
    assert first is not None
    assert store.claim_for_requeue(first, job.original_id) and store.mark_requeued(first)

    again = replace(job, activation_id="window-2", reason="second window")
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def defer() -> None:
        barrier.wait()
        results.append(store.record(again))

    threads = [threading.Thread(target=defer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False] * 5 + [True]
    rearmed = store.get(job.original_id)
    assert rearmed is not None and rearmed.id == first.id
    assert rearmed.state == DEFERRED and rearmed.requeued_id is None
    assert rearmed.activation_id == "window-2" and rearmed.reason == "second window"
    assert len(store.find(limit=None)) == 1

    other = _record(1)
    assert store.record(other)
    stored = store.get(other.original_id)
    assert stored is not None
    assert store.claim_for_requeue(stored, "a-new-id") and store.mark_requeued(stored)
    assert store.record(other) is False  # ran under another id: not held back again
    after = store.get(other.original_id)
    assert after is not None and after.state == REQUEUED and after.requeued_id == "a-new-id"


def test_many_jobs_are_recorded_in_one_call_once_per_original_id_in_order(store: JobStore):
    """``record_many`` writes a batch (more rows than one ``INSERT`` takes) in its order:
    a job already recorded, a second message of the same id in the batch, and a job
    requeued under its own id held back again follow ``record``'s rule."""
    earlier = _record(-1)
    assert store.record(earlier)
    requeued = _record(-2, activation_id="window-1")
    assert store.record(requeued)
    first = store.get(requeued.original_id)
    assert first is not None
    assert store.claim_for_requeue(first, requeued.original_id) and store.mark_requeued(first)

    fresh = [_record(i) for i in range(1200)]
    again = replace(requeued, activation_id="window-2")
    unsafe = _record(9999, args=[{"not", "json"}])  # kept as its repr, not rerun-safe
    batch = [fresh[0], earlier, *fresh[1:600], fresh[3], again, *fresh[600:], unsafe]
    stored = store.record_many(batch)

    assert stored == [True, False, *[True] * 599, False, True, *[True] * 600, True]
    assert store.record_many([]) == []
    records = store.find(DEFERRED, limit=None)
    assert len(records) == 1 + 1 + 1200 + 1
    by_id = {r.original_id: r for r in records}
    assert by_id[again.original_id].activation_id == "window-2"
    assert by_id[again.original_id].id == first.id  # re-armed, not a second row
    assert by_id[unsafe.original_id].rerun_safe is False
    new_rows = [by_id[j.original_id].id or 0 for j in fresh]
    assert new_rows == sorted(new_rows)  # ids follow the batch's order
    assert by_id[fresh[5].original_id].args == [5]
    assert by_id[fresh[5].original_id].options["link"][0]["task"] == "notify"


def test_a_batch_with_a_value_too_long_for_its_column_writes_nothing(
    store: JobStore, database_url: str
):
    """PostgreSQL refuses the whole batch, as a plain ``INSERT`` would -- the value is
    never cut short to fit (SQLite does not enforce ``VARCHAR`` lengths)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    batch = [_record(1), _record(2, task_name="t" * 300), _record(3)]
    with pytest.raises(sqlalchemy.exc.DataError):
        store.record_many(batch)
    assert store.find(DEFERRED, limit=None) == []
    assert store.record_many([batch[0], batch[2]]) == [True, True]
