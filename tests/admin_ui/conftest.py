"""Fixtures for the admin panel: one service, app and waitress server per module, one
headless Chromium per module, a fresh browser context (admin logged in) per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete

from maintenance import EnhancedMaintenanceModeService, Settings, build_service
from maintenance.store import schema
from tests.admin_ui.app import PANEL, LiveServer, build_app
from tests.browser import chromium
from tests.support import fast_settings, redis_prefix


@pytest.fixture(scope="module")
def ui_settings(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of this module: its own Redis prefix (deleted afterwards) and SQLite file."""
    db = tmp_path_factory.mktemp("admin-ui") / "maintenance.db"
    with redis_prefix(redis_url, head="ui") as prefix:
        yield fast_settings(
            redis_url,
            f"sqlite:///{db}",
            prefix,
            heartbeat_interval=0.3,
            secret_key="admin-ui-secret",
        )


@pytest.fixture(scope="module")
def web_service(ui_settings: Settings) -> Iterator[EnhancedMaintenanceModeService]:
    """The web node's service (registered: fenced changes wait for it)."""
    service = build_service(ui_settings, kind="web").start()
    yield service
    service.close()
    service.db.dispose()


@pytest.fixture(scope="module")
def operator(ui_settings: Settings) -> Iterator[EnhancedMaintenanceModeService]:
    """Another process's view, like the CLI: changes maintenance from outside the panel."""
    service = build_service(ui_settings, kind="cli", register=False)
    yield service
    service.close()
    service.db.dispose()


def app_config() -> dict[str, Any]:
    """Fast refreshes and short streams, so tests see changes (and resumptions) quickly."""
    return {
        "MAINTENANCE_SSE_HEARTBEAT": 0.5,
        "MAINTENANCE_SSE_MAX_SECONDS": 4.0,
        "MAINTENANCE_SSE_RETRY_MS": 200,
        "MAINTENANCE_ADMIN_POLL_SECONDS": 0.5,
    }


@pytest.fixture(scope="module")
def server(web_service: EnhancedMaintenanceModeService) -> Iterator[LiveServer]:
    live = LiveServer(build_app(web_service, **app_config())).start()
    yield live
    live.stop()


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> None:
    """Every test starts with maintenance off, no running jobs and no scheduled window."""
    if "server" not in request.fixturenames and "operator" not in request.fixturenames:
        return
    operator: EnhancedMaintenanceModeService = request.getfixturevalue("operator")
    if operator.state.load().is_active:
        operator.disable_maintenance("test-reset", requeue=False, wait=2.0)
    operator.redis.delete(operator.keys.active_jobs)
    with operator.db.begin() as conn:
        conn.execute(delete(schema.windows))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (skipped when the system has none)."""
    with chromium(expect_timeout_ms=10_000) as launched:
        yield launched


def open_context(browser: Any, server: LiveServer, username: str | None, role: str) -> Any:
    """A browser context logged in as ``username`` (None: anonymous)."""
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(10_000)
    if username is not None:
        response = context.request.get(f"/login?username={username}&role={role}")
        assert response.ok, response.text()
    return context


@pytest.fixture
def admin_context(browser: Any, server: LiveServer) -> Iterator[Any]:
    context = open_context(browser, server, "root", "admin")
    yield context
    context.close()


@pytest.fixture
def panel(admin_context: Any) -> Any:
    """The panel page, loaded and wired (its scripts ran)."""
    page = admin_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(PANEL)
    page.wait_for_selector("body[data-ready=yes]")
    page.js_errors = errors  # type: ignore[attr-defined]
    return page
