"""The outbox on SQLite and PostgreSQL: written in the event's own transaction (or not at
all), one row per endpoint, and claimed by one deliverer at a time."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from maintenance import ConflictError, EnhancedMaintenanceModeService, build_service
from maintenance.domain.history import MaintenanceEvent
from maintenance.domain.status import utcnow
from maintenance.notify import outbox
from maintenance.store import schema
from maintenance.store.eventlog import EventLog

from .conftest import notify_settings

URLS = ["http://127.0.0.1:9/a", "slack+http://127.0.0.1:9/b"]


@pytest.fixture
def make(
    redis_url: str, prefix: str, database_url: str
) -> Callable[..., EnhancedMaintenanceModeService]:
    made: list[EnhancedMaintenanceModeService] = []

    def factory(urls: list[str] = URLS, **overrides: object) -> EnhancedMaintenanceModeService:
        settings = notify_settings(redis_url, database_url, prefix, urls, **overrides)
        service = build_service(settings, kind="cli", register=False)
        made.append(service)
        return service

    yield factory
    for service in made:
        service.close()
        service.db.dispose()


def _rows(service: EnhancedMaintenanceModeService) -> list[dict[str, object]]:
    t = schema.notifications
    with service.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(t).order_by(t.c.id))]


def _events(service: EnhancedMaintenanceModeService) -> int:
    with service.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.events)).scalar_one())


def test_each_announced_event_gets_one_row_per_endpoint_pointing_at_its_log_entry(make) -> None:
    service = make()
    service.enable_maintenance("db upgrade", "30m", enabled_by="alice")
    service.enable_maintenance("db upgrade, part 2", "1h", enabled_by="alice")
    service.update_status("alice", "login_blocked", login_blocked=True)  # not announced
    service.disable_maintenance("bob")
    rows = _rows(service)
    assert [r["type"] for r in rows] == [
        "maintenance.enabled",
        "maintenance.enabled",
        "maintenance.changed",
        "maintenance.changed",
        "maintenance.disabled",
        "maintenance.disabled",
    ]
    assert {r["endpoint"] for r in rows} == {e.id for e in service.notifier.endpoints}
    assert len({r["key"] for r in rows}) == len(rows)
    logged = {e.id: e.kind for e in service.history(20)}
    assert [logged[r["event_id"]] for r in rows[::2]] == [
        "maintenance_enabled",
        "maintenance_updated",
        "maintenance_disabled",
    ]
    assert all(r["state"] == outbox.PENDING and r["attempts"] == 0 for r in rows)


def test_a_rolled_back_event_leaves_no_notification_and_a_lost_race_writes_neither(make) -> None:
    service = make()
    event = MaintenanceEvent(kind="maintenance_overdue", details={"seconds_late": 5})
    with pytest.raises(RuntimeError), service.db.begin() as conn:
        EventLog.append_in(conn, event)
        assert len(conn.execute(select(schema.notifications)).all()) == 2  # inside: written
        raise RuntimeError("the rest of the transaction failed")
    assert _rows(service) == [] and _events(service) == 0
    stale = service.state.load()
    service.enable_maintenance("first", enabled_by="alice")
    before = len(_rows(service)), _events(service)
    with pytest.raises(ConflictError):
        service.enable_maintenance("second", enabled_by="bob", expected_version=stale.version)
    assert (len(_rows(service)), _events(service)) == before


def test_a_process_without_webhooks_writes_no_rows(make) -> None:
    service = make(urls=[])
    service.enable_maintenance("db upgrade", enabled_by="alice")
    assert _rows(service) == [] and _events(service) == 1


def test_concurrent_claims_never_share_a_row_and_an_expired_lease_is_taken_over(make) -> None:
    service = make(urls=["http://127.0.0.1:9/a"])
    for n in range(40):
        service.record_event("drained", "worker", details={"n": n}, activation_id=f"a{n}")
    ids = [e.id for e in service.notifier.endpoints]
    claimed: list[list[int]] = []
    lock = threading.Lock()

    def claimer() -> None:
        got = outbox.claim(service.db, ids, limit=7, lease=60)
        with lock:
            claimed.append([d.id for d in got])

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    counts = Counter(i for batch in claimed for i in batch)
    assert counts and max(counts.values()) == 1
    assert sum(counts.values()) == 40  # 6 x 7 >= 40: everything was claimed once
    assert outbox.claim(service.db, ids, limit=50, lease=60) == []
    later = utcnow() + timedelta(seconds=61)
    retaken = outbox.claim(service.db, ids, limit=50, lease=60, now=later)
    assert len(retaken) == 40
    # The first holder's lease is gone: its failure report changes nothing.
    stale = outbox.Delivery(**{**retaken[0].__dict__, "token": "expired"})
    assert not outbox.mark_failed(service.db, stale, "late", retry_at=later)
    assert outbox.mark_delivered(service.db, retaken[0])
    assert not outbox.mark_delivered(service.db, retaken[0])  # once
