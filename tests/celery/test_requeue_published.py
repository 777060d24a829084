"""A requeue that published is recorded as published, whatever fails after the publish;
a result backend Celery cannot build is a configuration error when the settings are read."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from celery import Celery
from sqlalchemy.exc import OperationalError

from maintenance import EnhancedMaintenanceModeService
from maintenance.store.jobs import DEFERRED, REQUEUED, REQUEUEING, JobRecord, JobStore
from tests.brokers import TestBroker
from tests.helpers import wait_for
from workers.requeue import requeue_jobs

from .conftest import ROOT


def _probe_app(broker: TestBroker, result_backend: str) -> Celery:
    """A publisher on the test broker with the given result backend (no worker)."""
    app = Celery("requeue-probe", set_as_current=False)
    app.conf.update(
        broker_url=broker.url,
        broker_transport_options=broker.transport_options,
        result_backend=result_backend,
    )
    return app


def _record(store: JobStore, queue: str, label: str, **options: object) -> JobRecord:
    record = JobRecord(
        original_id=f"orig-{label}",
        task_name="captions.generate_caption",
        args=[label],
        options={"published_at": 1000.0, **options},
        queue=queue,
        operation="caption_generation",
        reason="test",
    )
    store.record(record)
    return record


def test_a_requeue_that_published_then_failed_is_published_once(
    broker: TestBroker, service: EnhancedMaintenanceModeService
) -> None:
    """The result backend is the broker URL (what ``celeryconfig`` used to default to):
    Celery cannot build it. Jobs with an ``eta`` are requeued through ``send_task``
    (``workers.republish``): one whose publish needs no backend goes out, then building
    its ``AsyncResult`` fails: it is requeued, once, and later recoveries leave it be;
    one whose publish needs the backend first (the result subscription) is not
    published and stays deferred. A job without one is republished directly, which
    needs no result backend at all: it is requeued."""
    app = _probe_app(broker, "pyamqp://guest:guest@127.0.0.1:5672//")
    store = JobStore(service.db)
    tag = uuid.uuid4().hex[:6]
    queue = f"requeue-{tag}-after"
    eta = "2020-01-01T00:00:00+00:00"
    queues = (queue, f"requeue-{tag}-before", f"requeue-{tag}-direct")  # none a prefix of another
    out_then_failed = _record(store, queue, f"after-{tag}", ignore_result=True, eta=eta)
    never_out = _record(store, queues[1], f"before-{tag}", eta=eta)
    direct = _record(store, queues[2], f"direct-{tag}")
    for name in queues:
        broker.declare_queue(name)  # a worker's binding: the requeue is verified routable
    try:
        first = requeue_jobs(app, service, actor="first")
        assert [old for old, _ in first.requeued] == [
            out_then_failed.original_id,
            direct.original_id,
        ]
        assert [old for old, _ in first.failed] == [never_out.original_id]
        assert "pyamqp" in first.failed[0][1]
        for record, (_, new_id) in zip((out_then_failed, direct), first.requeued, strict=True):
            requeued = store.get(record.original_id)
            assert requeued is not None and requeued.state == REQUEUED
            assert requeued.requeued_id == new_id
        left = store.get(never_out.original_id)
        assert left is not None and left.state == DEFERRED

        for actor in ("disable", "recover", "recover-again"):
            again = requeue_jobs(app, service, actor=actor)
            assert not again.requeued
        wait_for(
            lambda: broker.queue_length(queue) == 1 and broker.queue_length(queues[2]) == 1,
            timeout=10,
            what="one message queued in each",
        )
        assert broker.queue_length(queue) == 1
        assert broker.queue_length(queues[1]) == 0
        assert broker.queue_length(queues[2]) == 1
    finally:
        for name in queues:
            broker.delete_queue(name)


def _import_celeryconfig(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import celeryconfig; print(celeryconfig.result_backend)"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_result_backend_celery_cannot_build_is_an_error_when_settings_are_read() -> None:
    broker = "pyamqp://guest:secret@127.0.0.1:5672/vh"
    done = _import_celeryconfig({"CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": ""})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last and "CELERY_RESULT_BACKEND is not set" in last
    assert "No module named 'pyamqp'" in last and "secret" not in last

    done = _import_celeryconfig({"CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": "nope://x"})
    assert done.returncode != 0 and "CELERY_RESULT_BACKEND=nope://x" in done.stderr

    done = _import_celeryconfig({"CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": "rpc://"})
    assert done.returncode == 0 and done.stdout.strip() == "rpc://", done.stderr


def test_a_requeue_whose_bookkeeping_fails_still_counts_as_published(
    broker: TestBroker, service: EnhancedMaintenanceModeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQL fails just after the publish (marking the record): the job is reported
    requeued, not failed, and its claim keeps the id it went out under (a later
    recovery finishes it under that id, the worker keeps one copy)."""
    app = _probe_app(broker, "disabled")
    store = JobStore(service.db)
    tag = uuid.uuid4().hex[:6]
    queue = f"requeue-{tag}"
    record = _record(store, queue, f"mark-{tag}")

    def sql_gone(self: JobStore, records: object) -> bool:
        raise OperationalError("UPDATE jobs", {}, Exception("database is locked"))

    monkeypatch.setattr(JobStore, "mark_requeued", sql_gone)
    monkeypatch.setattr(JobStore, "mark_requeued_many", sql_gone)
    broker.declare_queue(queue)
    try:
        report = requeue_jobs(app, service, actor="first")
        assert [old for old, _ in report.requeued] == [record.original_id] and not report.failed
        claimed = store.get(record.original_id)
        assert claimed is not None and claimed.state == REQUEUEING
        assert claimed.requeued_id == report.requeued[0][1]
        wait_for(lambda: broker.queue_length(queue) == 1, timeout=10, what="one message queued")
    finally:
        broker.delete_queue(queue)
