"""Events that were only in-process signals are durable where they are decided: the drain,
an overdue maintenance and a terminated job reach the event log and the outbox in one
transaction, and when that write fails nothing is announced and a later check retries.

A write failure is made real by taking the outbox table away (the event's transaction
then fails on its INSERT), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from maintenance import EnhancedMaintenanceModeService, MaintenanceError, build_service
from maintenance import events as maintenance_events
from maintenance.domain.status import utcnow
from maintenance.store import schema
from maintenance.store.jobs import KIND_TERMINATED, TERMINATED, JobRecord, JobStore
from workers.beat import status_check
from workers.drain import announce_if_drained
from workers.emergency.outcomes import record_stopped

from .conftest import notify_settings

#: A missing table is "unavailable" on SQLite, a programming error on PostgreSQL.
WRITE_FAILED = (MaintenanceError, SQLAlchemyError)


@pytest.fixture
def service(redis_url: str, prefix: str, database_url: str) -> Iterator[Any]:
    settings = notify_settings(redis_url, database_url, prefix, ["http://127.0.0.1:9/hook"])
    made = build_service(settings, kind="web").start()
    yield made
    made.close()
    made.db.dispose()


def _types(service: EnhancedMaintenanceModeService) -> list[str]:
    t = schema.notifications
    with service.db.connect() as conn:
        return [r.type for r in conn.execute(select(t.c.type).order_by(t.c.id))]


def _outbox_gone(service: EnhancedMaintenanceModeService) -> None:
    schema.notifications.drop(service.db.engine)


def _outbox_back(service: EnhancedMaintenanceModeService) -> None:
    schema.notifications.create(service.db.engine)


def test_the_drain_is_announced_only_once_it_is_on_record(service: Any) -> None:
    heard: list[str] = []

    def receiver(_sender: object, **kw: Any) -> None:
        heard.append(kw["activation_id"])

    maintenance_events.drained.connect(receiver)
    try:
        service.enable_maintenance("db upgrade", enabled_by="alice")
        activation = service.status.activation_id
        _outbox_gone(service)
        assert announce_if_drained(service) is False
        assert heard == []
        assert not service.redis.exists(service.keys.drain_announced(activation))
        _outbox_back(service)
        assert announce_if_drained(service) is True
        assert announce_if_drained(service) is False  # once
    finally:
        maintenance_events.drained.disconnect(receiver)
    assert heard == [activation]
    assert [e.kind for e in service.history(10, kinds=("drained",))] == ["drained"]
    assert _types(service) == ["maintenance.drained"]


def test_overdue_maintenance_is_flagged_again_when_its_first_write_failed(service: Any) -> None:
    service.enable_maintenance("db upgrade", 60, enabled_by="alice")
    later = utcnow() + timedelta(seconds=120)
    _outbox_gone(service)
    with pytest.raises(WRITE_FAILED):  # the beat task fails (Celery logs it)
        status_check(service, None, now=later)
    assert not service.state.load().overdue
    _outbox_back(service)
    report = status_check(service, None, now=later)
    assert report.overdue_flagged and service.state.load().overdue
    assert status_check(service, None, now=later).overdue_flagged is False  # once
    assert "maintenance.overdue" in _types(service)
    assert len(service.history(10, kinds=("maintenance_overdue",))) == 1


def test_a_terminated_job_is_recorded_with_its_event_and_notification_or_not_at_all(
    service: Any,
) -> None:
    service.enable_maintenance("disk full", mode="emergency", enabled_by="carol")
    status = service.state.load()
    record = JobRecord(
        original_id="job-1",
        task_name="captioner.generate_caption",
        kind=KIND_TERMINATED,
        state=TERMINATED,
        outcome="terminated",
        worker="w1@host",
        activation_id=status.activation_id,
    )
    _outbox_gone(service)
    with pytest.raises(WRITE_FAILED):
        record_stopped(service, [record], emergency_id=status.emergency_id, actor="w1@host")
    assert JobStore(service.db).get("job-1") is None  # nothing half-written
    _outbox_back(service)
    record_stopped(service, [record], emergency_id=status.emergency_id, actor="w1@host")
    assert JobStore(service.db).get("job-1") is not None
    assert _types(service) == ["job.terminated"]
    assert [e.details["task_id"] for e in service.history(5, kinds=("job_terminated",))] == [
        "job-1"
    ]
