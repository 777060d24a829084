"""The reference app's admin panel in a real headless Chromium: the captioner's own
app-wide CSRF check stays on, and the panel's enable and disable forms still change the
state (the panel checks its own token)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from maintenance_demo.captioner.seed import ADMIN

from tests.browser import chromium
from tests.captioner.conftest import Captioner
from tests.services import LiveServer

pytestmark = pytest.mark.browser

PANEL = "/admin/maintenance/"


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium(expect_timeout_ms=15_000) as launched:
        yield launched


def test_the_panels_enable_and_disable_forms_work_in_the_reference_app(
    captioner: Captioner, browser: Any
) -> None:
    from playwright.sync_api import expect

    assert captioner.app.config.get("CAPTIONER_CSRF") is not False  # the host check is on
    server = LiveServer(captioner.app).start()
    context = browser.new_context(base_url=server.url)
    try:
        login = context.request.post(
            "/login",
            data=json.dumps({"username": ADMIN.username, "password": ADMIN.password}),
            headers={"Content-Type": "application/json"},
        )
        assert login.ok, login.text()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(PANEL)
        page.wait_for_selector("body[data-ready=yes]")

        page.fill("#reason", "Reference app upgrade")
        page.fill("#duration", "20m")
        page.click("#enable-submit")
        expect(page.locator(".flash-success")).to_contain_text("is on")
        expect(page.locator("#status-state")).to_have_text("Maintenance on: normal")
        stored = captioner.service.state.load()
        assert stored.is_active and stored.reason == "Reference app upgrade"
        assert stored.enabled_by == ADMIN.username

        expect(page.locator("#disable-submit")).to_be_enabled()
        page.fill("#note", "done")
        page.click("#disable-submit")
        expect(page.locator("#status-state")).to_have_text("Maintenance off")
        assert not captioner.service.state.load().is_active
        # The host's own forms are still protected by its check.
        refused = context.request.post("/account/password", form={"password": "x"})
        assert refused.status == 400
        assert errors == []
    finally:
        context.close()
        server.stop()
