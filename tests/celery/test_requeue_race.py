"""A 2,000-job backlog requeued by two recoveries at once, consumed by a real worker.

Records are written as a deferring worker writes them (publish time stamped, stored in
shuffled order, so the requeue must sort them); two recoveries start together. The
``solo`` worker runs its queue one message after another, so the order the jobs ran in
is the order they were published in.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest

from maintenance.store.jobs import JobRecord, JobStore
from tests.helpers import wait_for
from workers.records import PUBLISHED_AT
from workers.requeue import RequeueReport, requeue_jobs

from .conftest import Fleet

pytestmark = pytest.mark.slow
JOBS = 2_000


def _defer_backlog(fleet: Fleet, queue: str, worker: str) -> list[str]:
    """``JOBS`` deferred caption jobs on ``queue``; their labels in publish order."""
    labels = [f"r{i:04d}-{uuid.uuid4().hex[:4]}" for i in range(JOBS)]
    records = [
        JobRecord(
            original_id=str(uuid.uuid4()),
            task_name="captions.generate_caption",
            args=[label],
            options={PUBLISHED_AT: 1_000_000.0 + i},
            queue=queue,
            operation="caption_generation",
            reason="db upgrade",
            worker=worker,
        )
        for i, label in enumerate(labels)
    ]
    random.Random(7).shuffle(records)  # recorded out of order, as two workers would
    with fleet.service.db.begin() as conn:
        for record in records:
            JobStore.record_in(conn, record)
    return labels


def _twice(ran: list[str], position: dict[str, int], ids: dict[str, str], log: Path) -> str:
    """What to know when a job ran twice: which, and what its worker logged about it and
    about its broker connection (a redelivery after a lost connection runs a late-acked
    job again)."""
    twice = [label for label, n in Counter(ran).items() if n > 1]
    lines = log.read_text(errors="replace").splitlines()
    told = [
        line
        for line in lines
        if any(ids[label] in line for label in twice) or "broker lost" in line or "ERROR" in line
    ]
    return f"ran twice: {[(label, position[label]) for label in twice]}\n" + "\n".join(told[-40:])


def _race(fleet: Fleet, *, use_lock: bool) -> list[RequeueReport]:
    """Two recoveries started at the same moment; their reports."""
    start = threading.Barrier(2)
    reports: list[RequeueReport] = []
    errors: list[BaseException] = []

    def recover(actor: str) -> None:
        start.wait()
        try:
            reports.append(requeue_jobs(fleet.app, fleet.service, actor=actor, use_lock=use_lock))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=recover, args=(f"recovery-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    assert len(reports) == 2
    return reports


@pytest.mark.parametrize("use_lock", [True, False], ids=["locked", "claims-only"])
def test_two_recoveries_requeue_a_2000_job_backlog_exactly_once(
    clean_fleet: Fleet, use_lock: bool
) -> None:
    """Every job is published once (the batch claims) and runs once; with the recovery
    lock they run in their original order, and without it each recovery still
    publishes what it claimed in that order."""
    fleet = clean_fleet
    name = f"race{uuid.uuid4().hex[:4]}"
    queue = f"{fleet.prefix}-race-{uuid.uuid4().hex[:6]}"
    worker = fleet.start_worker(name, [queue], pool="solo")
    try:
        labels = _defer_backlog(fleet, queue, worker.nodename)
        position = {label: i for i, label in enumerate(labels)}
        reports = _race(fleet, use_lock=use_lock)
        requeued = [old for report in reports for old, _new in report.requeued]
        assert not any(report.failed for report in reports)
        assert len(requeued) == JOBS and len(set(requeued)) == JOBS
        store = JobStore(fleet.service.db)
        by_id = {r.original_id: r.args[0] for r in store.find(limit=None)}
        for report in reports:  # each recovery published its claims in original order
            mine = [position[by_id[old]] for old, _new in report.requeued]
            assert mine == sorted(mine)

        def ran_here() -> list[str]:
            everything = fleet.client.lrange(f"{fleet.prefix}:order", 0, -1)
            return [label for x in everything if (label := x.decode()) in position]

        wait_for(lambda: len(ran_here()) >= JOBS, timeout=120, interval=0.2, what="all ran")
        ran = ran_here()
        assert sorted(ran) == sorted(labels), _twice(
            ran, position, {label: old for old, label in by_id.items()}, worker.log
        )  # each once
        assert all(fleet.runs(label) == 1 for label in labels[:: JOBS // 50])
        if use_lock:
            assert ran == labels  # in the order they were first published
        assert fleet.service.get_maintenance_status().deferred_jobs_count == 0
    finally:
        worker.stop()
        del fleet.workers[name]
