"""Recovery requeue: every held-back job republished exactly once, even when recoveries race."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from maintenance.store.jobs import DEFERRED, REQUEUED, JobRecord, JobStore
from tests.helpers import wait_for
from workers.requeue import RequeueReport, publish_record, requeue_jobs

from .conftest import Fleet

pytestmark = pytest.mark.slow


def _deferred_records(fleet: Fleet, count: int, queue: str) -> list[JobRecord]:
    """Records exactly as a worker writes them (the worker path is tested elsewhere)."""
    store = JobStore(fleet.service.db)
    tag = uuid.uuid4().hex[:6]
    for i in range(count):
        store.record(
            JobRecord(
                original_id=f"orig-{tag}-{i:03d}",
                task_name="captions.generate_caption",
                args=[f"rq-{tag}-{i:03d}"],
                options={"published_at": 1000.0 + i},
                queue=queue,
                operation="caption_generation",
                reason="test",
            )
        )
    return store.find(DEFERRED)


def _consume(fleet: Fleet, queue: str) -> None:
    names = [w.nodename for w in fleet.workers.values()]
    fleet.app.control.add_consumer(queue, destination=names, reply=True, timeout=5)


def _stop(fleet: Fleet, queue: str) -> None:
    names = [w.nodename for w in fleet.workers.values()]
    fleet.app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)


def _all_ran_once(fleet: Fleet, records: list[JobRecord], queue: str) -> None:
    labels = [r.args[0] for r in records]
    wait_for(lambda: all(fleet.runs(lb) == 1 for lb in labels), timeout=60, what="each ran")
    wait_for(
        lambda: fleet.queue_length(queue) == 0 and fleet.unacked() == 0,
        timeout=10,
        what="nothing left in the broker",
    )
    assert all(fleet.runs(lb) == 1 for lb in labels)
    requeued = JobStore(fleet.service.db).find(REQUEUED)
    assert {r.original_id for r in requeued} == {r.original_id for r in records}
    assert len({r.requeued_id for r in requeued}) == len(records)


def test_two_concurrent_recover_commands_requeue_each_job_once(clean_fleet: Fleet):
    """Two `maintenance recover` processes started together: every job requeued by exactly
    one of them, in original order, and run exactly once."""
    fleet = clean_fleet
    queue = f"{fleet.prefix}-recover-{uuid.uuid4().hex[:6]}"
    records = _deferred_records(fleet, 40, queue)
    _consume(fleet, queue)
    try:
        procs = [fleet.cli("recover", "-A", "tests.celery.app", "--json") for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        reports = [json.loads(out) for out, _err in outputs]
        done = [[j["original_id"] for j in r["requeued"]] for r in reports]
        assert sorted(done[0] + done[1]) == sorted(r.original_id for r in records)
        assert not set(done[0]) & set(done[1])
        winner = max(done, key=len)
        assert winner == sorted(winner)  # original order (ids sort like publish times here)
        _all_ran_once(fleet, records, queue)
    finally:
        _stop(fleet, queue)


def test_racing_recoveries_without_the_lock_still_requeue_once(clean_fleet: Fleet):
    """With the Redis lock off, the SQL conditional update alone keeps it exactly-once."""
    fleet = clean_fleet
    queue = f"{fleet.prefix}-race-{uuid.uuid4().hex[:6]}"
    records = _deferred_records(fleet, 60, queue)
    reports: list[RequeueReport] = []
    barrier = threading.Barrier(4)

    def recover() -> None:
        barrier.wait()
        reports.append(requeue_jobs(fleet.app, fleet.service, use_lock=False, actor="racer"))

    threads = [threading.Thread(target=recover) for _ in range(4)]
    _consume(fleet, queue)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        ids = [old for report in reports for old, _new in report.requeued]
        assert sorted(ids) == sorted(r.original_id for r in records)
        assert not any(report.failed for report in reports)
        _all_ran_once(fleet, records, queue)
    finally:
        _stop(fleet, queue)


def test_recover_refuses_while_maintenance_is_on_and_jobs_lists_them(clean_fleet: Fleet):
    """Requeueing into active maintenance would only defer again: recover says so, exit 1;
    `maintenance jobs --state deferred --json` lists what waits."""
    fleet = clean_fleet
    queue = f"{fleet.prefix}-idle-{uuid.uuid4().hex[:6]}"
    records = _deferred_records(fleet, 3, queue)
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    proc = fleet.cli("recover", "-A", "tests.celery.app")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "maintenance is active" in out, (out, err)
    proc = fleet.cli("jobs", "--state", "deferred", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    listed = json.loads(out)
    assert [j["original_id"] for j in listed] == [r.original_id for r in records]
    assert listed[0]["queue"] == queue and listed[0]["state"] == "deferred"


def test_disable_from_the_cli_requeues_with_the_configured_app(clean_fleet: Fleet):
    """`maintenance disable` (no Celery app of its own) requeues through celeryconfig."""
    fleet = clean_fleet
    queue = f"{fleet.prefix}-cli-{uuid.uuid4().hex[:6]}"
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    records = _deferred_records(fleet, 5, queue)
    _consume(fleet, queue)
    try:
        proc = fleet.cli("disable", "--by", "ops")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (out, err)
        assert "Requeued 5 job(s)" in out  # a result: stdout, as `emergency --off`
        _all_ran_once(fleet, records, queue)
        assert not fleet.service.state.load().recovery_pending
    finally:
        _stop(fleet, queue)


def test_a_recovery_that_died_midway_is_finished_and_each_job_runs_once(clean_fleet: Fleet):
    """A recovery died after claiming two jobs: one it had already published, one not.
    The next recovery publishes both again under their reserved ids; the workers keep
    exactly one copy of each (the attempt token), so each runs exactly once."""
    fleet = clean_fleet
    queue = f"{fleet.prefix}-died-{uuid.uuid4().hex[:6]}"
    records = _deferred_records(fleet, 2, queue)
    store = JobStore(fleet.service.db)
    published, unpublished = records
    for record in records:
        assert store.claim_for_requeue(record, f"new-{record.original_id}")
    _consume(fleet, queue)
    try:
        # The dead recovery got as far as publishing the first job, then stopped.
        claimed = store.get(published.original_id)
        assert claimed is not None
        publish_record(fleet.app, claimed, f"new-{published.original_id}")
        wait_for(lambda: fleet.runs(published.args[0]) == 1, 30, what="the first copy ran")
        report = requeue_jobs(fleet.app, fleet.service, actor="next", stale_after=0)
        assert sorted(old for old, _new in report.requeued) == sorted(
            r.original_id for r in records
        )
        assert {new for _old, new in report.requeued} == {f"new-{r.original_id}" for r in records}
        wait_for(lambda: fleet.runs(unpublished.args[0]) == 1, 30, what="the second job ran")
        wait_for(
            lambda: fleet.queue_length(queue) == 0 and fleet.unacked() == 0,
            timeout=10,
            what="the second copy consumed (and dropped)",
        )
        assert fleet.runs(published.args[0]) == 1 and fleet.runs(unpublished.args[0]) == 1
        assert {r.state for r in store.find(REQUEUED)} == {REQUEUED}
        assert len(store.find(REQUEUED)) == 2
    finally:
        _stop(fleet, queue)
