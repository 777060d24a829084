"""The public pages in a real headless Chromium with JavaScript turned off: the status page,
and the announcement banner appearing ``MAINTENANCE_ANNOUNCE_BEFORE`` ahead of a window.
The screenshots in ``docs/img/`` are written here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from maintenance import EnhancedMaintenanceModeService
from maintenance.domain.status import utcnow
from maintenance.store.windows import WindowStore
from tests.browser import chromium
from tests.helpers import wait_for
from tests.services import LiveServer

from .app import build_app

pytestmark = pytest.mark.browser

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (skipped when the system has none)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def serve(make_service: Callable[..., EnhancedMaintenanceModeService]) -> Iterator[Callable]:
    started: list[LiveServer] = []

    def start(announce_before: float, **config: Any) -> tuple[Any, LiveServer]:
        service = make_service(kind="web", announce_before=announce_before).start()
        server = LiveServer(build_app(service, **config), threads=4).start()
        started.append(server)
        return service, server

    yield start
    for server in started:
        server.stop()


def _no_js_page(browser: Any, server: LiveServer) -> Any:
    context = browser.new_context(
        base_url=server.url, java_script_enabled=False, viewport={"width": 960, "height": 760}
    )
    context.set_default_timeout(10_000)
    return context.new_page()


def _window(service: EnhancedMaintenanceModeService, starts_in: float, reason: str, hours: float):
    start = (utcnow() + timedelta(seconds=starts_in)).replace(microsecond=0)
    return WindowStore(service.db).add(
        start, start + timedelta(hours=hours), reason, "normal", "alice"
    )


def test_the_status_page_works_without_javascript(browser: Any, serve: Callable) -> None:
    service, server = serve(24 * 3600)
    service.enable_maintenance("Storage migration to the new cluster", "45m", enabled_by="alice")
    service.disable_maintenance("alice")
    _window(service, 26 * 3600, "Database upgrade to PostgreSQL 17", 2)
    _window(service, 4 * 24 * 3600, "Network switch replacement in the primary data centre", 1)
    service.enable_maintenance("Rolling restart of the web tier", "20m", enabled_by="alice")

    page = _no_js_page(browser, server)
    response = page.goto("/status")
    assert response is not None and response.status == 200
    assert "max-age=30" in response.headers["cache-control"] and response.headers["etag"]
    assert page.locator("script").count() == 0
    assert page.locator("h2", has_text="Scheduled maintenance in progress").is_visible()
    assert "Rolling restart of the web tier" in page.locator("#status-message").inner_text()
    upcoming = page.locator("#upcoming li")
    assert upcoming.count() == 2
    assert "Database upgrade to PostgreSQL 17" in upcoming.nth(0).inner_text()
    assert "Storage migration" in page.locator("#history").inner_text()
    assert "alice" not in page.content()
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / "status-page.png"), full_page=True)
    # The 503 page a refused user sees links here.
    refused = page.request.post(f"{server.url}/captions/generate", headers={"Accept": "text/html"})
    assert refused.status == 503 and 'href="/status"' in refused.text()
    page.context.close()


def test_the_banner_appears_once_the_window_is_within_the_lead_time(
    browser: Any, serve: Callable
) -> None:
    lead, refresh, ahead = 60.0, 0.5, 4.0
    service, server = serve(lead, MAINTENANCE_SCHEDULE_REFRESH=refresh)
    window = _window(service, lead + ahead, "Database upgrade to PostgreSQL 17", 1)
    announce_at = window.start_at - timedelta(seconds=lead)

    page = _no_js_page(browser, server)
    page.goto("/")
    banner = page.locator(".maintenance-banner--announcement")
    assert banner.count() == 0  # more than the lead time ahead: nothing to say yet

    def shown() -> bool:
        page.reload()
        return banner.count() == 1

    wait_for(shown, timeout=ahead + refresh + 10, interval=0.2, what="the announcement")
    seen_at = utcnow()
    assert seen_at >= announce_at  # never early
    assert (seen_at - announce_at).total_seconds() <= refresh + 5  # and late only by a refresh
    text = banner.inner_text()
    assert "Scheduled maintenance:" in text and "Database upgrade to PostgreSQL 17" in text
    assert banner.locator("a").get_attribute("href") == "/status"
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 960, "height": 360})
    page.screenshot(path=str(DOCS_IMG / "announcement-banner.png"))
    page.context.close()


def test_the_503_page_polls_the_status_and_reloads_when_maintenance_ends(
    browser: Any, serve: Callable
) -> None:
    service, server = serve(0, MAINTENANCE_POLL_MIN_SECONDS=0.5, MAINTENANCE_POLL_MAX_SECONDS=1)
    service.enable_maintenance("Emergency fix", mode="emergency", enabled_by="alice")
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    try:
        response = page.goto("/")
        assert response is not None and response.status == 503
        for _ in range(2):  # (Playwright's sync API sees events only inside its own calls)
            with page.expect_request(lambda r: "/api/maintenance/status" in r.url):
                pass
        assert not any("/stream" in u for u in requested)  # it holds no connection open
        service.disable_maintenance("alice")
        with page.expect_navigation(timeout=10_000) as navigation:
            pass
        assert navigation.value is not None and navigation.value.status == 200
    finally:
        context.close()
