"""In a real headless Chromium against a real server: the control panel enables and ends
maintenance, validates in the browser and on the server, refuses forged and CSRF-less
posts, asks for warnings to be acknowledged and for emergencies to be confirmed."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import insert

from maintenance import EnhancedMaintenanceModeService, MaintenanceMode, OperationType
from maintenance.domain.status import utcnow
from maintenance.store import schema
from tests.admin_ui.app import PANEL
from tests.admin_ui.conftest import open_context

pytestmark = pytest.mark.browser

Op = OperationType


def posts_to(page: Any, path: str) -> list[str]:
    """A live list of the URLs of POSTs the page sends to ``path``."""
    sent: list[str] = []
    page.on(
        "request", lambda r: sent.append(r.url) if r.method == "POST" and path in r.url else None
    )
    return sent


def csrf_token(page: Any) -> str:
    return str(page.locator("#enable-form input[name=csrf_token]").input_value())


def test_admin_enables_maintenance_with_reason_duration_and_override(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """Reason, duration and a custom blocked set go through the form into the service."""
    panel.fill("#reason", "Database upgrade")
    panel.fill("#duration", "45m")
    expect(panel.locator("#duration-preview")).to_contain_text("in 45m")
    panel.check("#scope-custom")
    panel.check("#op-caption_generation")
    panel.check("#op-image_processing")
    expect(panel.locator("#op-status_check")).to_be_disabled()
    panel.click("#enable-submit")

    expect(panel.locator(".flash-success")).to_contain_text("Maintenance (normal) is on")
    expect(panel.locator("#status-state")).to_have_text("Maintenance on: normal")
    expect(panel.locator("#status-reason")).to_have_text("Database upgrade")
    expect(panel.locator("#status-left")).to_contain_text("44m")
    stored = operator.state.load()
    assert stored.is_active and stored.mode is MaintenanceMode.NORMAL
    assert stored.reason == "Database upgrade"
    assert stored.estimated_duration == 45 * 60
    assert stored.blocked_operations == (Op.CAPTION_GENERATION, Op.IMAGE_PROCESSING)
    assert stored.enabled_by == "root"
    assert panel.js_errors == []


def test_browser_blocks_empty_reason_and_bad_durations_before_submit(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """Nothing is posted while the reason is empty or the duration is bad, zero or too long."""
    sent = posts_to(panel, "/enable")
    panel.fill("#duration", "soon")
    panel.click("#enable-submit")
    expect(panel.locator("#reason-error")).to_have_text("reason is required")
    expect(panel.locator("#duration-error")).to_contain_text("is not a duration")
    expect(panel.locator("#reason")).to_have_attribute("aria-invalid", "true")

    panel.fill("#reason", "Upgrade")
    for bad, message in (("0m", "greater than zero"), ("8d", "at most 7 days")):
        panel.fill("#duration", bad)
        panel.click("#enable-submit")
        expect(panel.locator("#duration-error")).to_contain_text(message)
    expect(panel.locator("#reason-error")).to_be_hidden()
    panel.fill("#reason", "x" * 501)  # maxlength stops typing; a paste or script is caught
    assert len(panel.input_value("#reason")) <= 500

    assert sent == []
    assert not operator.state.load().is_active


def test_server_rejects_a_forged_post_and_marks_the_fields(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """A post that skips the scripts is checked again on the server; errors sit by their fields."""
    panel.fill("#duration", "9d")
    panel.check("#scope-custom")
    # Skip every script and browser check: a plain submit of the raw form.
    with panel.expect_navigation():
        panel.evaluate(
            "() => { const f = document.getElementById('enable-form');"
            " f.noValidate = true; HTMLFormElement.prototype.submit.call(f); }"
        )
    expect(panel.locator("#reason-error")).to_have_text("reason is required")
    expect(panel.locator("#duration-error")).to_have_text("duration must be at most 7 days")
    expect(panel.locator(".flash-error")).to_contain_text("Nothing was changed")
    expect(panel.locator("#scope-custom")).to_be_checked()  # the form keeps what was sent

    response = panel.request.post(
        f"{PANEL}enable",
        form={
            "csrf_token": csrf_token(panel),
            "reason": "forged",
            "mode": "normal",
            "scope": "custom",
            "operations": "authentication",
        },
    )
    assert response.status == 400
    panel.set_content(response.text())
    expect(panel.locator("#blocked_operations-error")).to_contain_text("can never be blocked")
    response = panel.request.post(
        f"{PANEL}enable",
        form={"csrf_token": csrf_token(panel), "reason": "forged", "mode": "sabotage"},
    )
    assert response.status == 400 and "unknown maintenance mode" in response.text()
    assert not operator.state.load().is_active


def test_form_posts_without_a_valid_csrf_token_or_from_another_site_are_refused(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """No token, a forged token or a foreign Origin: 403 and nothing changes."""
    fields = {"reason": "csrf", "duration": "10m", "mode": "normal"}
    missing = panel.request.post(f"{PANEL}enable", form=fields)
    assert missing.status == 403 and "no CSRF token" in missing.text()
    forged = panel.request.post(f"{PANEL}enable", form={**fields, "csrf_token": "abc.def.ghi"})
    assert forged.status == 403 and "not valid" in forged.text()
    foreign = panel.request.post(
        f"{PANEL}enable",
        form={**fields, "csrf_token": csrf_token(panel)},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status == 403
    gone = panel.request.post(f"{PANEL}disable", form={"requeue": "on"})
    assert gone.status == 403
    assert not operator.state.load().is_active


def test_a_token_from_another_admin_session_is_refused(
    panel: Any, browser: Any, server: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """Tokens are bound to the session that got them."""
    other = open_context(browser, server, "second-admin", "admin")
    try:
        page = other.new_page()
        page.goto(PANEL)
        stolen = csrf_token(page)
    finally:
        other.close()
    response = panel.request.post(
        f"{PANEL}enable", form={"csrf_token": stolen, "reason": "x", "mode": "normal"}
    )
    assert response.status == 403 and "does not belong to this session" in response.text()
    assert not operator.state.load().is_active


def test_non_admins_get_no_panel(browser: Any, server: Any) -> None:
    """Users get 403 and anonymous visitors 401: no form, no data, no reports."""
    for username, role, code in (("alice", "user", 403), (None, "user", 401)):
        context = open_context(browser, server, username, role)
        try:
            page = context.new_page()
            response = page.goto(PANEL)
            assert response is not None and response.status == code
            assert page.locator("#enable-form").count() == 0
            assert "Database" not in page.content()
            for path in ("data", "check?reason=x", "status", "reports/tst-1"):
                assert context.request.get(f"{PANEL}{path}").status == code
            posted = context.request.post(f"{PANEL}enable", form={"reason": "x"})
            assert posted.status == code
        finally:
            context.close()


def test_warnings_must_be_acknowledged_before_saving(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """A duration shorter than a running job, an overlapping window and an empty custom set
    are shown before saving; saving needs the box ticked."""
    now = time.time()
    job = {"name": "captions.generate", "operation": "caption_generation", "worker": "w1@h"}
    operator.redis.hset(
        operator.keys.active_jobs, "job-1", json.dumps({**job, "started": now - 7200})
    )
    opens = utcnow() + timedelta(minutes=10)
    with operator.db.begin() as conn:
        conn.execute(
            insert(schema.windows).values(
                start_at=opens,
                end_at=opens + timedelta(hours=1),
                reason="Quarterly patching",
                mode="normal",
                created_by="ops",
                state="scheduled",
            )
        )
    sent = posts_to(panel, "/enable")
    panel.fill("#reason", "Short fix")
    panel.fill("#duration", "30m")
    panel.click("#enable-submit")
    findings = panel.locator("#findings-list")
    expect(findings.locator("[data-code=duration_shorter_than_jobs]")).to_contain_text("2h")
    expect(findings.locator("[data-code=window_overlap]")).to_contain_text("Quarterly patching")
    expect(panel.locator("#acknowledge_warnings-error")).to_be_visible()
    assert sent == []

    panel.check("#scope-custom")  # and nothing ticked: blocks nothing
    expect(findings.locator("[data-code=nothing_blocked]")).to_be_visible()
    panel.check("#acknowledge_warnings")
    panel.click("#enable-submit")
    expect(panel.locator(".flash-success")).to_be_visible()
    stored = operator.state.load()
    assert stored.is_active and stored.blocked_operations == ()


def test_server_asks_for_acknowledgement_when_scripts_are_skipped(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """Without the acknowledgement the server answers with the warnings and changes nothing."""
    response = panel.request.post(
        f"{PANEL}enable",
        form={"csrf_token": csrf_token(panel), "reason": "x", "scope": "custom", "mode": "normal"},
    )
    assert response.status == 409
    panel.set_content(response.text())
    expect(panel.locator("[data-code=nothing_blocked]")).to_be_visible()
    expect(panel.locator("#ack-box")).to_be_visible()
    assert not operator.state.load().is_active


def test_emergency_needs_a_typed_confirmation(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """The emergency control arms only once the phrase is typed; cancelling changes nothing."""
    panel.click("#emergency-open")
    dialog = panel.locator("#emergency-dialog")
    expect(dialog).to_be_visible()
    panel.fill("#em-reason", "Data corruption on shard 3")
    expect(panel.locator("#em-activate")).to_be_disabled()
    panel.fill("#em-confirm", "emergency")  # wrong case
    expect(panel.locator("#em-activate")).to_be_disabled()
    panel.click("#em-cancel")
    expect(dialog).to_be_hidden()
    assert not operator.state.load().is_active

    panel.click("#emergency-open")
    panel.fill("#em-reason", "Data corruption on shard 3")
    panel.fill("#em-duration", "2h")
    panel.fill("#em-confirm", "EMERGENCY")
    expect(panel.locator("#em-activate")).to_be_enabled()
    panel.click("#em-activate")
    expect(dialog).to_be_hidden()
    expect(panel.locator(".flash-success")).to_contain_text("Emergency maintenance is on")
    expect(panel.locator("#status-state")).to_have_text("Maintenance on: emergency")
    stored = operator.state.load()
    assert stored.mode is MaintenanceMode.EMERGENCY and stored.estimated_duration == 7200
    assert Op.READ_OPERATIONS in stored.blocked_operations


def test_emergency_mode_in_the_form_needs_the_phrase_too(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """Choosing emergency in the form shows the confirmation field and requires it."""
    sent = posts_to(panel, "/enable")
    panel.fill("#reason", "Breach")
    panel.select_option("#mode", "emergency")
    expect(panel.locator("#emergency-confirm")).to_be_visible()
    panel.click("#enable-submit")
    expect(panel.locator("#confirm_emergency-error")).to_contain_text("type EMERGENCY")
    assert sent == []
    panel.fill("#confirm_emergency", "EMERGENCY")
    panel.click("#enable-submit")
    expect(panel.locator("#status-state")).to_have_text("Maintenance on: emergency")
    assert operator.state.load().mode is MaintenanceMode.EMERGENCY


@pytest.mark.parametrize("requeue", [True, False], ids=["requeue", "hold"])
def test_disable_with_or_without_requeueing_held_jobs(
    admin_context: Any, operator: EnhancedMaintenanceModeService, requeue: bool
) -> None:
    """Ending maintenance from the panel passes the requeue choice on."""
    operator.enable_maintenance("Upgrade", "1h", enabled_by="cli-admin")
    page = admin_context.new_page()
    page.goto(PANEL)
    page.wait_for_selector("body[data-ready=yes]")
    expect(page.locator("#disable-submit")).to_be_enabled()
    page.set_checked("#requeue", requeue)
    page.fill("#note", "Upgrade finished")
    page.click("#disable-submit")
    held = "held jobs will be requeued" if requeue else "held jobs stay held"
    expect(page.locator(".flash-success")).to_contain_text(held)
    expect(page.locator("#status-state")).to_have_text("Maintenance off")
    expect(page.locator("#disable-submit")).to_be_disabled()
    assert not operator.state.load().is_active
    event = operator.history(1, kinds=("maintenance_disabled",))[0]
    assert event.details["requeue"] is requeue and event.reason == "Upgrade finished"
    assert event.actor == "root"
    # With the Celery side loaded (the app's CLI mounts it), a requeue runs at once and
    # clears recovery_pending; held jobs are never recovered.
    recovered = [e for e in operator.history(5) if e.kind == "recovery_completed"]
    stored = operator.state.load()
    if requeue:
        assert stored.recovery_pending or any(e.id > event.id for e in recovered)  # type: ignore[operator]
    else:
        assert not stored.recovery_pending
        assert not any(e.id > event.id for e in recovered)  # type: ignore[operator]
