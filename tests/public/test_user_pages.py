"""What a user sees in a real headless Chromium: signed out by maintenance (told so, why,
and who may sign in), the sign-in page warning before anything is typed, and the 503
page (reason and end said once, links home and to the status page, and a reload that
never re-submits the refused POST). The screenshots in ``docs/img/`` are written here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from maintenance import EnhancedMaintenanceModeService
from tests.helpers import wait_for
from tests.services import LiveServer

from .app import build_app
from .test_browser import DOCS_IMG, browser  # noqa: F401  (the module's Chromium)

pytestmark = pytest.mark.browser


@pytest.fixture
def server(make_service: Callable[..., EnhancedMaintenanceModeService]) -> Iterator[Any]:
    service = make_service(kind="web").start()
    live = LiveServer(
        build_app(service, MAINTENANCE_POLL_MIN_SECONDS=0.5, MAINTENANCE_POLL_MAX_SECONDS=1),
        threads=4,
    ).start()
    yield service, live
    live.stop()


def _page(browser: Any, live: LiveServer, height: int = 520) -> Any:  # noqa: F811
    context = browser.new_context(base_url=live.url, viewport={"width": 960, "height": height})
    context.set_default_timeout(10_000)
    return context.new_page()


def test_a_signed_out_user_is_told_why_and_the_sign_in_page_warns(
    browser: Any,  # noqa: F811
    server: Any,
) -> None:
    service, live = server
    page = _page(browser, live)
    try:
        page.goto("/login?username=bob")
        service.enable_maintenance("Database upgrade", "30m", enabled_by="alice", block_login=True)
        wait_for(lambda: service.cache.status.login_blocked, 10, what="the node saw it")
        page.goto("/signin")  # bob's next request: his session ends here
        notice = page.locator("#maintenance-notice-signed-out")
        assert notice.is_visible()
        text = notice.inner_text()
        assert "You were signed out" in text and "sign-ins are closed during maintenance" in text
        assert "Only administrators can sign in" in text
        # Ended lazily, on this request -- and counted: status does not say "0 invalidated".
        # Once, though the page and its favicon may both have carried the old cookie.
        counted = wait_for(
            lambda: service.get_maintenance_status().invalidated_sessions,
            10,
            what="the lazy logout counted",
        )
        assert counted == 1
        # Before anything is typed, the form says who may sign in.
        warning = page.locator("#maintenance-notice-login-blocked")
        assert warning.is_visible() and "only administrators can sign in" in warning.inner_text()
        assert page.locator("h1").bounding_box()["y"] < warning.bounding_box()["y"]
        assert (
            warning.bounding_box()["y"] < page.locator("input[name=username]").bounding_box()["y"]
        )
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / "user-signed-out.png"))
        page.reload()  # said once: the next page no longer repeats it
        assert page.locator("#maintenance-notice-signed-out").count() == 0
        assert page.locator("#maintenance-notice-login-blocked").is_visible()
        page.screenshot(path=str(DOCS_IMG / "user-login-warning.png"))
    finally:
        page.context.close()


def test_the_503_page_says_things_once_links_out_and_never_reposts(
    browser: Any,  # noqa: F811
    server: Any,
) -> None:
    service, live = server
    page = _page(browser, live, height=640)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    try:
        page.goto("/captions/new")
        service.enable_maintenance("Storage migration", "20m", enabled_by="alice")
        wait_for(lambda: service.cache.status.is_active, 10, what="the node saw it")
        with page.expect_navigation() as navigation:
            page.click("#generate")
        assert navigation.value is not None and navigation.value.status == 503
        assert posts == [f"{live.url}/captions/generate"]
        body = page.locator("main").inner_text()
        assert body.count("Storage migration") == 1  # the reason, once
        assert body.count("UTC") == 1  # the end, once
        assert "minute(s)" not in body and "minutes)" in body
        assert page.locator("#home-link").get_attribute("href") == "/"
        assert page.locator("#status-page-link").get_attribute("href") == "/status"
        # Try again is a plain GET of the page the form was on, not the POST.
        assert page.locator("#try-again-link").get_attribute("href") == "/captions/new"
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / "user-503.png"))
        service.disable_maintenance("alice")
        with page.expect_navigation(timeout=15_000) as back:
            pass  # the page's poll saw maintenance end
        assert back.value is not None and back.value.status == 200
        assert page.url == f"{live.url}/captions/new"
        assert posts == [f"{live.url}/captions/generate"]  # nothing was posted again
    finally:
        page.context.close()
