"""The public status page over HTTP: no login, cacheable (max-age, ETag, 304), public-safe,
served without SQL per request; upcoming windows in the page, the status API and the
announcement banner; linked from the 503 page."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from maintenance import EnhancedMaintenanceModeService
from maintenance.domain.status import utcnow
from maintenance.store import schema
from maintenance.store.windows import WindowStore
from tests.helpers import wait_for

from .app import build_app

ADMIN_NAME = "alice-the-operator"


@pytest.fixture
def web(make_service: Callable[..., EnhancedMaintenanceModeService]) -> Callable[..., Any]:
    def factory(announce_before: float = 24 * 3600, **config: Any) -> tuple[Any, Flask]:
        service = make_service(kind="web", announce_before=announce_before).start()
        return service, build_app(service, **config)

    return factory


def _window(
    service: EnhancedMaintenanceModeService, starts_in: float, hours: float = 1.0, **kw: Any
):
    start = utcnow() + timedelta(seconds=starts_in)
    return WindowStore(service.db).add(
        start,
        start + timedelta(hours=hours),
        kw.get("reason", "Database upgrade"),
        kw.get("mode", "normal"),
        ADMIN_NAME,
    )


@pytest.fixture
def sql_statements() -> Iterator[Callable[[EnhancedMaintenanceModeService], list[str]]]:
    """Record the SQL statements a service's engine runs from now on in this thread (the
    test client serves requests here; the status cache's own thread checks SQL on its
    timer, whatever requests come)."""
    listening: list[tuple[Any, Any]] = []
    here = threading.get_ident()

    def watch(service: EnhancedMaintenanceModeService) -> list[str]:
        seen: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if threading.get_ident() == here:
                seen.append(statement)

        event.listen(service.db.engine, "before_cursor_execute", record)
        listening.append((service.db.engine, record))
        return seen

    yield watch
    for engine, record in listening:
        event.remove(engine, "before_cursor_execute", record)


def test_the_page_needs_no_login_is_cacheable_and_answers_304_while_unchanged(web) -> None:
    service, app = web()
    client = app.test_client()
    first = client.get("/status")
    assert first.status_code == 200 and first.mimetype == "text/html"
    assert "All systems operational" in first.get_data(as_text=True)
    assert first.cache_control.public and first.cache_control.max_age == 30
    etag = first.headers["ETag"]
    again = client.get("/status", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    service.enable_maintenance("Rolling restart", "20m", enabled_by=ADMIN_NAME)
    changed = client.get("/status", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert "<script" not in changed.get_data(as_text=True)  # works without JavaScript


def test_the_page_shows_state_upcoming_windows_and_history_without_internals(web) -> None:
    service, app = web()
    _window(service, 3 * 3600, reason="Database upgrade")
    _window(service, 5 * 3600, reason="Rehearsal of the upgrade", mode="test")
    service.enable_maintenance("Storage migration", "30m", enabled_by=ADMIN_NAME)
    service.disable_maintenance(ADMIN_NAME, reason="done early, see ticket OPS-1234")
    service.enable_maintenance("Dry run", mode="test", enabled_by=ADMIN_NAME)
    service.disable_maintenance(ADMIN_NAME)
    service.enable_maintenance("Disk full", mode="emergency", enabled_by=ADMIN_NAME)
    page = app.test_client().get("/status").get_data(as_text=True)
    assert "Emergency maintenance in progress" in page and "Disk full" in page
    upcoming = page.split('id="upcoming"')[1].split('id="history"')[0]
    assert "Database upgrade" in upcoming and "Rehearsal" not in upcoming
    history = page.split('id="history"')[1]
    assert "Storage migration" in history and "Dry run" not in history
    assert "Disk full" not in history  # still going: it is the current state
    status = service.state.load()
    for internal in (ADMIN_NAME, "OPS-1234", str(status.activation_id), str(status.emergency_id)):
        assert internal not in page


def test_serving_the_page_runs_no_sql(web, sql_statements) -> None:
    service, app = web(MAINTENANCE_SCHEDULE_REFRESH=3600)
    _window(service, 3600)
    client = app.test_client()
    assert client.get("/status").status_code == 200  # loads the schedule once
    seen = sql_statements(service)
    for _ in range(50):
        assert client.get("/status").status_code == 200
        assert client.get("/").status_code == 200  # the banner reads the same schedule
    assert client.get("/api/maintenance/status").get_json()["upcoming_windows"]
    assert seen == []
    app.extensions["maintenance_public"].schedule.invalidate()
    client.get("/status")
    assert any("maintenance_windows" in s for s in seen)  # the probe does see a reload


def test_a_new_window_shows_once_the_schedule_refreshes_and_sql_trouble_keeps_the_last_copy(
    web, caplog: pytest.LogCaptureFixture
) -> None:
    refresh = 0.3
    service, app = web(MAINTENANCE_SCHEDULE_REFRESH=refresh)
    client = app.test_client()
    before = client.get("/status")
    _window(service, 7200, reason="Network maintenance")
    after = wait_for(
        lambda: "Network maintenance" in (r := client.get("/status")).get_data(as_text=True) and r,
        timeout=refresh + 5,
        what="the new window",
    )
    assert after.headers["ETag"] != before.headers["ETag"]
    schema.windows.drop(service.db.engine)  # the schedule can no longer be read
    app.extensions["maintenance_public"].schedule.invalidate()
    with caplog.at_level(logging.WARNING, logger="maintenance.public"):
        for _ in range(3):
            again = client.get("/status")
            assert again.status_code == 200
            assert "Network maintenance" in again.get_data(as_text=True)
    assert "public schedule not reloaded" in caplog.text


def test_the_status_api_lists_upcoming_windows_for_everyone(web) -> None:
    service, app = web()
    window = _window(service, 3600, reason="Database upgrade")
    body = app.test_client().get("/api/maintenance/status").get_json()
    assert body["upcoming_windows"] == [
        {
            "start_at": window.start_at.isoformat(),
            "end_at": window.end_at.isoformat(),
            "mode": "normal",
            "reason": "Database upgrade",
        }
    ]
    admin = app.test_client()
    admin.get("/login?username=root&role=admin")
    assert admin.get("/api/maintenance/status").get_json()["upcoming_windows"][0]["reason"]


def test_the_banner_announces_a_window_within_the_lead_time_only(web) -> None:
    service, app = web(announce_before=2 * 3600)
    client = app.test_client()
    _window(service, 3 * 3600, reason="Later work")
    assert "maintenance-banner" not in client.get("/").get_data(as_text=True)
    _window(service, 3600, reason="Database upgrade")
    app.extensions["maintenance_public"].schedule.invalidate()
    home = client.get("/").get_data(as_text=True)
    assert "maintenance-banner--announcement" in home and "Database upgrade" in home
    assert "Later work" not in home and 'href="/status"' in home
    assert ADMIN_NAME not in home


def test_no_announcement_when_the_lead_time_is_zero(web) -> None:
    service, app = web(announce_before=0)
    _window(service, 600)
    assert "maintenance-banner" not in app.test_client().get("/").get_data(as_text=True)


def test_the_503_page_links_the_status_page_and_the_page_is_never_blocked(web) -> None:
    service, app = web()
    service.enable_maintenance("Disk full", mode="emergency", enabled_by=ADMIN_NAME)
    client = app.test_client()
    refused = client.post("/captions/generate", headers={"Accept": "text/html"})
    assert refused.status_code == 503
    assert 'href="/status"' in refused.get_data(as_text=True)
    assert client.get("/status").status_code == 200


def test_the_page_can_move_or_be_turned_off(web) -> None:
    _service, app = web(MAINTENANCE_STATUS_PAGE="/service-status")
    assert app.test_client().get("/service-status").status_code == 200
    service, off = web(MAINTENANCE_STATUS_PAGE=None)
    client = off.test_client()
    assert client.get("/status").status_code == 404
    service.enable_maintenance("Disk full", enabled_by=ADMIN_NAME)
    refused = client.post("/captions/generate", headers={"Accept": "text/html"})
    assert refused.status_code == 503 and "status-page-link" not in refused.get_data(as_text=True)
